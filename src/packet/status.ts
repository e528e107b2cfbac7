/**
 * Decode status codes. `OK` and `NOT_IP` are not drops; every other code is a drop reason, named
 * `<layer>_<what>` so counts can be grouped by the layer that failed (the integration test relies on it).
 */
export const OK = 0;
export const NOT_IP = 1;

export const DROP_REASONS = [
  'ok',
  'not_ip',
  'unsupported_linktype',
  'l2_truncated',
  'vlan_truncated',
  'mpls_truncated',
  'pppoe_truncated',
  'ip_bad_version',
  'ipv4_truncated',
  'ipv4_bad_ihl',
  'ipv4_bad_total_length',
  'ipv6_truncated',
  'ipv6_bad_payload_length',
  'ipv6_ext_truncated',
  'ipv6_too_many_ext',
  'tcp_truncated',
  'tcp_bad_data_offset',
  'udp_truncated',
  'udp_bad_length',
  'icmp_truncated',
  'icmpv6_truncated',
] as const;

export type DropReason = (typeof DROP_REASONS)[number];

function code(name: DropReason): number {
  return DROP_REASONS.indexOf(name);
}

export const UNSUPPORTED_LINKTYPE = code('unsupported_linktype');
export const L2_TRUNCATED = code('l2_truncated');
export const VLAN_TRUNCATED = code('vlan_truncated');
export const MPLS_TRUNCATED = code('mpls_truncated');
export const PPPOE_TRUNCATED = code('pppoe_truncated');
export const IP_BAD_VERSION = code('ip_bad_version');
export const IPV4_TRUNCATED = code('ipv4_truncated');
export const IPV4_BAD_IHL = code('ipv4_bad_ihl');
export const IPV4_BAD_TOTAL_LENGTH = code('ipv4_bad_total_length');
export const IPV6_TRUNCATED = code('ipv6_truncated');
export const IPV6_BAD_PAYLOAD_LENGTH = code('ipv6_bad_payload_length');
export const IPV6_EXT_TRUNCATED = code('ipv6_ext_truncated');
export const IPV6_TOO_MANY_EXT = code('ipv6_too_many_ext');
export const TCP_TRUNCATED = code('tcp_truncated');
export const TCP_BAD_DATA_OFFSET = code('tcp_bad_data_offset');
export const UDP_TRUNCATED = code('udp_truncated');
export const UDP_BAD_LENGTH = code('udp_bad_length');
export const ICMP_TRUNCATED = code('icmp_truncated');
export const ICMPV6_TRUNCATED = code('icmpv6_truncated');

export const NUM_STATUS = DROP_REASONS.length;

export function statusName(status: number): string {
  return DROP_REASONS[status] ?? `status_${status}`;
}
