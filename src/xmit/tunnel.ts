/**
 * Tunnel forwarding (IPVS ip_vs_tunnel_xmit): the IP packet is carried to the real server inside a new IP
 * header — IP-in-IP (protocol 4 for IPv4, 41 for IPv6) or GUE (RFC draft-ietf-intarea-gue, variant 1: the
 * UDP payload is the IP packet itself; default port 6080). The outer source is the VIP (the address the
 * load balancer answers for), the outer destination the server. The frame is built in `out`; the link-layer
 * header of the input is kept.
 */
import { wr16 } from '../packet/bytes.js';
import { finish, sum16 } from '../packet/checksum.js';
import { pseudoSumWords, writeIpHeader } from './iphdr.js';
import type { PacketView } from '../packet/view.js';
import { directMode, FWD_TUNNEL } from './mode.js';

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
  // the inner TOS and DF carry over to the outer header (IPv4)
  writeIpHeader(out, o, six, proto, udp + inner, src, dst, b[v.l3Off + 1]!, (b[v.l3Off + 6]! & 0x40) !== 0 && !six);
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
      let c = finish(sum16(out, p, 8 + inner) + pseudoSumWords(true, src, dst, 17, 8 + inner));
      if (c === 0) c = 0xffff;
      wr16(out, p + 6, c);
    }
  }
  return total;
}

/** the server answers the client directly, from the VIP */
export const tunnelMode = directMode(FWD_TUNNEL, 'tunnel');
