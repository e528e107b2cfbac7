/**
 * Transmit: what the engine sends goes to a Sink (the output pcap in replay, raw sockets or L2 inject live),
 * rewritten for the connection's forwarding mode: translated in place (NAT, FNAT, SNAT; ICMP errors about
 * them, outer and quoted headers), with a TOA option (FNAT), unchanged to a server's MAC (DR), or wrapped
 * (tunnel). The LB is a hop: decrement_ttl, and packets too big for the path to the servers are answered
 * with ICMP fragmentation needed / packet too big. Packets not sent are counted by reason.
 */
import type { PacketRecord } from '../capture/record.js';
import type { Conntrack } from '../conntrack/conntrack.js';
import { T_DST, T_PORTS, T_SRC, T_STRIDE } from '../conntrack/table.js';
import { MAX_CAPLEN } from '../capture/pcap.js';
import { sameAddr } from '../packet/bytes.js';
import { IPPROTO_TCP, TCP_ACK, TCP_RST, TCP_SYN, type PacketView } from '../packet/view.js';
import type { Flows } from '../flows/flows.js';
import type { Service } from '../service/services.js';
import { drRewrite } from './dr.js';
import { icmpError, ICMPGEN_FRAG_NEEDED, ICMPGEN_TIME_EXCEEDED, tooBig } from './icmp-gen.js';
import { FWD_DR } from './mode.js';
import { icmpXlate, natRewrite, natRewrite4 } from './nat.js';
import { addToa } from './toa.js';
import { ackDown, insertBefore, lowerMss, ppHeader, seqUp } from './proxy.js';
import { decrementTtl } from './ttl.js';
import { tunnelEncap } from './tunnel.js';

/**
 * Where the LB's packets go. `buf[off, off+len)` is a whole frame of the record's link type whose IP header
 * starts `l2len` bytes in (every packet the LB makes keeps the link header of the packet it came from);
 * `l2` is set for direct routing, whose frame must leave as it is (only its destination MAC was changed).
 * Returns null when sent, else the reason it was not (counted).
 */
/**
 * Why a packet was not sent (the replay summary's not_emitted, tsvs_not_emitted_total{reason}): the type makes
 * every reason one of these, so the metrics list each from the start.
 */
export const NOT_EMITTED_REASONS = [
  'bad_checksum',
  'decode_drop',
  'direct_return',
  'dr_needs_ethernet',
  'frag_needed',
  'no_l2_port',
  'not_service',
  'not_tcp_udp',
  'not_tracked',
  'other_linktype',
  'proxy_header_too_big',
  'synproxy',
  'synproxy_handshake',
  'synproxy_overload',
  'truncated',
  'ttl_exceeded',
  'tunnel_too_big',
  'agent_down',
  'agent_not_its_conn',
  'tx_no_ip_header',
  'tx_no_ipv6',
  'tx_queue_full',
] as const;
export type NotEmittedReason = (typeof NOT_EMITTED_REASONS)[number];

export interface Sink {
  send(r: PacketRecord, buf: Uint8Array, off: number, len: number, wirelen: number, l2len: number, l2: boolean): NotEmittedReason | null;
  /** packets it can take now before it must refuse (live: room left in the transmit queue); none given: no limit */
  spare?(): number;
  /** an agent's server (issue 18): the inner IP packet `len` bytes at `off`, to the agent over the hub's UDP socket (GUE variant 1) */
  agent?(id: string, buf: Uint8Array, off: number, len: number): NotEmittedReason | null;
}

/** emit() kinds */
export const FORWARDED = 0;
export const TUNNELED = 1;
export const GENERATED = 2;

export interface XmitOptions {
  /** forwarded packets lose one TTL / hop; those arriving with 1 or 0 are not forwarded */
  decrementTtl?: boolean;
  /** of the path to the servers (default 1500); bigger packets get ICMP fragmentation needed / packet too big */
  mtu?: number;
  /** some service adds TOA */
  toa: boolean;
  /** some service sends the PROXY protocol header */
  proxy?: boolean;
}

