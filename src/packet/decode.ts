/**
 * Zero-copy decoder: link layer → IPv4/IPv6 (+ extension headers) → TCP/UDP/ICMP/ICMPv6, and the packet
 * quoted in ICMP errors (RFC 792, RFC 4443: IP header + first 8 bytes of L4).
 *
 * Fills a preallocated `PacketView` and returns its status (see status.ts); never throws, never allocates.
 * Link types follow the tcpdump.org LINKTYPE_ registry: NULL 0, EN10MB 1, RAW 101 (and the BSD aliases 12, 14),
 * LOOP 108, LINUX_SLL 113, IPV4 228, IPV6 229, LINUX_SLL2 276.
 *
 * Length rules (as Linux and tshark apply them):
 * - IPv4 total length 0 or IPv6 payload length 0 without a Jumbo option means "take it from the capture"
 *   (TSO/GRO and BIG TCP super-packets captured on the host).
 * - An IP length larger than what was captured is fine when the frame's wire length covers it (a snap length
 *   cut: `ipTruncated`), and a drop when it does not (the header lies).
 * - Non-first fragments have no L4 header; a first fragment too short for its L4 header is a fragment without L4.
 */
import { dataViewOf, rd16, rd32 } from './bytes.js';
import {
  ICMPV6_TRUNCATED,
  ICMP_TRUNCATED,
  IPV4_BAD_IHL,
  IPV4_BAD_TOTAL_LENGTH,
  IPV4_TRUNCATED,
  IPV6_BAD_PAYLOAD_LENGTH,
  IPV6_EXT_TRUNCATED,
  IPV6_TOO_MANY_EXT,
  IPV6_TRUNCATED,
  IP_BAD_VERSION,
  L2_TRUNCATED,
  MPLS_TRUNCATED,
  NOT_IP,
  OK,
  PPPOE_TRUNCATED,
  TCP_BAD_DATA_OFFSET,
  TCP_TRUNCATED,
  UDP_BAD_LENGTH,
  UDP_TRUNCATED,
  UNSUPPORTED_LINKTYPE,
  VLAN_TRUNCATED,
} from './status.js';
import {
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  MAX_VLANS,
  type InnerView,
  type PacketView,
} from './view.js';

export const LINKTYPE_NULL = 0;
export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW_BSD12 = 12;
export const LINKTYPE_RAW_BSD14 = 14;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LOOP = 108;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_IPV6 = 229;
export const LINKTYPE_LINUX_SLL2 = 276;

export const ETH_P_IP = 0x0800;
export const ETH_P_IPV6 = 0x86dd;
const ETH_P_8021Q = 0x8100;
const ETH_P_8021AD = 0x88a8;
const ETH_P_VNTAG = 0x8926;
const ETH_P_QINQ1 = 0x9100;
const ETH_P_QINQ2 = 0x9200;
const ETH_P_MPLS_UC = 0x8847;
const ETH_P_MPLS_MC = 0x8848;
const ETH_P_PPPOE_SESS = 0x8864;

const MAX_IPV6_EXT = 16;

export function isSupportedLinktype(lt: number): boolean {
  switch (lt) {
    case LINKTYPE_NULL:
    case LINKTYPE_ETHERNET:
    case LINKTYPE_RAW_BSD12:
    case LINKTYPE_RAW_BSD14:
    case LINKTYPE_RAW:
    case LINKTYPE_LOOP:
    case LINKTYPE_LINUX_SLL:
    case LINKTYPE_IPV4:
    case LINKTYPE_IPV6:
    case LINKTYPE_LINUX_SLL2:
      return true;
    default:
      return false;
  }
}

/** Decode one frame of `caplen` captured bytes at `off` (`wirelen` = original length on the wire). */
export function decode(b: Uint8Array, off: number, caplen: number, wirelen: number, linktype: number, v: PacketView): number {
  if (fastIpv4(b, off, caplen, wirelen, linktype, v)) return OK;
  return decodeGeneral(b, off, caplen, wirelen, linktype, v);
}

