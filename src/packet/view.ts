/**
 * Preallocated header views. The decoder fills one `PacketView` per packet in place: numbers and
 * preallocated typed arrays only, so decoding allocates nothing. Offsets are absolute indexes into the
 * buffer the packet was decoded from; `-1` means "absent".
 */

import { rd16, rd32 } from './bytes.js';
import { parseTcpOptions } from './tcp-options.js';

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
export { MAX_SACK_BLOCKS } from './tcp-options.js';

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

  /** back to what a new InnerView holds (every field, the address words included) */
  reset(): void {
    this.valid = false;
    this.ipVersion = 0;
    this.l3Off = -1;
    this.l4Off = -1;
    this.proto = 0;
    this.src.fill(0);
    this.dst.fill(0);
    this.sport = 0;
    this.dport = 0;
    this.seq = 0;
    this.icmpType = -1;
    this.icmpId = 0;
  }
}

/**
 * One decoded packet. Every field describes the packet decoded last and nothing before it: a layer the packet
 * does not have leaves its fields as a new view holds them (l3Off -1, icmpIsError false, ...), so a view
 * reused for millions of packets reads exactly like a fresh one for each (test/packet/decode.test.ts checks
 * that on random interleavings of packet kinds). Fields prefixed with `_` are the TCP options' cache, valid
 * only while `optsParsed` is set; read them through the getters.
 */
export class PacketView {
  /** the buffer the packet was decoded from; header fields not copied at decode time are read from it */
  buf: Uint8Array = new Uint8Array(0);
  /** a DataView over `buf` (same offsets), for 16/32-bit field reads and writes: one load and a byte swap */
  dv: DataView = new DataView(new ArrayBuffer(0));
  status = 0;
  linktype = 0;
  /** offset of the first byte of the frame and captured length */
  frameOff = 0;
  caplen = 0;

  /* L2 */
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
  /** fragment of a larger datagram (not an IPv6 atomic fragment) */
  isFragment = false;
  /** fragment offset in bytes */
  fragOffset = 0;
  moreFragments = false;
  readonly src = new Uint32Array(4);
  readonly dst = new Uint32Array(4);
  /** L4 protocol (after IPv6 extension headers); 59 = no next header */
  proto = 0;
  /** fragment fields (fragOffset, moreFragments) are meaningful only when isFragment */
  /** offset of the IPv6 fragment header, -1 if none (IPv6 only) */
  fragHdrOff = -1;
  /** offset of the final destination in an IPv6 routing header with segments left (RFC 8200 §8.1), -1 if none */
  finalDstOff = -1;

  /* L4 */
  hasL4 = false;
  l4Off = -1;
  sport = 0;
  dport = 0;

  /* TCP (options parsed on first access to an option getter) */
  tcpFlags = 0;
  optsParsed = false;
  _mss = -1;
  _wscale = -1;
  _sackPerm = false;
  _sackCount = 0;
  _sackOff = -1;
  _hasTs = false;
  _tsOff = -1;
  _tsVal = 0;
  _tsEcr = 0;
  _tcpOptBad = false;

  /* ICMP / ICMPv6 */
  icmpType = -1;
  icmpId = 0;
  /** true for destination unreachable, time exceeded, parameter problem, source quench, redirect (v4) and packet too big (v6) */
  icmpIsError = false;
  readonly inner = new InnerView();
  /**
   * set by the general decoder: fields the IPv4 fast path does not write (fragments, IPv6 address words 1-3,
   * VLAN ids, ICMP) may hold values, so the fast path resets the view before it fills it
   */
  dirty = false;