export class Xmit {
  emitted = 0;
  readonly notEmitted: Record<string, number> = {};
  readonly icmpSent = { frag_needed: 0, time_exceeded: 0 };
  toaAdded = 0;
  /** the engine's time (µs) when it last dropped a packet for want of transmit room (-1: never) */
  overloadAtUs = -1;
  readonly toaOn: boolean;
  private readonly scratch = Buffer.allocUnsafe(MAX_CAPLEN + 128);
  private readonly icmpOut = Buffer.allocUnsafe(2048);
  private readonly caddr = new Uint32Array(4);
  private readonly oaddr = new Uint32Array(4);
  private readonly aaddr = new Uint32Array(4);
  private readonly baddr = new Uint32Array(4);
  private readonly decTtl: boolean;
  readonly mtu: number;
  /** TOA (FNAT): per connection, the server's ISN + 1 once its SYN-ACK passed (DPVS fdata_seq) */
  private readonly toaAck: Uint32Array;
  /** PROXY protocol (FNAT): per connection, the server's ISN + 1, the header's length once sent (0: not yet) and the client's sequence number it went at */
  private ppIsn = new Uint32Array(0);
  private ppLen = new Uint8Array(0);
  private ppSeq = new Uint32Array(0);
  private readonly ppHdr = new Uint8Array(128);
  /** PROXY protocol headers sent (retransmissions of the segment that carried one included) */
  ppSent = 0;
  /** flow accounting: the flow of the packet being handled (-1: none) and its IP bytes, set by the engine */
  flows: Flows | null = null;
  flow = -1;
  flowBytes = 0;

  constructor(
    readonly sink: Sink,
    private readonly ct: Conntrack,
    o: XmitOptions,
  ) {
    this.decTtl = o.decrementTtl === true;
    this.mtu = o.mtu ?? 1500;
    this.toaOn = o.toa;
    this.toaAck = o.toa ? new Uint32Array(ct.table.capacity) : new Uint32Array(0);
    if (o.proxy) this.proxyRows();
  }

  /** the PROXY protocol's rows (at start, or when a reload first brings a service that uses it) */
  private proxyRows(): void {
    const cap = this.ct.table.capacity;
    this.ppIsn = new Uint32Array(cap);
    this.ppLen = new Uint8Array(cap);
    this.ppSeq = new Uint32Array(cap);
  }

  /** the packet is not sent, for `why`; its flow records the drop as `detail` when given (a finer reason) */
  skip(why: NotEmittedReason, detail?: string): void {
    this.notEmitted[why] = (this.notEmitted[why] ?? 0) + 1;
    if (this.flows !== null) this.flows.drop(this.flow, detail ?? why, this.flowBytes);
  }

  /**
   * Send a frame. `kind`: FORWARDED (the packet itself, rewritten), TUNNELED (wrapped), or GENERATED (an
   * answer of the LB's own: a SYN-ACK, a RST, an ICMP error); what a flow counts as sent on are the first two.
   */
  emit(r: PacketRecord, v: PacketView, buf: Uint8Array, off: number, len: number, wirelen: number, kind = FORWARDED, l2 = false): void {
    const l2len = v.l3Off - v.frameOff;
    const why = this.sink.send(r, buf, off, len, wirelen, l2len, l2);
    if (why === null) {
      this.emitted++;
      if (this.flows !== null && kind !== GENERATED) this.flows.sent(this.flow, len - l2len, kind === TUNNELED);
    } else {
      this.skip(why);
      if (why === 'tx_queue_full') this.overloadAtUs = this.ct.time.nowUs;
    }
  }

  /** no more transmit room than `reserve`: a packet that may wait (a SYN-ACK) is dropped, counted as `why` */
  overloaded(reserve: number, why: NotEmittedReason): boolean {
    if (reserve === 0 || this.sink.spare === undefined || this.sink.spare() > reserve) return false;
    this.skip(why);
    this.overloadAtUs = this.ct.time.nowUs;
    return true;
  }