/**
 * Fast path for the bulk of real traffic: untagged Ethernet or raw IPv4, no IP options, not a fragment,
 * captured whole, TCP or UDP with sane lengths. One flat function (measured ~3x faster than the layered
 * path on this machine). Anything else returns false and goes through the general decoder, which fills the
 * view identically (test/packet/decode.test.ts checks that on mutated packets).
 */
function fastIpv4(b: Uint8Array, off: number, caplen: number, wirelen: number, linktype: number, v: PacketView): boolean {
  let o: number;
  if (linktype === LINKTYPE_ETHERNET) {
    if (caplen < 54 || b[off + 12] !== 0x08 || b[off + 13] !== 0x00) return false;
    o = off + 14;
  } else if (linktype === LINKTYPE_RAW || linktype === LINKTYPE_IPV4) {
    if (caplen < 40) return false;
    o = off;
  } else return false;
  if (b[o] !== 0x45 || (b[o + 6]! & 0x3f) !== 0 || b[o + 7] !== 0) return false;
  const total = (b[o + 2]! << 8) | b[o + 3]!;
  const end = off + caplen;
  if (total < 28 || o + total > end) return false;
  const proto = b[o + 9]!;
  const p = o + 20;
  const len = total - 20;
  let doff = 0;
  if (proto === IPPROTO_TCP) {
    if (len < 20) return false;
    doff = (b[p + 12]! >>> 4) << 2;
    if (doff < 20 || doff > len) return false;
  } else if (proto === IPPROTO_UDP) {
    const ulen = (b[p + 4]! << 8) | b[p + 5]!;
    if (ulen < 8 || ulen > len) return false;
  } else return false;
  // fields this path does not write are as a new view has them unless the general decoder ran last
  if (v.dirty) v.resetRest();
  if (v.buf !== b) setBuf(v, b);
  v.status = OK;
  v.linktype = linktype;
  v.frameOff = off;
  v.caplen = caplen;
  v.ethertype = linktype === LINKTYPE_ETHERNET ? ETH_P_IP : 0;
  v.vlanCount = 0;
  v.mplsLabels = 0;
  v.l3Off = o;
  v.ipVersion = 4;
  v.ipHdrLen = 20;
  v.ipTotalLen = total;
  v.isFragment = false;
  v.proto = proto;
  const d = v.dv;
  v.src[0] = d.getUint32(o + 12);
  v.dst[0] = d.getUint32(o + 16);
  v.hasL4 = true;
  v.l4Off = p;
  v.sport = d.getUint16(p);
  v.dport = d.getUint16(p + 2);
  v.tcpFlags = proto === IPPROTO_TCP ? b[p + 13]! : 0;
  v.optsParsed = false;
  return true;
}

/** a new buffer for the view (the reader's window moved to another, a generated frame): a pointer store costs a GC write barrier, so only then */
function setBuf(v: PacketView, b: Uint8Array): void {
  v.buf = b;
  v.dv = dataViewOf(b);
}

/** wire length of the frame being decoded by the general path */
let wire = 0;

