/**
 * Packets the synproxy makes (DPVS ip_vs_synproxy.c): the SYN-ACK answering a client's SYN, built in place
 * from the SYN (syn_proxy_reuse_mbuf: addresses, ports and MACs swapped, the client's options rewritten,
 * seq = cookie, ack = ISN + 1); a RST answering an ACK whose cookie does not validate; the SYN to the real
 * server built from the client's ACK (syn_proxy_send_rs_syn: the client's ISN and the options the cookie
 * kept). IPv4 headers with options and IPv6 extension headers are not reflected (-1).
 */
import { rd16, rd32, wr16, wr32 } from '../packet/bytes.js';
import { finish, fold, setIpv4HeaderChecksum, sum16 } from '../packet/checksum.js';
import { TCP_ACK, TCP_RST, TCP_SYN, type PacketView } from '../packet/view.js';
import { pseudoSumWords } from '../xmit/iphdr.js';
import type { CookieOpts } from './cookie.js';

/** what the SYN-ACK offers */
export interface SynackOptions {
  mss: number;
  ttl: number;
  window: number;
  /** the LB's window scale, or -1 for none (the client's is removed) */
  wscale: number;
  sack: boolean;
  ts: boolean;
}

const TCPOPT_NOP = 1;

/** swap L2 (Ethernet), L3 addresses and L4 ports of a frame in place, for `tcpLen` bytes of TCP; -1 if it cannot */
function reflect(b: Uint8Array, v: PacketView, tcpLen: number, ttl: number): number {
  const l3 = v.l3Off;
  const six = v.ipVersion === 6;
  if (v.l4Off !== l3 + (six ? 40 : 20)) return -1;
  if (v.linktype === 1) {
    const f = v.frameOff;
    for (let i = 0; i < 6; i++) {
      const t = b[f + i]!;
      b[f + i] = b[f + 6 + i]!;
      b[f + 6 + i] = t;
    }
  }
  if (six) {
    for (let i = 8; i < 24; i += 4) {
      const t = rd32(b, l3 + i);
      wr32(b, l3 + i, rd32(b, l3 + 16 + i));
      wr32(b, l3 + 16 + i, t);
    }
    wr16(b, l3 + 4, tcpLen);
    b[l3 + 7] = ttl;
  } else {
    const t = rd32(b, l3 + 12);
    wr32(b, l3 + 12, rd32(b, l3 + 16));
    wr32(b, l3 + 16, t);
    // swapped addresses leave the header's sum as it was: the checksum is patched for the three words
    // that change (TOS, total length, TTL), RFC 1624
    const w0 = rd16(b, l3);
    const w1 = rd16(b, l3 + 2);
    const w4 = rd16(b, l3 + 8);
    const n0 = w0 & 0xff00;
    const n1 = 20 + tcpLen;
    const n4 = (ttl << 8) | (w4 & 0xff);
    wr16(b, l3, n0);
    wr16(b, l3 + 2, n1);
    wr16(b, l3 + 8, n4);
    const sum = (~rd16(b, l3 + 10) & 0xffff) + (~w0 & 0xffff) + n0 + (~w1 & 0xffff) + n1 + (~w4 & 0xffff) + n4;
    wr16(b, l3 + 10, ~fold(sum) & 0xffff);
  }
  const l4 = v.l4Off;
  const p = rd16(b, l4);
  wr16(b, l4, rd16(b, l4 + 2));
  wr16(b, l4 + 2, p);
  return v.l4Off + tcpLen - v.frameOff;
}

/** TCP checksum of the `len`-byte segment at `l4` from `src` to `dst` */
function tcpChecksum(b: Uint8Array, l4: number, len: number, six: boolean, src: Uint32Array, dst: Uint32Array): void {
  wr16(b, l4 + 16, 0);
  wr16(b, l4 + 16, finish(sum16(b, l4, len, pseudoSumWords(six, src, dst, 6, len))));
}

/**
 * Turn the client's SYN in `b` into the synproxy's SYN-ACK: returns the new frame length (the SYN's payload
 * is dropped), or -1. Options as DPVS rewrites them: MSS lowered to `o.mss`, window scale replaced by the
 * LB's (or removed), timestamps (TSval = `tsval`, TSecr = the client's TSval) and SACK-permitted kept
 * when offered, everything else overwritten with NOPs.
 */