  /** answer the packet with an ICMP error of the LB's own (emitted like any packet the LB sends) */
  private sendIcmp(r: PacketRecord, v: PacketView, kind: number, pathMtu: number): void {
    const n = icmpError(r.buf, r.linktype, v, kind, pathMtu, this.icmpOut);
    if (n < 0) return;
    if (kind === ICMPGEN_FRAG_NEEDED) this.icmpSent.frag_needed++;
    else this.icmpSent.time_exceeded++;
    this.emit(r, v, this.icmpOut, 0, n, n, GENERATED);
  }

  /**
   * The hop this LB is, for a packet it would forward toward a server over a path of `pathMtu` (0: a reply
   * toward the client or an ICMP error, neither checked nor answered): true when it may go (its TTL then
   * decremented, if configured); else it is answered with time exceeded or fragmentation needed, and counted.
   */
  hop(r: PacketRecord, v: PacketView, pathMtu: number): boolean {
    if (pathMtu > 0 && tooBig(v, pathMtu)) {
      this.sendIcmp(r, v, ICMPGEN_FRAG_NEEDED, pathMtu);
      this.skip('frag_needed');
      return false;
    }
    if (!this.decTtl || decrementTtl(r.buf, v)) return true;
    // (an expiring reply is only dropped: the error would have to come from the LB's own address)
    if (pathMtu > 0) this.sendIcmp(r, v, ICMPGEN_TIME_EXCEEDED, 0);
    this.skip('ttl_exceeded');
    return false;
  }

  /**
   * Translated modes: the original tuple client:cport -> vip:vport (for SNAT the remote host) is seen on the
   * other side as the inverse of the reply tuple, a:pa -> b:pb (NAT: client -> server, FNAT: local address ->
   * server, SNAT: SNAT address -> remote). `dir` is the packet's, or for an ICMP error the quoted packet's.
   */
  translate(b: Uint8Array, v: PacketView, c: number, dir: number, icmpErr: boolean): void {
    if (v.ipVersion === 4 && !icmpErr) {
      // IPv4 TCP/UDP: both endpoints in one rewrite, addresses read in place
      // inbound it becomes the reply tuple inverted (to the server), outbound the original tuple inverted
      const t = this.ct.table;
      const tup = dir === 0 ? t.rtup : t.tup;
      const o = T_STRIDE * c;
      const p = tup[o + T_PORTS]!;
      natRewrite4(v, tup[o + T_DST]! | 0, tup[o + T_SRC]! | 0, (p << 16) | (p >>> 16));
    } else this.translateWords(b, v, c, dir, icmpErr);
  }

  /** translate() for IPv6 and for ICMP errors: addresses as 4 words */
  private translateWords(b: Uint8Array, v: PacketView, c: number, dir: number, icmpErr: boolean): void {
    const t = this.ct.table;
    const { caddr, oaddr, aaddr, baddr } = this;
    t.addrWords(c, 'src', caddr);
    t.addrWords(c, 'dst', oaddr);
    t.replyAddrWords(c, 'dst', aaddr);
    t.replyAddrWords(c, 'src', baddr);
    const cport = t.sportOf(c);
    const vport = t.dportOf(c);
    const pa = t.rdportOf(c);
    const pb = t.rsportOf(c);
    if (icmpErr) {
      // 0: the quoted packet went out translated and the error comes back
      if (dir === 0) icmpXlate(b, v, aaddr, caddr, cport, baddr, oaddr, vport);
      else icmpXlate(b, v, oaddr, baddr, pb, caddr, aaddr, pa);
    } else if (dir === 0) {
      natRewrite(b, v, 0, aaddr, pa);
      natRewrite(b, v, 1, baddr, pb);
    } else {
      // a reply seen from the VIP (client-side capture) needs no source change: natRewrite skips it
      natRewrite(b, v, 0, oaddr, vport);
      natRewrite(b, v, 1, caddr, cport);
    }
  }