/** The layered decoder: every link type, tags, IPv6 extension headers, fragments, ICMP, drops. */
export function decodeGeneral(b: Uint8Array, off: number, caplen: number, wirelen: number, linktype: number, v: PacketView): number {
  v.reset();
  v.dirty = true;
  // a pointer store costs a GC write barrier (~9 ns here): store only when the window buffer changes
  if (v.buf !== b) setBuf(v, b);
  v.linktype = linktype;
  v.frameOff = off;
  v.caplen = caplen;
  wire = wirelen;
  const end = off + caplen;
  let st: number;
  switch (linktype) {
    case LINKTYPE_ETHERNET: {
      if (caplen < 14) return (v.status = L2_TRUNCATED);
      const type = (b[off + 12]! << 8) | b[off + 13]!;
      // untagged IPv4/IPv6 directly; tags, MPLS and the rest through the ethertype walk
      if (type === ETH_P_IP) {
        v.ethertype = type;
        st = ipv4(b, off + 14, end, v);
      } else if (type === ETH_P_IPV6) {
        v.ethertype = type;
        st = ipv6(b, off + 14, end, v);
      } else st = ethertype(b, off + 12, end, v);
      break;
    }
    case LINKTYPE_RAW:
    case LINKTYPE_RAW_BSD12:
    case LINKTYPE_RAW_BSD14:
      st = rawIp(b, off, end, v);
      break;
    case LINKTYPE_IPV4:
      st = ipv4(b, off, end, v);
      break;
    case LINKTYPE_IPV6:
      st = ipv6(b, off, end, v);
      break;
    case LINKTYPE_LINUX_SLL:
      if (caplen < 16) return (v.status = L2_TRUNCATED);
      st = ethertype(b, off + 14, end, v);
      break;
    case LINKTYPE_LINUX_SLL2:
      if (caplen < 20) return (v.status = L2_TRUNCATED);
      st = dispatchEthertype(b, rd16(b, off), off + 20, end, v);
      break;
    case LINKTYPE_NULL:
    case LINKTYPE_LOOP: {
      if (caplen < 4) return (v.status = L2_TRUNCATED);
      // LINKTYPE_NULL stores the family in the capturing host's byte order; LOOP in network order.
      let fam = rd32(b, off);
      if (linktype === LINKTYPE_NULL && (fam & 0xffff) === 0) fam = fam >>> 24 | ((fam >>> 8) & 0xff00);
      if (fam === 2) st = ipv4(b, off + 4, end, v);
      else if (fam === 10 || fam === 24 || fam === 28 || fam === 30) st = ipv6(b, off + 4, end, v);
      else st = NOT_IP;
      break;
    }
    default:
      st = UNSUPPORTED_LINKTYPE;
  }
  v.status = st;
  return st;
}

/** `o` points at an ethertype field; walk VLAN/MPLS/PPPoE to the L3 header. */
function ethertype(b: Uint8Array, o: number, end: number, v: PacketView): number {
  let type = rd16(b, o);
  o += 2;
  while (type === ETH_P_8021Q || type === ETH_P_8021AD || type === ETH_P_QINQ1 || type === ETH_P_QINQ2 || type === ETH_P_VNTAG) {
    if (type === ETH_P_VNTAG) {
      // Cisco VN-Tag (802.1Qbh): 4 bytes of tag, then the next ethertype
      if (o + 6 > end) return VLAN_TRUNCATED;
      type = rd16(b, o + 4);
      o += 6;
      continue;
    }
    if (o + 4 > end) return VLAN_TRUNCATED;
    if (v.vlanCount < MAX_VLANS) v.vlans[v.vlanCount] = rd16(b, o) & 0x0fff;
    v.vlanCount++;
    type = rd16(b, o + 2);
    o += 4;
  }
  return dispatchEthertype(b, type, o, end, v);
}

function dispatchEthertype(b: Uint8Array, type: number, o: number, end: number, v: PacketView): number {
  v.ethertype = type;
  switch (type) {
    case ETH_P_IP:
      return ipv4(b, o, end, v);
    case ETH_P_IPV6:
      return ipv6(b, o, end, v);
    case ETH_P_8021Q:
    case ETH_P_8021AD:
    case ETH_P_QINQ1:
    case ETH_P_QINQ2:
    case ETH_P_VNTAG:
      return ethertype(b, o - 2, end, v);
    case ETH_P_MPLS_UC:
    case ETH_P_MPLS_MC: {
      for (;;) {
        if (o + 4 > end) return MPLS_TRUNCATED;
        const bos = b[o + 2]! & 1;
        v.mplsLabels++;
        o += 4;
        if (bos) break;
      }
      if (o >= end) return MPLS_TRUNCATED;
      const nib = b[o]! >>> 4;
      if (nib === 4) return ipv4(b, o, end, v);
      if (nib === 6) return ipv6(b, o, end, v);
      return NOT_IP; // pseudowire or other payload
    }
    case ETH_P_PPPOE_SESS: {
      if (o + 8 > end) return PPPOE_TRUNCATED;
      const ppp = rd16(b, o + 6);
      if (ppp === 0x0021) return ipv4(b, o + 8, end, v);
      if (ppp === 0x0057) return ipv6(b, o + 8, end, v);
      return NOT_IP;
    }
    default:
      return NOT_IP;
  }
}

