/**
 * PROXY protocol for FNAT (HAProxy's spec, v1 text and v2 binary; DPVS proxy_protocol): the server sees the
 * LB's local address, so the client's address and port, and the VIP and port it asked for, go first in the
 * TCP stream to the server, as the bytes before the client's own. The LB puts the header in front of the
 * payload of the client's first packet after the handshake (its ACK of the server's SYN-ACK: a pure ACK then
 * carries it), and from then on moves the client's sequence numbers up by its length and the server's
 * acknowledgements (and SACK edges) down by it, both ways for the rest of the connection.
 */
import { formatAddr, rd16, rd32, wr16, wr32 } from '../packet/bytes.js';
import { patch32, setIpv4HeaderChecksum, setL4Checksum } from '../packet/checksum.js';
import { decode } from '../packet/decode.js';
import { PacketView } from '../packet/view.js';
import { nextTcpOption } from '../packet/tcp-options.js';

export const PP_V1 = 1;
export const PP_V2 = 2;
/** the v2 signature */
const SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** write the header for client:cport -> vip:vport into `out` at `at`; returns its length */
export function ppHeader(version: number, six: boolean, client: Uint32Array, vip: Uint32Array, cport: number, vport: number, out: Uint8Array, at: number): number {
  if (version === PP_V1) {
    const line = `PROXY TCP${six ? 6 : 4} ${formatAddr(client, six ? 6 : 4)} ${formatAddr(vip, six ? 6 : 4)} ${cport} ${vport}\r\n`;
    for (let i = 0; i < line.length; i++) out[at + i] = line.charCodeAt(i);
    return line.length;
  }
  out.set(SIG, at);
  out[at + 12] = 0x21; // version 2, PROXY
  out[at + 13] = six ? 0x21 : 0x11; // AF_INET6 / AF_INET, STREAM
  const alen = six ? 36 : 12;
  wr16(out, at + 14, alen);
  let p = at + 16;
  for (const w of [client, vip]) {
    for (let i = 0; i < (six ? 4 : 1); i++, p += 4) wr32(out, p, w[i]!);
  }
  wr16(out, p, cport);
  wr16(out, p + 2, vport);
  return 16 + alen;
}

const view = new PacketView();

/**
 * Copy the (translated) TCP frame `b` (decoded in `v`, from `start`) into `out` with `hlen` bytes of `hdr`
 * before its payload: IP length, the IPv4 header checksum and the TCP checksum made anew. Returns the new
 * frame length, or -1 when it does not fit `mtu` (or `out`).
 */
export function insertBefore(b: Uint8Array, v: PacketView, start: number, linktype: number, hdr: Uint8Array, hlen: number, out: Uint8Array, mtu: number): number {
  const pay = v.payloadOff;
  const end = v.ipEnd;
  if (v.ipTotalLen + hlen > mtu || end - start + hlen > out.length) return -1;
  out.set(b.subarray(start, pay), 0);
  out.set(hdr.subarray(0, hlen), pay - start);
  out.set(b.subarray(pay, end), pay - start + hlen);
  const l3 = v.l3Off - start;
  const six = v.ipVersion === 6;
  const lenAt = l3 + (six ? 4 : 2);
  wr16(out, lenAt, rd16(out, lenAt) + hlen);
  const n = end - start + hlen;
  if (decode(out, 0, n, n, linktype, view) !== 0) return -1;
  if (!six) setIpv4HeaderChecksum(out, view.l3Off, view.ipHdrLen);
  setL4Checksum(out, view);
  return n;
}

/** client -> server after the header: sequence number up by `delta` */
export function seqUp(b: Uint8Array, v: PacketView, delta: number): void {
  const at = v.l4Off + 4;
  const old = rd32(b, at);
  const nw = (old + delta) >>> 0;
  wr32(b, at, nw);
  patch32(b, v.l4Off + 16, old, nw);
}

/** server -> client: acknowledgement (with ACK set) and SACK edges down by `delta` */
export function ackDown(b: Uint8Array, v: PacketView, delta: number): void {
  const l4 = v.l4Off;
  const csum = l4 + 16;
  if (b[l4 + 13]! & 0x10) {
    const old = rd32(b, l4 + 8);
    const nw = (old - delta) >>> 0;
    wr32(b, l4 + 8, nw);
    patch32(b, csum, old, nw);
  }
  const end = l4 + v.tcpHdrLen;
  for (let p = nextTcpOption(b, l4 + 20, end); p >= 0; p = nextTcpOption(b, p + b[p + 1]!, end)) {
    if (b[p] !== 5) continue;
    for (let q = p + 2; q + 4 <= p + b[p + 1]!; q += 4) {
      const old = rd32(b, q);
      const nw = (old - delta) >>> 0;
      wr32(b, q, nw);
      // an edge at an odd offset adds its bytes to the other halves of the checksum's words: the same
      // update with each half's bytes swapped
      if ((q - l4) & 1) patch32(b, csum, swapHalves(old), swapHalves(nw));
      else patch32(b, csum, old, nw);
    }
  }
}

function swapHalves(x: number): number {
  return (((x & 0x00ff00ff) << 8) | ((x >>> 8) & 0x00ff00ff)) >>> 0;
}

/** the server's SYN-ACK: its MSS option lowered by `by` (so that the client's segments leave room for the header); false without one */
export function lowerMss(b: Uint8Array, v: PacketView, by: number): boolean {
  const l4 = v.l4Off;
  const end = l4 + v.tcpHdrLen;
  for (let p = nextTcpOption(b, l4 + 20, end); p >= 0; p = nextTcpOption(b, p + b[p + 1]!, end)) {
    if (b[p] !== 2 || b[p + 1] !== 4) continue;
    const old = rd16(b, p + 2);
    const nw = Math.max(536, old - by);
    wr16(b, p + 2, nw);
    // (after NOPs the option may sit at an odd offset: then its bytes are patched swapped, as SACK edges)
    if ((p + 2 - l4) & 1) patch32(b, l4 + 16, swapHalves(old), swapHalves(nw));
    else patch32(b, l4 + 16, old, nw);
    return true;
  }
  return false;
}