  /** NAT, FNAT, SNAT: the hop, the rewrite, and out (FNAT with TOA: see sendTranslated) */
  translated(r: PacketRecord, v: PacketView, c: number, dir: number, icmpErr: boolean, toa: boolean, pp = 0): void {
    // (a packet hop() refuses expired here or does not fit the path: counted, maybe answered, by hop)
    if (this.hop(r, v, dir === 0 && !icmpErr ? this.mtu : 0)) {
      this.translate(r.buf, v, c, dir, icmpErr);
      if (pp !== 0 && !icmpErr && v.proto === IPPROTO_TCP && this.sendProxy(r, v, c, dir, pp)) return;
      this.sendTranslated(r, v, c, dir, toa && !icmpErr);
    }
  }

  /**
   * FNAT with the PROXY protocol (src/xmit/proxy.ts): the header before the client's first bytes, and the
   * sequence space moved by its length. Returns true when the packet was sent (or dropped) here; otherwise
   * it was adjusted in place and goes out as any translated packet.
   */
  private sendProxy(r: PacketRecord, v: PacketView, c: number, dir: number, version: number): boolean {
    if (this.ppLen.length === 0) this.proxyRows();
    const f = v.tcpFlags;
    const b = r.buf;
    if (dir === 1) {
      if ((f & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK)) {
        this.ppIsn[c] = (v.seq + 1) >>> 0;
        // the client's segments must leave room for the header (its first data may carry it)
        lowerMss(b, v, this.proxyHeader(c, version));
      }
      if (this.ppLen[c]! > 0) ackDown(b, v, this.ppLen[c]!);
      return false;
    }
    if ((f & (TCP_SYN | TCP_ACK)) === TCP_SYN) {
      // a new connection (handles are reused)
      this.ppIsn[c] = 0;
      this.ppLen[c] = 0;
      return false;
    }
    const len = this.ppLen[c]!;
    const first = len === 0 && (f & (TCP_SYN | TCP_RST | TCP_ACK)) === TCP_ACK && this.ppIsn[c] !== 0 && v.ack === this.ppIsn[c];
    // the segment at the header's place again (a retransmission, or the first data after a pure ACK that
    // carried it): the header again in front, identical bytes at the same place in the server's stream
    const again = len > 0 && v.seq === this.ppSeq[c] && v.payloadLen > 0;
    if (!first && !again) {
      if (len > 0) seqUp(b, v, len);
      return false;
    }
    const h = this.proxyHeader(c, version);
    const n = insertBefore(b, v, v.frameOff, r.linktype, this.ppHdr, h, this.scratch, this.mtu);
    if (n < 0) {
      this.skip('proxy_header_too_big');
      return true;
    }
    if (first) {
      this.ppLen[c] = h;
      this.ppSeq[c] = v.seq;
    }
    this.ppSent++;
    this.emit(r, v, this.scratch, 0, n, n + (r.wirelen - r.caplen));
    return true;
  }

  /** connection c's PROXY header in ppHdr: the client and the address it asked for (the VIP); its length */
  private proxyHeader(c: number, version: number): number {
    const t = this.ct.table;
    t.addrWords(c, 'src', this.caddr);
    t.addrWords(c, 'dst', this.oaddr);
    return ppHeader(version, t.isV6(c), this.caddr, this.oaddr, t.sportOf(c), t.dportOf(c), this.ppHdr, 0);
  }

  /**
   * Emit a translated packet. FNAT with TOA, as DPVS: the client's SYN and its packets that acknowledge just
   * the server's SYN-ACK (the handshake's ACK, the first data) carry the client's address in a TCP option.
   */
  sendTranslated(r: PacketRecord, v: PacketView, c: number, dir: number, toa: boolean): void {
    if (!(toa && v.proto === IPPROTO_TCP && this.sendToa(r, v, c, dir))) this.emit(r, v, r.buf, r.off, r.caplen, r.wirelen);
  }