function rawIp(b: Uint8Array, o: number, end: number, v: PacketView): number {
  if (o >= end) return L2_TRUNCATED;
  const nib = b[o]! >>> 4;
  if (nib === 4) return ipv4(b, o, end, v);
  if (nib === 6) return ipv6(b, o, end, v);
  return IP_BAD_VERSION;
}

/** Bytes of the frame beyond `o` that were on the wire (captured or not). */
function wireAvail(v: PacketView, o: number): number {
  return wire - (o - v.frameOff);
}

function ipv4(b: Uint8Array, o: number, end: number, v: PacketView): number {
  if (o + 20 > end) return (end > o && b[o]! >>> 4 !== 4) ? IP_BAD_VERSION : IPV4_TRUNCATED;
  const vihl = b[o]!;
  if (vihl >>> 4 !== 4) return IP_BAD_VERSION;
  const hl = (vihl & 15) << 2;
  let total = rd16(b, o + 2);
  // the addresses are known from here: a packet dropped below still counts on its (source, destination) flow
  v.l3Off = o;
  v.ipVersion = 4;
  v.ipHdrLen = hl;
  v.ipTotalLen = total;
  v.src[0] = rd32(b, o + 12);
  v.dst[0] = rd32(b, o + 16);
  if (hl < 20) return IPV4_BAD_IHL;
  if (o + hl > end) return IPV4_TRUNCATED;
  const cap = end - o;
  if (total === 0) v.ipTotalLen = total = Math.max(cap, wireAvail(v, o)); // TSO / GRO super-packet: length from the capture
  if (total < hl) return IPV4_BAD_TOTAL_LENGTH;
  if (total > cap && total > wireAvail(v, o)) return IPV4_BAD_TOTAL_LENGTH;
  const ipEnd = total > cap ? end : o + total;
  const ff = rd16(b, o + 6);
  v.moreFragments = (ff & 0x2000) !== 0;
  v.fragOffset = (ff & 0x1fff) << 3;
  v.isFragment = v.moreFragments || v.fragOffset !== 0;
  v.proto = b[o + 9]!;
  if (v.fragOffset !== 0) return OK; // non-first fragment: no L4 header here
  return l4(b, o + hl, total - hl, ipEnd, v);
}

