/**
 * Preallocated header views. The decoder fills one `PacketView` per packet in place: numbers and
 * preallocated typed arrays only, so decoding allocates nothing. Offsets are absolute indexes into the
 * buffer the packet was decoded from; `-1` means "absent".
 */

export const IPPROTO_ICMP = 1;
export const IPPROTO_IPIP = 4;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_IPV6 = 41;
export const IPPROTO_ICMPV6 = 58;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

export const MAX_VLANS = 8;
export const MAX_SACK_BLOCKS = 4;

/** The packet quoted inside an ICMP/ICMPv6 error: IP header and the first 8 bytes of L4. */
export class InnerView {
  /** true when the quoted IP header and at least the L4 ports were captured */
  valid = false;
  ipVersion = 0;
  l3Off = -1;
  l4Off = -1;
  proto = 0;
  readonly src = new Uint32Array(4);
  readonly dst = new Uint32Array(4);
  sport = 0;
  dport = 0;
  /** TCP sequence number of the quoted segment (when proto is TCP) */
  seq = 0;
  /** quoted ICMP type/id (when the inner packet is itself ICMP echo) */
  icmpType = -1;
  icmpId = 0;

  reset(): void {
    this.valid = false;
    this.ipVersion = 0;
    this.l3Off = -1;
    this.l4Off = -1;
    this.proto = 0;
    this.sport = 0;
    this.dport = 0;
    this.seq = 0;
    this.icmpType = -1;
    this.icmpId = 0;
  }
}

export class PacketView {
  status = 0;
  linktype = 0;
  /** offset of the first byte of the frame and captured length */
  frameOff = 0;
  caplen = 0;
  wirelen = 0;

  /* L2 */
  l2Off = -1;
  ethertype = 0;
  vlanCount = 0;
  readonly vlans = new Uint16Array(MAX_VLANS);
  mplsLabels = 0;

  /* L3 */
  l3Off = -1;
  ipVersion = 0;
  /** IPv4: IHL*4. IPv6: 40 + extension headers up to the L4 header. */
  ipHdrLen = 0;
  /** length of the IP packet according to its header (or the captured length when the header says 0: TSO/BIG TCP) */
  ipTotalLen = 0;
  /** end of the IP packet inside the buffer: min(l3Off + ipTotalLen, end of captured data) */
  ipEnd = 0;
  /** true when the capture holds fewer bytes than the IP header says (snap length cut) */
  ipTruncated = false;
  tos = 0;
  ttl = 0;
  ipId = 0;
  flowLabel = 0;
  df = false;
  /** fragment of a larger datagram (not an IPv6 atomic fragment) */
  isFragment = false;
  /** fragment offset in bytes */
  fragOffset = 0;
  moreFragments = false;
  readonly src = new Uint32Array(4);
  readonly dst = new Uint32Array(4);
  /** L4 protocol (after IPv6 extension headers); 59 = no next header */
  proto = 0;
  /** offset of the IPv6 fragment header, -1 if none */
  fragHdrOff = -1;
  /** offset of the final destination in an IPv6 routing header with segments left (RFC 8200 §8.1), -1 if none */
  finalDstOff = -1;

  /* L4 */
  hasL4 = false;
  l4Off = -1;
  /** L4 length from the IP header (header + payload) */
  l4Len = 0;
  sport = 0;
  dport = 0;
  payloadOff = -1;
  payloadLen = 0;

  /* TCP */
  tcpFlags = 0;
  seq = 0;
  ack = 0;
  window = 0;
  tcpHdrLen = 0;
  mss = -1;
  wscale = -1;
  sackPerm = false;
  sackCount = 0;
  /** offset of the first SACK block (8 bytes each: left edge, right edge) */
  sackOff = -1;
  hasTs = false;
  tsVal = 0;
  tsEcr = 0;
  /** an option with an impossible length stopped option parsing */
  tcpOptBad = false;

  /* UDP */
  udpLen = 0;

  /* ICMP / ICMPv6 */
  icmpType = -1;
  icmpCode = -1;
  icmpId = 0;
  /** true for destination unreachable, time exceeded, parameter problem, source quench, redirect (v4) and packet too big (v6) */
  icmpIsError = false;
  readonly inner = new InnerView();

  reset(): void {
    this.status = 0;
    this.l2Off = -1;
    this.ethertype = 0;
    this.vlanCount = 0;
    this.mplsLabels = 0;
    this.l3Off = -1;
    this.ipVersion = 0;
    this.ipHdrLen = 0;
    this.ipTotalLen = 0;
    this.ipEnd = 0;
    this.ipTruncated = false;
    this.isFragment = false;
    this.fragOffset = 0;
    this.moreFragments = false;
    this.df = false;
    this.proto = 0;
    this.fragHdrOff = -1;
    this.finalDstOff = -1;
    this.hasL4 = false;
    this.l4Off = -1;
    this.l4Len = 0;
    this.sport = 0;
    this.dport = 0;
    this.payloadOff = -1;
    this.payloadLen = 0;
    this.tcpFlags = 0;
    this.mss = -1;
    this.wscale = -1;
    this.sackPerm = false;
    this.sackCount = 0;
    this.sackOff = -1;
    this.hasTs = false;
    this.tcpOptBad = false;
    this.icmpType = -1;
    this.icmpCode = -1;
    this.icmpId = 0;
    this.icmpIsError = false;
    this.inner.reset();
  }
}
