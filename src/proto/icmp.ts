/**
 * ICMP / ICMPv6 query tracking (nf_conntrack_proto_icmp.c, nf_conntrack_proto_icmpv6.c; DPVS
 * ip_vs_proto_icmp.c): a request creates a "connection" keyed by addresses, id, type and code; its reply
 * (the inverted type) is the reply direction. Error messages are not connections: they are RELATED to the
 * connection whose header they quote. Timeout 30 s (netfilter), 60 s (dpvs).
 */

/** request type → reply type (ICMPv4: echo, timestamp, info, address mask) */
const INV4 = new Int16Array(256).fill(-1);
INV4[8] = 0;
INV4[0] = 8;
INV4[13] = 14;
INV4[14] = 13;
INV4[15] = 16;
INV4[16] = 15;
INV4[17] = 18;
INV4[18] = 17;

/** ICMPv6: echo, node information */
const INV6 = new Int16Array(256).fill(-1);
INV6[128] = 129;
INV6[129] = 128;
INV6[139] = 140;
INV6[140] = 139;

/** The type of the other direction, or -1 when the type is not a query/reply pair. */
export function icmpInverse(v6: boolean, type: number): number {
  return (v6 ? INV6 : INV4)[type]!;
}

/** Types that may open a connection (requests). */
export function icmpIsRequest(v6: boolean, type: number): boolean {
  return v6 ? type === 128 || type === 139 : type === 8 || type === 13 || type === 15 || type === 17;
}

export const NF_ICMP_TIMEOUT = 30;
export const DPVS_ICMP_TIMEOUT = 60;