function ipv6(b: Uint8Array, o: number, end: number, v: PacketView): number {
  if (o + 40 > end) return (end > o && b[o]! >>> 4 !== 6) ? IP_BAD_VERSION : IPV6_TRUNCATED;
  const w0 = rd32(b, o);
  if (w0 >>> 28 !== 6) return IP_BAD_VERSION;
  const cap = end - o;
  const plen = rd16(b, o + 4);
  // payload length 0: a jumbogram (RFC 2675, length in a hop-by-hop option) or a BIG TCP / GRO super-packet
  let total = plen === 0 ? 0 : plen + 40;
  v.l3Off = o;
  v.ipVersion = 6;
  v.ipTotalLen = total; // (what the header says: a packet dropped below counts these bytes on its flow)
  v.fragHdrOff = -1;
  v.finalDstOff = -1;
  v.fragOffset = 0;
  v.moreFragments = false;
  v.isFragment = false;
  for (let i = 0; i < 4; i++) {
    v.src[i] = rd32(b, o + 8 + 4 * i);
    v.dst[i] = rd32(b, o + 24 + 4 * i);
  }
  let nh = b[o + 6]!;
  let p = o + 40;
  let n = 0;
  for (;;) {
    if (nh === 0 || nh === 43 || nh === 60 || nh === 135 || nh === 139 || nh === 140) {
      if (p + 8 > end) return IPV6_EXT_TRUNCATED;
      const len = (b[p + 1]! + 1) << 3;
      if (p + len > end) return IPV6_EXT_TRUNCATED;
      if (nh === 0 && total === 0) {
        // look for a Jumbo Payload option (type 0xC2, RFC 2675)
        for (let q = p + 2; q + 1 < p + len; ) {
          const t = b[q]!;
          if (t === 0) {
            q++;
            continue;
          }
          if (t === 0xc2 && q + 6 <= p + len) {
            total = rd32(b, q + 2) + 40;
            break;
          }
          q += 2 + b[q + 1]!;
        }
      }
      if (nh === 43 && b[p + 3]! > 0) {
        // routing header with segments left: the pseudo-header uses the final destination
        const rt = b[p + 2]!;
        if ((rt === 0 || rt === 2) && len >= 24) v.finalDstOff = p + len - 16; // last listed address
        else if (rt === 4 && len >= 24) v.finalDstOff = p + 8; // SRH: segment list[0]
      }
      nh = b[p]!;
      p += len;
    } else if (nh === 44) {
      if (p + 8 > end) return IPV6_EXT_TRUNCATED;
      const fo = rd16(b, p + 2);
      v.fragHdrOff = p;
      v.fragOffset = fo & 0xfff8;
      v.moreFragments = (fo & 1) !== 0;
      v.isFragment = v.fragOffset !== 0 || v.moreFragments;
      nh = b[p]!;
      p += 8;
      if (v.fragOffset !== 0) break;
    } else if (nh === 51) {
      if (p + 8 > end) return IPV6_EXT_TRUNCATED;
      const len = (b[p + 1]! + 2) << 2;
      if (p + len > end) return IPV6_EXT_TRUNCATED;
      nh = b[p]!;
      p += len;
    } else break;
    if (++n > MAX_IPV6_EXT) return IPV6_TOO_MANY_EXT;
  }
  if (total === 0) total = Math.max(cap, wireAvail(v, o));
  if (total > cap && total > wireAvail(v, o)) return IPV6_BAD_PAYLOAD_LENGTH;
  const hl = p - o;
  if (hl > total) return IPV6_BAD_PAYLOAD_LENGTH;
  v.ipHdrLen = hl;
  v.ipTotalLen = total;
  const ipEnd = total > cap ? end : o + total;
  v.proto = nh;
  if (v.fragOffset !== 0) return OK;
  return l4(b, p, total - hl, ipEnd, v);
}

/**
 * `len` = L4 bytes per the IP header; `end` = end of captured bytes of this IP packet.
 * One small function per protocol so the JIT can inline the common ones into the IP decoders.
 */
function l4(b: Uint8Array, o: number, len: number, end: number, v: PacketView): number {
  const p = v.proto;
  if (p === IPPROTO_TCP) return tcp(b, o, len, end - o, v);
  if (p === IPPROTO_UDP) return udp(b, o, len, end - o, v);
  if (p === IPPROTO_ICMP || p === IPPROTO_ICMPV6) return icmp(b, o, len, end, v);
  return OK;
}

function tcp(b: Uint8Array, o: number, len: number, cap: number, v: PacketView): number {
  if (len < 20 || cap < 20) return v.isFragment ? OK : TCP_TRUNCATED;
  const doff = (b[o + 12]! >>> 4) << 2;
  if (doff < 20 || (doff > len && !v.isFragment)) return TCP_BAD_DATA_OFFSET;
  v.hasL4 = true;
  v.l4Off = o;
  v.sport = (b[o]! << 8) | b[o + 1]!;
  v.dport = (b[o + 2]! << 8) | b[o + 3]!;
  v.tcpFlags = b[o + 13]!;
  v.optsParsed = false;
  return OK;
}

