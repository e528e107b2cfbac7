/**
 * UDP.
 * dpvs (ip_vs_proto_udp.c): NONE → ONEWAY on the first packet, NORMAL once the other direction is seen;
 *   timeouts oneway 300 s, normal 300 s.
 * netfilter (nf_conntrack_proto_udp.c): no states; 30 s until a reply is seen ("unreplied"), then 30 s
 *   more per packet until the flow is older than 2 s, after which it is a stream: 120 s and ASSURED.
 */
export const U_NONE = 0;
export const U_ONEWAY = 1;
export const U_NORMAL = 2;
export const DPVS_UDP_STATE_NAMES = ['NONE', 'ONEWAY', 'NORMAL'];
export const DPVS_UDP_TIMEOUTS = [300, 300, 300];

export const NF_UDP_UNREPLIED = 30;
export const NF_UDP_REPLIED = 120;
/** a replied flow becomes a stream once this old (seconds) */
export const NF_UDP_STREAM_AFTER = 2;