export function synackInPlace(b: Uint8Array, v: PacketView, cookie: number, o: SynackOptions, tsval: number): number {
  const hl = v.tcpHdrLen;
  if (v.l4Off + hl > v.frameOff + v.caplen) return -1; // never write beyond the captured bytes
  const isn = v.seq;
  const n = reflect(b, v, hl, o.ttl);
  if (n < 0) return -1;
  const l4 = v.l4Off;
  wr32(b, l4 + 4, cookie);
  wr32(b, l4 + 8, (isn + 1) >>> 0);
  b[l4 + 13] = TCP_SYN | TCP_ACK;
  wr16(b, l4 + 14, o.window);
  wr16(b, l4 + 18, 0);
  const end = l4 + hl;
  let i = l4 + 20;
  while (i < end) {
    const kind = b[i]!;
    if (kind === 0) break;
    if (kind === TCPOPT_NOP) {
      i++;
      continue;
    }
    const len = i + 1 < end ? b[i + 1]! : 0;
    if (len < 2 || i + len > end) {
      b.fill(TCPOPT_NOP, i, end);
      break;
    }
    let keep = false;
    if (kind === 2 && len === 4) {
      if (rd16(b, i + 2) > o.mss) wr16(b, i + 2, o.mss);
      keep = true;
    } else if (kind === 3 && len === 3 && o.wscale >= 0) {
      b[i + 2] = o.wscale;
      keep = true;
    } else if (kind === 4 && len === 2) keep = o.sack;
    else if (kind === 8 && len === 10 && o.ts) {
      wr32(b, i + 6, rd32(b, i + 2));
      wr32(b, i + 2, tsval);
      keep = true;
    }
    if (!keep) b.fill(TCPOPT_NOP, i, i + len);
    i += len;
  }
  tcpChecksum(b, l4, hl, v.ipVersion === 6, v.dst, v.src);
  return n;
}

/** Turn the client's ACK in `b` into a RST answering it (seq = its ack, no options, no payload); -1 if not possible. */
export function rstInPlace(b: Uint8Array, v: PacketView): number {
  const ack = v.ack;
  const n = reflect(b, v, 20, 64);
  if (n < 0) return -1;
  const l4 = v.l4Off;
  wr32(b, l4 + 4, ack);
  wr32(b, l4 + 8, 0);
  b[l4 + 12] = 5 << 4;
  b[l4 + 13] = TCP_RST;
  wr32(b, l4 + 14, 0); // window, checksum
  wr16(b, l4 + 18, 0);
  tcpChecksum(b, l4, 20, v.ipVersion === 6, v.dst, v.src);
  return n;
}

/**
 * The SYN to the real server, into `out` from the client's validated ACK in `b`: its link and IP headers,
 * seq = the client's ISN, the options the cookie kept (MSS, SACK-permitted, timestamps with the client's
 * TSval, window scale), the client's window unscaled. Returns the frame length. Addresses and ports are the
 * ACK's (client -> VIP): the forwarding mode translates the SYN like any packet of the connection.
 */
export function buildServerSyn(b: Uint8Array, v: PacketView, opts: CookieOpts, out: Uint8Array): number {
  const hdr = v.l4Off - v.frameOff;
  if (hdr + 40 > out.length) return -1;
  out.set(b.subarray(v.frameOff, v.l4Off), 0);
  const l4 = hdr;
  let o = l4 + 20;
  wr32(out, o, 0x02040000 | opts.mss);
  o += 4;
  if (opts.ts) {
    wr32(out, o, opts.sack ? 0x0402080a : 0x0101080a);
    wr32(out, o + 4, v.hasTs ? v.tsVal : 0);
    wr32(out, o + 8, 0);
    o += 12;
  } else if (opts.sack) {
    wr32(out, o, 0x01010402);
    o += 4;
  }
  if (opts.wscale >= 0) {
    wr32(out, o, 0x01030300 | opts.wscale);
    o += 4;
  }
  const tcpLen = o - l4;
  wr16(out, l4, v.sport);
  wr16(out, l4 + 2, v.dport);
  wr32(out, l4 + 4, (v.seq - 1) >>> 0);
  wr32(out, l4 + 8, 0);
  out[l4 + 12] = (tcpLen >>> 2) << 4;
  out[l4 + 13] = TCP_SYN;
  const w = v.window * 2 ** (opts.wscale >= 0 ? opts.wscale : 0);
  wr16(out, l4 + 14, w > 0xffff ? 0xffff : w);
  wr16(out, l4 + 18, 0); // urgent pointer
  const l3 = v.l3Off - v.frameOff;
  const six = v.ipVersion === 6;
  if (six) wr16(out, l3 + 4, hdr - l3 - 40 + tcpLen);
  else {
    wr16(out, l3 + 2, hdr - l3 + tcpLen);
    wr16(out, l3 + 6, 0x4000);
    setIpv4HeaderChecksum(out, l3, v.ipHdrLen);
  }
  tcpChecksum(out, l4, tcpLen, six, v.src, v.dst);
  return o;
}
