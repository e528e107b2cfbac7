/**
 * ICMP errors the load balancer itself sends back to a client, as the kernel's icmp_send / icmpv6_send do
 * for IPVS: "fragmentation needed" (ICMP 3/4, RFC 1191) or "packet too big" (ICMPv6 2, RFC 8201) for a packet
 * that does not fit the path to the server, and "time exceeded in transit" (ICMP 11/0, ICMPv6 3/0) for one
 * whose TTL runs out here (decrement_ttl). The error comes from the address the client sent to (the VIP: a
 * local address to IPVS) and quotes the offending packet as it arrived: as much as fits in 576 bytes for
 * IPv4 (RFC 1812 4.3.2.3, Linux) and 1280 for IPv6 (RFC 4443 2.4). The link-layer header of the arriving
 * frame is reused, Ethernet source and destination swapped. Errors are never sent about ICMP errors, about
 * fragments other than the first, or to an unspecified / multicast source (RFC 1122 3.2.2, RFC 4443 2.4).
 */
import { wr16, wr32 } from '../packet/bytes.js';
import { finish, sum16 } from '../packet/checksum.js';
import type { PacketView } from '../packet/view.js';
import { pseudoSumWords, writeIpHeader } from './iphdr.js';

export const ICMPGEN_FRAG_NEEDED = 0;
export const ICMPGEN_TIME_EXCEEDED = 1;

/**
 * Build the error about the packet decoded in `v` (frame in `b`, Ethernet when `linktype` is 1) into `out`;
 * returns the frame length, or -1 when no error may be sent about it. `mtu` is the next-hop MTU to report
 * (fragmentation needed / packet too big).
 */
export function icmpError(b: Uint8Array, linktype: number, v: PacketView, kind: number, mtu: number, out: Uint8Array): number {
  const off = v.frameOff;
  const six = v.ipVersion === 6;
  if (v.icmpIsError || (v.isFragment && v.fragOffset !== 0)) return -1;
  const l3 = v.l3Off;
  const a = v.src;
  if (six ? a[0]! >>> 24 === 0xff || (a[0]! | a[1]! | a[2]! | a[3]!) === 0 : a[0]! >>> 28 >= 14 || a[0] === 0) return -1;
  const l2len = l3 - off;
  const hdr = six ? 48 : 28;
  const quoted = Math.min(v.ipEnd - l3, (six ? 1280 : 576) - hdr);
  const n = l2len + hdr + quoted;
  if (n > out.length) return -1;
  out.set(b.subarray(off, l3), 0);
  if (linktype === 1) {
    // Ethernet: back to where the frame came from
    out.set(b.subarray(off + 6, off + 12), 0);
    out.set(b.subarray(off, off + 6), 6);
  }
  const o = l2len;
  // from the address it was sent to, back to its source; IPv4 with internetwork-control precedence, as Linux
  writeIpHeader(out, o, six, six ? 58 : 1, 8 + quoted, v.dst, v.src, 0xc0);
  const ic = o + (six ? 40 : 20);
  if (kind === ICMPGEN_FRAG_NEEDED) {
    out[ic] = six ? 2 : 3;
    out[ic + 1] = six ? 0 : 4;
    wr32(out, ic + 4, six ? mtu : mtu & 0xffff); // IPv4: unused 16 bits, then the next-hop MTU
  } else {
    out[ic] = six ? 3 : 11;
    out[ic + 1] = 0;
    wr32(out, ic + 4, 0);
  }
  wr16(out, ic + 2, 0);
  out.set(b.subarray(l3, l3 + quoted), ic + 8);
  // the checksum over the message (ICMPv6: with the pseudo-header)
  const sum = sum16(out, ic, 8 + quoted) + (six ? pseudoSumWords(true, v.dst, v.src, 58, 8 + quoted) : 0);
  wr16(out, ic + 2, finish(sum));
  return n;
}

/** true when the packet may not leave whole on a path of `mtu`: IPv4 with DF set, or any IPv6 */
export function tooBig(v: PacketView, mtu: number): boolean {
  return v.ipTotalLen > mtu && (v.ipVersion === 6 || v.df);
}
