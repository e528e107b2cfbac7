/**
 * IP headers the load balancer writes itself (tunnel outer headers, its own ICMP errors), and the
 * pseudo-header sum that goes with them, from addresses as 4 words (IPv4 in word 0).
 */
import { wr16, wr32 } from '../packet/bytes.js';
import { setIpv4HeaderChecksum } from '../packet/checksum.js';

/**
 * Write an IPv4 header (20 bytes, TTL 64, header checksum) or an IPv6 header (40 bytes, hop limit 64) at
 * `o` for `len` bytes of payload. IPv4 only: `tos`, and `df` for the don't-fragment bit.
 */
export function writeIpHeader(out: Uint8Array, o: number, six: boolean, proto: number, len: number, src: Uint32Array, dst: Uint32Array, tos = 0, df = false): void {
  if (six) {
    wr32(out, o, 0x60000000);
    wr16(out, o + 4, len);
    out[o + 6] = proto;
    out[o + 7] = 64;
    for (let i = 0; i < 4; i++) {
      wr32(out, o + 8 + 4 * i, src[i]!);
      wr32(out, o + 24 + 4 * i, dst[i]!);
    }
    return;
  }
  out[o] = 0x45;
  out[o + 1] = tos;
  wr16(out, o + 2, 20 + len);
  wr16(out, o + 4, 0);
  wr16(out, o + 6, df ? 0x4000 : 0);
  out[o + 8] = 64;
  out[o + 9] = proto;
  wr32(out, o + 12, src[0]!);
  wr32(out, o + 16, dst[0]!);
  setIpv4HeaderChecksum(out, o, 20);
}

/** the one's complement sum (unfolded) of the pseudo-header for src, dst, protocol and upper-layer length */
export function pseudoSumWords(six: boolean, src: Uint32Array, dst: Uint32Array, proto: number, len: number): number {
  let s = proto + len;
  for (let i = 0; i < (six ? 4 : 1); i++) s += (src[i]! >>> 16) + (src[i]! & 0xffff) + (dst[i]! >>> 16) + (dst[i]! & 0xffff);
  return s;
}
