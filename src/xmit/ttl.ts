/**
 * TTL / hop limit of a forwarded packet (optional, `decrement_ttl` in the configuration), as IPVS's
 * decrement_ttl (Linux 4.18+): a packet that arrives with TTL 0 or 1 would expire here and is not forwarded;
 * otherwise the TTL drops by one and the IPv4 header checksum is patched (RFC 1624). IPv6 has no header
 * checksum. The caller answers an expiring packet with ICMP time exceeded (icmp-gen.ts) and counts it.
 */
import { rd16 } from '../packet/bytes.js';
import { patch16 } from '../packet/checksum.js';
import type { PacketView } from '../packet/view.js';

/** Decrement in place; false (and nothing changed) when the packet must not be forwarded. */
export function decrementTtl(b: Uint8Array, v: PacketView): boolean {
  const l3 = v.l3Off;
  if (v.ipVersion === 4) {
    const ttl = b[l3 + 8]!;
    if (ttl <= 1) return false;
    const old = rd16(b, l3 + 8); // TTL and protocol share a 16-bit word of the checksum
    b[l3 + 8] = ttl - 1;
    patch16(b, l3 + 10, old, rd16(b, l3 + 8));
    return true;
  }
  const hops = b[l3 + 7]!;
  if (hops <= 1) return false;
  b[l3 + 7] = hops - 1;
  return true;
}