  /* Fields derived or read in place on demand (valid only when their layer is present). */
  /** end of the IP packet inside the buffer: min(l3Off + ipTotalLen, end of captured data) */
  get ipEnd(): number {
    const e = this.l3Off + this.ipTotalLen;
    const capEnd = this.frameOff + this.caplen;
    return e < capEnd ? e : capEnd;
  }
  /** true when the capture holds fewer bytes than the IP header says (snap length cut) */
  get ipTruncated(): boolean {
    return this.l3Off + this.ipTotalLen > this.frameOff + this.caplen;
  }
  /** L4 length from the IP header (header + payload) */
  get l4Len(): number {
    return this.ipTotalLen - (this.l4Off - this.l3Off);
  }
  /** offset of the L2 header (the frame itself), -1 for raw-IP link types */
  get l2Off(): number {
    const lt = this.linktype;
    return lt === 101 || lt === 228 || lt === 229 || lt === 12 || lt === 14 ? -1 : this.frameOff;
  }
  /** offset of the L4 payload, -1 without an L4 header */
  get payloadOff(): number {
    if (!this.hasL4) return -1;
    return this.proto === IPPROTO_TCP ? this.l4Off + this.tcpHdrLen : this.l4Off + 8;
  }
  /** L4 payload length per the headers (TCP: IP length - header; UDP: UDP length - 8; ICMP: after the 8-byte header) */
  get payloadLen(): number {
    if (!this.hasL4) return 0;
    const len = this.l4Len;
    if (this.proto === IPPROTO_TCP) {
      const h = this.tcpHdrLen;
      return len > h ? len - h : 0;
    }
    if (this.proto === IPPROTO_UDP) {
      const u = this.udpLen;
      return (u >= 8 && !this.isFragment ? u : len) - 8;
    }
    return len - 8;
  }
  get tcpHdrLen(): number {
    return (this.buf[this.l4Off + 12]! >>> 4) << 2;
  }
  get tos(): number {
    return this.ipVersion === 4 ? this.buf[this.l3Off + 1]! : (rd32(this.buf, this.l3Off) >>> 20) & 0xff;
  }
  get ttl(): number {
    return this.buf[this.l3Off + (this.ipVersion === 4 ? 8 : 7)]!;
  }
  /** IPv4 identification, or the IPv6 fragment header's identification (0 without one) */
  get ipId(): number {
    if (this.ipVersion === 4) return rd16(this.buf, this.l3Off + 4);
    return this.fragHdrOff >= 0 ? rd32(this.buf, this.fragHdrOff + 4) : 0;
  }
  get df(): boolean {
    return this.ipVersion === 4 && (this.buf[this.l3Off + 6]! & 0x40) !== 0;
  }
  get flowLabel(): number {
    return this.ipVersion === 6 ? rd32(this.buf, this.l3Off) & 0xfffff : 0;
  }
  get seq(): number {
    return rd32(this.buf, this.l4Off + 4);
  }
  get ack(): number {
    return rd32(this.buf, this.l4Off + 8);
  }
  get window(): number {
    return rd16(this.buf, this.l4Off + 14);
  }
  get udpLen(): number {
    return rd16(this.buf, this.l4Off + 4);
  }
  get icmpCode(): number {
    return this.buf[this.l4Off + 1]!;
  }
  get mss(): number {
    if (!this.optsParsed) parseTcpOptions(this);
    return this._mss;
  }
  get wscale(): number {
    if (!this.optsParsed) parseTcpOptions(this);
    return this._wscale;
  }
  get sackPerm(): boolean {
    if (!this.optsParsed) parseTcpOptions(this);
    return this._sackPerm;
  }
  get sackCount(): number {
    if (!this.optsParsed) parseTcpOptions(this);
    return this._sackCount;
  }
  /** offset of the first SACK block (8 bytes each: left edge, right edge) */
  get sackOff(): number {
    if (!this.optsParsed) parseTcpOptions(this);
    return this._sackOff;
  }
  get hasTs(): boolean {
    if (!this.optsParsed) parseTcpOptions(this);
    return this._hasTs;
  }
  /** offset of the timestamp option's TSval (TSecr follows), -1 without one */
  get tsOff(): number {
    if (!this.optsParsed) parseTcpOptions(this);
    return this._tsOff;
  }
  get tsVal(): number {
    if (!this.optsParsed) parseTcpOptions(this);
    return this._tsVal;
  }
  get tsEcr(): number {
    if (!this.optsParsed) parseTcpOptions(this);
    return this._tsEcr;
  }
  /** an option with an impossible length stopped option parsing */
  get tcpOptBad(): boolean {
    if (!this.optsParsed) parseTcpOptions(this);
    return this._tcpOptBad;
  }

  /**
   * The fields the IPv4 fast path of the decoder does not write, back to what a new view holds (after the
   * general decoder ran: dirty).
   */
  resetRest(): void {
    if (this.vlanCount !== 0) this.vlans.fill(0);
    if (this.ipVersion === 6 || this.src[1] !== 0 || this.src[2] !== 0 || this.src[3] !== 0 || this.dst[1] !== 0 || this.dst[2] !== 0 || this.dst[3] !== 0) {
      this.src.fill(0);
      this.dst.fill(0);
    }
    this.fragOffset = 0;
    this.moreFragments = false;
    this.fragHdrOff = -1;
    this.finalDstOff = -1;
    this.icmpType = -1;
    this.icmpId = 0;
    if (this.icmpIsError) this.inner.reset();
    this.icmpIsError = false;
    this.dirty = false;
  }

  /** Back to what a new view holds, every field (the buffer kept). */
  reset(): void {
    this.status = 0;
    this.linktype = 0;
    this.frameOff = 0;
    this.caplen = 0;
    this.ethertype = 0;
    if (this.vlanCount !== 0) this.vlans.fill(0);
    this.vlanCount = 0;
    this.mplsLabels = 0;
    this.l3Off = -1;
    if (this.ipVersion === 6 || this.src[1] !== 0 || this.src[2] !== 0 || this.src[3] !== 0 || this.dst[1] !== 0 || this.dst[2] !== 0 || this.dst[3] !== 0) {
      this.src.fill(0);
      this.dst.fill(0);
    } else {
      this.src[0] = 0;
      this.dst[0] = 0;
    }
    this.ipVersion = 0;
    this.ipHdrLen = 0;
    this.ipTotalLen = 0;
    this.isFragment = false;
    this.fragOffset = 0;
    this.moreFragments = false;
    this.proto = 0;
    this.fragHdrOff = -1;
    this.finalDstOff = -1;
    this.hasL4 = false;
    this.l4Off = -1;
    this.sport = 0;
    this.dport = 0;
    this.tcpFlags = 0;
    this.optsParsed = false;
    this.icmpType = -1;
    this.icmpId = 0;
    if (this.icmpIsError) this.inner.reset();
    this.icmpIsError = false;
    this.dirty = false;
  }
}
