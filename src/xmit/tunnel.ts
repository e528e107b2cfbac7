/**
 * Tunnel forwarding (IPVS ip_vs_tunnel_xmit): the IP packet is carried to the real server inside a new IP
 * header — IP-in-IP (protocol 4 for IPv4, 41 for IPv6) or GUE (RFC draft-ietf-intarea-gue, variant 1: the
 * UDP payload is the IP packet itself; default port 6080). The outer source is the VIP (the address the
 * load balancer answers for), the outer destination the server. The frame is built in `out`; the link-layer
 * header of the input is kept.
 */
import { wr16, wr32 } from '../packet/bytes.js';
import { finish, setIpv4HeaderChecksum, sum16 } from '../packet/checksum.js';
import type { PacketView } from '../packet/view.js';

/** Build the encapsulated frame into `out`; returns its length, or -1 when it does not fit. */
export function tunnelEncap(b: Uint8Array, v: PacketView, out: Uint8Array, src: Uint32Array, dst: Uint32Array, gue: boolean, guePort: number): number {
  const l2len = v.l3Off - v.frameOff;
  const inner = v.ipEnd - v.l3Off;
  const six = v.ipVersion === 6;
  const ohl = six ? 40 : 20;
  const udp = gue ? 8 : 0;
  const total = l2len + ohl + udp + inner;
  if (total > out.length || ohl + udp + inner > 65535 + (six ? 40 : 0)) return -1;
  out.set(b.subarray(v.frameOff, v.l3Off), 0);
  const o = l2len;
  const proto = gue ? 17 : six ? 41 : 4;
  if (six) {
    wr32(out, o, 0x60000000);
    wr16(out, o + 4, udp + inner);
    out[o + 6] = proto;
    out[o + 7] = 64;
    for (let i = 0; i < 4; i++) {
      wr32(out, o + 8 + 4 * i, src[i]!);
      wr32(out, o + 24 + 4 * i, dst[i]!);
    }
  } else {
    out[o] = 0x45;
    out[o + 1] = b[v.l3Off + 1]!; // keep the inner TOS
    wr16(out, o + 2, 20 + udp + inner);
    wr16(out, o + 4, 0);
    wr16(out, o + 6, b[v.l3Off + 6]! & 0x40 ? 0x4000 : 0); // keep DF
    out[o + 8] = 64;
    out[o + 9] = proto;
    wr32(out, o + 12, src[0]!);
    wr32(out, o + 16, dst[0]!);
    setIpv4HeaderChecksum(out, o, 20);
  }
  const p = o + ohl;
  out.set(b.subarray(v.l3Off, v.ipEnd), p + udp);
  if (gue) {
    // source port from the inner flow, so a server's receive hashing spreads flows
    const sport = 49152 + ((v.src[0]! ^ v.dst[0]! ^ (v.sport << 16) ^ v.dport) >>> 0) % 16384;
    wr16(out, p, sport);
    wr16(out, p + 2, guePort);
    wr16(out, p + 4, 8 + inner);
    wr16(out, p + 6, 0);
    if (six) {
      // UDP over IPv6 must carry a checksum
      let s = sum16(out, p, 8 + inner);
      for (let i = 0; i < 4; i++) s += (src[i]! >>> 16) + (src[i]! & 0xffff) + (dst[i]! >>> 16) + (dst[i]! & 0xffff);
      s += 17 + 8 + inner;
      let c = finish(s);
      if (c === 0) c = 0xffff;
      wr16(out, p + 6, c);
    }
  }
  return total;
}