function udp(b: Uint8Array, o: number, len: number, cap: number, v: PacketView): number {
  const frag = v.isFragment;
  if (len < 8 || cap < 8) return frag ? OK : UDP_TRUNCATED;
  const ulen = (b[o + 4]! << 8) | b[o + 5]!;
  if (!frag && (ulen < 8 || ulen > len) && !(ulen === 0 && v.ipVersion === 6)) return UDP_BAD_LENGTH;
  v.hasL4 = true;
  v.l4Off = o;
  v.sport = (b[o]! << 8) | b[o + 1]!;
  v.dport = (b[o + 2]! << 8) | b[o + 3]!;
  return OK;
}

function icmp(b: Uint8Array, o: number, len: number, end: number, v: PacketView): number {
  const six = v.proto === IPPROTO_ICMPV6;
  if (len < 8 || end - o < 8) {
    if (v.isFragment) return OK;
    return six ? ICMPV6_TRUNCATED : ICMP_TRUNCATED;
  }
  v.hasL4 = true;
  v.l4Off = o;
  const type = b[o]!;
  v.icmpType = type;
  v.icmpId = 0;
  v.icmpIsError = false;
  if (six ? type >= 1 && type <= 4 : type === 3 || type === 4 || type === 5 || type === 11 || type === 12) {
    v.icmpIsError = true;
    v.inner.reset();
    if (!v.isFragment) inner(b, o + 8, end, v.inner);
  } else if (six ? type === 128 || type === 129 : isIcmpQuery(type)) {
    v.icmpId = rd16(b, o + 4);
  }
  return OK;
}

export function isIcmpQuery(type: number): boolean {
  return type === 8 || type === 0 || type === 13 || type === 14 || type === 15 || type === 16 || type === 17 || type === 18;
}

/** Decode the packet quoted in an ICMP error, as far as it was captured. */
function inner(b: Uint8Array, o: number, end: number, q: InnerView): void {
  if (o + 20 > end) return;
  const ver = b[o]! >>> 4;
  let p: number;
  if (ver === 4) {
    const hl = (b[o]! & 15) << 2;
    if (hl < 20 || o + hl > end) return;
    q.ipVersion = 4;
    q.l3Off = o;
    q.proto = b[o + 9]!;
    q.src[0] = rd32(b, o + 12);
    q.dst[0] = rd32(b, o + 16);
    if ((rd16(b, o + 6) & 0x1fff) !== 0) return;
    p = o + hl;
  } else if (ver === 6) {
    if (o + 40 > end) return;
    q.ipVersion = 6;
    q.l3Off = o;
    for (let i = 0; i < 4; i++) {
      q.src[i] = rd32(b, o + 8 + 4 * i);
      q.dst[i] = rd32(b, o + 24 + 4 * i);
    }
    let nh = b[o + 6]!;
    p = o + 40;
    for (let n = 0; n <= MAX_IPV6_EXT; n++) {
      if (nh === 0 || nh === 43 || nh === 60 || nh === 135) {
        if (p + 8 > end) return;
        const next = b[p]!;
        p += (b[p + 1]! + 1) << 3;
        nh = next;
      } else if (nh === 44) {
        if (p + 8 > end) return;
        if ((rd16(b, p + 2) & 0xfff8) !== 0) return;
        nh = b[p]!;
        p += 8;
      } else if (nh === 51) {
        if (p + 8 > end) return;
        const next = b[p]!;
        p += (b[p + 1]! + 2) << 2;
        nh = next;
      } else break;
    }
    q.proto = nh;
  } else return;
  if (p + 8 > end) return;
  q.l4Off = p;
  switch (q.proto) {
    case IPPROTO_TCP:
      q.sport = rd16(b, p);
      q.dport = rd16(b, p + 2);
      q.seq = rd32(b, p + 4);
      q.valid = true;
      break;
    case IPPROTO_UDP:
      q.sport = rd16(b, p);
      q.dport = rd16(b, p + 2);
      q.valid = true;
      break;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      q.icmpType = b[p]!;
      q.icmpId = rd16(b, p + 4);
      q.valid = true;
      break;
    default:
      q.valid = true;
  }
}