  /** TOA: the server's SYN-ACK of connection c (a synproxy's, which is not forwarded), with sequence number `seq` */
  serverIsn(c: number, seq: number): void {
    if (this.toaOn) this.toaAck[c] = (seq + 1) >>> 0;
  }

  /** sendTranslated() with TOA on: true when the packet went out with the option added */
  private sendToa(r: PacketRecord, v: PacketView, c: number, dir: number): boolean {
    const f = v.tcpFlags;
    const toaAck = this.toaAck;
    if (dir === 1) {
      if ((f & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK)) toaAck[c] = (v.seq + 1) >>> 0;
      return false;
    }
    const syn = (f & (TCP_SYN | TCP_ACK)) === TCP_SYN;
    if (syn) toaAck[c] = 0; // a new connection (handles are reused)
    if (!(syn || ((f & (TCP_SYN | TCP_RST)) === 0 && toaAck[c] !== 0 && v.ack === toaAck[c]))) return false;
    this.ct.table.addrWords(c, 'src', this.caddr);
    const n = addToa(r.buf, v, this.scratch, this.caddr, this.ct.table.sportOf(c), this.mtu);
    if (n <= 0) return false;
    this.toaAdded++;
    this.emit(r, v, this.scratch, 0, n, n + (r.wirelen - r.caplen));
    return true;
  }

  /** set while the packet being processed is one an agent sent the hub (src/live/hub.ts): that agent's id */
  agentFrom: string | null = null;

  /** DR and tunnel: the server answers the client directly; only what goes to the VIP is forwarded */
  direct(r: PacketRecord, v: PacketView, s: Service, d: number, mode: number): void {
    const v6 = v.ipVersion === 6;
    const toVip = sameAddr(v.dst, s.vip, v6);
    if (!toVip) {
      // the server's reply: seen when an agent's hub brought it (then on to the client, as it is, when it is a
      // reply of a connection scheduled to that agent), or captured as a direct return (not for the LB to send)
      if (this.agentFrom === null) this.skip('direct_return');
      else if (s.agentOf[d] !== this.agentFrom || !sameAddr(v.src, s.vip, v6)) this.skip('agent_not_its_conn');
      else this.emit(r, v, r.buf, r.off, r.caplen, r.wirelen);
    }
    else if (!this.hop(r, v, mode === FWD_DR ? this.mtu : this.mtu - (v6 ? 40 : 20) - (s.gue ? 8 : 0))) {
      // expired here (the tunnel's inner packet is the one forwarded, as the kernel's)
    } else if (mode === FWD_DR) {
      if (r.linktype !== 1) this.skip('dr_needs_ethernet');
      else {
        drRewrite(r.buf, r.off, s.mac[d]!);
        this.emit(r, v, r.buf, r.off, r.caplen, r.wirelen, FORWARDED, true);
      }
    } else if (s.agentOf[d] !== null) {
      // an agent: the inner packet goes as it is, in UDP from the hub's socket (the agent's NAT lets that in)
      const why = this.sink.agent ? this.sink.agent(s.agentOf[d]!, r.buf, v.l3Off, v.ipEnd - v.l3Off) : 'agent_down';
      if (why !== null) this.skip(why);
      else {
        this.emitted++;
        if (this.flows !== null) this.flows.sent(this.flow, v.ipEnd - v.l3Off, true);
      }
    } else {
      const n = tunnelEncap(r.buf, v, this.scratch, s.tunnelSrc ?? s.vip, s.serverAddr[d]!, s.gue, s.guePort);
      if (n < 0) this.skip('tunnel_too_big');
      else this.emit(r, v, this.scratch, 0, n, n + (r.wirelen - r.caplen), TUNNELED);
    }
  }
}
