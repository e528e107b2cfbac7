/**
 * Internet checksum.
 * - RFC 1071: one's-complement sum of 16-bit big-endian words, with pseudo-headers for TCP/UDP/ICMPv6
 *   (RFC 793 / RFC 768 for IPv4, RFC 8200 §8.1 for IPv6). ICMPv4 has no pseudo-header.
 * - RFC 1624 eqn. 3: incremental update HC' = ~(~HC + ~m + m') when a 16-bit field changes from m to m'.
 *   32-bit fields (addresses, sequence numbers) are two 16-bit updates.
 * Sums are carried in plain numbers (no overflow below 2^53) and folded at the end.
 */
import { rd16, wr16 } from './bytes.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, type PacketView } from './view.js';

/** Unfolded sum of the bytes [off, off+len), odd trailing byte padded with zero. */
export function sum16(b: Uint8Array, off: number, len: number, init = 0): number {
  let s = init;
  const end = off + (len & ~1);
  let i = off;
  for (; i + 8 <= end; i += 8) {
    s += ((b[i]! << 8) | b[i + 1]!) + ((b[i + 2]! << 8) | b[i + 3]!) + ((b[i + 4]! << 8) | b[i + 5]!) + ((b[i + 6]! << 8) | b[i + 7]!);
  }
  for (; i < end; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (len & 1) s += b[end]! << 8;
  return s;
}

/**
 * Fold a sum to 16 bits (one's complement addition of the carries). A sum below 2^32 (every per-packet
 * update) takes two rounds of 32-bit arithmetic, which always suffice; only sums of long buffers past 2^32
 * are first reduced in floating point.
 */
export function fold(s: number): number {
  while (s > 0xffffffff) s = (s % 65536) + Math.floor(s / 65536);
  s = (s & 0xffff) + (s >>> 16);
  return (s & 0xffff) + (s >>> 16);
}

/** The checksum field value for a sum: ~fold(s). */
export function finish(s: number): number {
  return ~fold(s) & 0xffff;
}

/** Sum of the IPv4/IPv6 pseudo-header for an L4 segment of `l4len` bytes. */
export function pseudoSum(b: Uint8Array, v: PacketView, proto: number, l4len: number): number {
  let s = 0;
  if (v.ipVersion === 4) {
    s = (v.src[0]! >>> 16) + (v.src[0]! & 0xffff) + (v.dst[0]! >>> 16) + (v.dst[0]! & 0xffff);
  } else {
    for (let i = 0; i < 4; i++) {
      const a = v.src[i]!;
      s += (a >>> 16) + (a & 0xffff);
    }
    if (v.finalDstOff >= 0) s += sum16(b, v.finalDstOff, 16);
    else {
      for (let i = 0; i < 4; i++) {
        const d = v.dst[i]!;
        s += (d >>> 16) + (d & 0xffff);
      }
    }
  }
  return s + proto + (l4len >>> 16) + (l4len & 0xffff);
}

/** Verify the IPv4 header checksum of a decoded packet. */
export function ipv4HeaderOk(b: Uint8Array, v: PacketView): boolean {
  return fold(sum16(b, v.l3Off, v.ipHdrLen)) === 0xffff;
}

/** Recompute and store the IPv4 header checksum. */
export function setIpv4HeaderChecksum(b: Uint8Array, l3Off: number, hdrLen: number): void {
  wr16(b, l3Off + 10, 0);
  wr16(b, l3Off + 10, finish(sum16(b, l3Off, hdrLen)));
}

/** Offset of the L4 checksum field for a protocol, relative to the L4 header; -1 if none. */
export function l4ChecksumOffset(proto: number): number {
  switch (proto) {
    case IPPROTO_TCP:
      return 16;
    case IPPROTO_UDP:
      return 6;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      return 2;
    default:
      return -1;
  }
}

/** Whole L4 sum including the pseudo-header where the protocol has one. */
function l4Sum(b: Uint8Array, v: PacketView): number {
  const init = v.proto === IPPROTO_ICMP ? 0 : pseudoSum(b, v, v.proto, v.l4Len);
  return sum16(b, v.l4Off, v.l4Len, init);
}

/**
 * Verify the L4 checksum. Returns 1 = good, 0 = bad, -1 = cannot tell (not captured whole, fragment,
 * protocol without checksum, or IPv4 UDP with checksum 0 = none).
 */
export function l4ChecksumStatus(b: Uint8Array, v: PacketView): number {
  if (!v.hasL4 || v.ipTruncated || v.isFragment) return -1;
  const co = l4ChecksumOffset(v.proto);
  if (co < 0) return -1;
  if (v.proto === IPPROTO_UDP && v.ipVersion === 4 && rd16(b, v.l4Off + 6) === 0) return -1;
  return fold(l4Sum(b, v)) === 0xffff ? 1 : 0;
}

/** Recompute and store the L4 checksum of a whole, unfragmented packet. */
export function setL4Checksum(b: Uint8Array, v: PacketView): void {
  const co = l4ChecksumOffset(v.proto);
  if (co < 0) return;
  wr16(b, v.l4Off + co, 0);
  let c = finish(l4Sum(b, v));
  if (c === 0 && v.proto === IPPROTO_UDP) c = 0xffff; // RFC 768: transmitted as all ones
  wr16(b, v.l4Off + co, c);
}

/** RFC 1624 eqn. 3 for one 16-bit field: returns the new checksum. */
export function csumUpdate16(csum: number, oldWord: number, newWord: number): number {
  const s = (~csum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  return ~fold(s) & 0xffff;
}

/** RFC 1624 for a 32-bit field (address, sequence number). */
export function csumUpdate32(csum: number, oldVal: number, newVal: number): number {
  const s = (~csum & 0xffff) + (~(oldVal >>> 16) & 0xffff) + (~oldVal & 0xffff) + (newVal >>> 16) + (newVal & 0xffff);
  return ~fold(s) & 0xffff;
}

/** Apply a 16-bit field change to the checksum stored at `csumOff`. */
export function patch16(b: Uint8Array, csumOff: number, oldWord: number, newWord: number): void {
  wr16(b, csumOff, csumUpdate16(rd16(b, csumOff), oldWord, newWord));
}

/** Apply a 32-bit field change to the checksum stored at `csumOff`. */
export function patch32(b: Uint8Array, csumOff: number, oldVal: number, newVal: number): void {
  wr16(b, csumOff, csumUpdate32(rd16(b, csumOff), oldVal, newVal));
}
