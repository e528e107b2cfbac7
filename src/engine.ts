/**
 * The load balancer's packet path, shared by replay and live: a decoded packet is tracked, scheduled on its
 * first packet, handed to the synproxy when its service has one, rewritten for its forwarding mode and given
 * to the sink (the output pcap in replay, a raw socket or L2 inject in live). Packets that are not sent are
 * counted by reason.
 */
import { PacketRecord } from './capture/record.js';
import { decode } from './packet/decode.js';
import { sameAddr } from './packet/bytes.js';
import { IPPROTO_TCP, PacketView, TCP_ACK, TCP_RST, TCP_SYN } from './packet/view.js';
import { SP_NO_CONN, SP_SYN, type Tracker } from './conntrack/tracker.js';
import { T_DST, T_PORTS, T_SRC, T_STRIDE } from './conntrack/table.js';
import { FWD_DR, FWD_FNAT, FWD_NAT, FWD_SNAT, serverLabel, ST_CONNS, ST_INBYTES, ST_INPKTS, ST_N, ST_OUTBYTES, ST_OUTPKTS, type Service, type Services } from './service/services.js';
import { icmpXlate, natRewrite, natRewrite4 } from './xmit/nat.js';
import { drRewrite } from './xmit/dr.js';
import { tunnelEncap } from './xmit/tunnel.js';
import { decrementTtl } from './xmit/ttl.js';
import { addToa } from './xmit/toa.js';
import { icmpError, ICMPGEN_FRAG_NEEDED, ICMPGEN_TIME_EXCEEDED, tooBig } from './xmit/icmp-gen.js';
import { MAX_CAPLEN } from './capture/pcap.js';
import { Synproxy, SP_DROP, SP_FLUSH, SP_FORWARD, SP_REPLY, SP_TRUNCATED } from './synproxy/synproxy.js';
import type { SynproxyConfig } from './config.js';
import type { SnapshotService } from './conntrack/records.js';

/**
 * Where the LB's packets go. `buf[off, off+len)` is a whole frame of the record's link type whose IP header
 * starts `l2len` bytes in (every packet the LB makes keeps the link header of the packet it came from);
 * `l2` is set for direct routing, whose frame must leave as it is (only its destination MAC was changed).
 * Returns null when sent, else the reason it was not (counted).
 */
export interface Sink {
  send(r: PacketRecord, buf: Uint8Array, off: number, len: number, wirelen: number, l2len: number, l2: boolean): string | null;
  /** packets it can take now before it must refuse (live: room left in the transmit queue); none given: no limit */
  spare?(): number;
}

export interface LbOptions {
  services: Services;
  /** forwarded packets lose one TTL / hop; those arriving with 1 or 0 are not forwarded */
  decrementTtl?: boolean;
  /** of the path to the servers (default 1500); bigger packets get ICMP fragmentation needed / packet too big */
  mtu?: number;
  /** synproxy settings and the cookie secret (16 bytes) */
  synproxy?: { cfg: SynproxyConfig; secret: Uint8Array };
  /**
   * Overload policy: transmit room (sink.spare()) kept for the packets of existing connections. A SYN the
   * synproxy would answer, or a bad ACK it would answer with a RST, is dropped at once (synproxy_overload)
   * when no more room than this is left: under a flood, the data path and the handshakes that complete go
   * first, and the excess SYNs cost no cookie and no send. SYNs from sources that completed a cookie
   * handshake lately (synproxy.trust_verified) are still answered. 0 (replay): never.
   */
  reserve?: number;
}

export interface LbSummary {
  /** ICMP errors the LB generated (fragmentation needed / packet too big, time exceeded) */
  icmp_sent?: { frag_needed: number; time_exceeded: number };
  /** FNAT packets that got a TOA option */
  toa_added?: number;
  /** synproxy counters (DPVS names) */
  synproxy?: Record<string, number>;
  /** persistence templates */
  templates?: { created: number; expired: number; open_at_end: number };
  emitted: number;
  not_emitted: Record<string, number>;
  services: SnapshotService[];
}

export class Engine {
  emitted = 0;
  readonly notEmitted: Record<string, number> = {};
  readonly icmpSent = { frag_needed: 0, time_exceeded: 0 };
  toaAdded = 0;
  /** the engine's time (µs) when it last dropped a packet for want of transmit room (-1: never) */
  overloadAtUs = -1;
  readonly sp: Synproxy | null;
  private readonly reserve: number;
  private readonly scratch = Buffer.allocUnsafe(MAX_CAPLEN + 128);
  private readonly icmpOut = Buffer.allocUnsafe(2048);
  private readonly caddr = new Uint32Array(4);
  private readonly oaddr = new Uint32Array(4);
  private readonly aaddr = new Uint32Array(4);
  private readonly baddr = new Uint32Array(4);
  private readonly decTtl: boolean;
  private readonly mtu: number;
  private readonly toaOn: boolean;
  /** TOA (FNAT): per connection, the server's ISN + 1 once its SYN-ACK passed (DPVS fdata_seq) */
  private readonly toaAck: Uint32Array;
  private readonly spView = new PacketView();
  /** the record being processed: packets the synproxy makes take its link type and timestamp */
  private cur: PacketRecord | null = null;
  private readonly gen = new PacketRecord();

  constructor(
    readonly tracker: Tracker,
    readonly lb: LbOptions,
    readonly sink: Sink,
  ) {
    tracker.lb = lb.services;
    this.decTtl = lb.decrementTtl === true;
    this.reserve = lb.reserve ?? 0;
    this.mtu = lb.mtu ?? 1500;
    this.toaOn = lb.services.list.some((x) => x.toa);
    this.toaAck = this.toaOn ? new Uint32Array(tracker.table.capacity) : new Uint32Array(0);
    this.sp = lb.synproxy && lb.services.hasSynproxy ? new Synproxy(lb.synproxy.cfg, tracker, lb.services, lb.synproxy.secret) : null;
    if (this.sp) this.sp.toServer = (c, frame, len, wirelen) => this.spToServer(c, frame, len, wirelen);
  }

  private skip(why: string): void {
    this.notEmitted[why] = (this.notEmitted[why] ?? 0) + 1;
  }

  private emit(r: PacketRecord, v: PacketView, buf: Uint8Array, off: number, len: number, wirelen: number, l2 = false): void {
    const why = this.sink.send(r, buf, off, len, wirelen, v.l3Off - v.frameOff, l2);
    if (why === null) this.emitted++;
    else {
      this.skip(why);
      if (why === 'tx_queue_full') this.overloadAtUs = this.tracker.nowUs;
    }
  }

  /** overload policy: a packet the synproxy would answer (SYN-ACK, RST) when the transmit room is down to the reserve */
  private overloaded(): boolean {
    if (this.reserve === 0 || this.sink.spare === undefined || this.sink.spare() > this.reserve) return false;
    this.skip('synproxy_overload');
    this.overloadAtUs = this.tracker.nowUs;
    return true;
  }

  /** the synproxy's packets toward a server are decoded and sent like the connection's own */
  private spToServer(c: number, frame: Uint8Array, len: number, wirelen: number): void {
    const cur = this.cur;
    if (!cur) return;
    const gen = this.gen;
    gen.buf = frame;
    gen.off = 0;
    gen.caplen = len;
    gen.wirelen = wirelen;
    gen.linktype = cur.linktype;
    gen.tsSec = cur.tsSec;
    gen.tsFrac = cur.tsFrac;
    gen.digits = cur.digits;
    if (decode(frame, 0, len, wirelen, cur.linktype, this.spView) !== 0) {
      this.skip('decode_drop');
      return;
    }
    this.sp!.translateSaved(frame, this.spView, c);
    this.translate(frame, this.spView, c, 0, false);
    this.sendTranslated(gen, this.spView, c, 0, this.lb.services.list[this.tracker.serviceOf(c)]!.toa);
  }

  /** answer the packet with an ICMP error of the LB's own (emitted like any packet the LB sends) */
  private sendIcmp(r: PacketRecord, view: PacketView, kind: number, pathMtu: number): void {
    const n = icmpError(r.buf, r.linktype, view, kind, pathMtu, this.icmpOut);
    if (n < 0) return;
    if (kind === ICMPGEN_FRAG_NEEDED) this.icmpSent.frag_needed++;
    else this.icmpSent.time_exceeded++;
    this.emit(r, view, this.icmpOut, 0, n, n);
  }

  /**
   * The hop this LB is, for a packet it would forward toward a server over a path of `pathMtu` (0: a reply
   * toward the client or an ICMP error, neither checked nor answered): true when it may go (its TTL then
   * decremented, if configured); else it is answered with time exceeded or fragmentation needed, and counted.
   */
  private hop(r: PacketRecord, v: PacketView, pathMtu: number): boolean {
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
  private translate(b: Uint8Array, view: PacketView, c: number, dir: number, icmpErr: boolean): void {
    if (view.ipVersion === 4 && !icmpErr) {
      // IPv4 TCP/UDP: both endpoints in one rewrite, addresses read in place
      // inbound it becomes the reply tuple inverted (to the server), outbound the original tuple inverted
      const t = this.tracker.table;
      const tup = dir === 0 ? t.rtup : t.tup;
      const o = T_STRIDE * c;
      const p = tup[o + T_PORTS]!;
      natRewrite4(view, tup[o + T_DST]! | 0, tup[o + T_SRC]! | 0, (p << 16) | (p >>> 16));
    } else this.translateWords(b, view, c, dir, icmpErr);
  }

  /** translate() for IPv6 and for ICMP errors: addresses as 4 words */
  private translateWords(b: Uint8Array, view: PacketView, c: number, dir: number, icmpErr: boolean): void {
    const t = this.tracker.table;
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
      if (dir === 0) icmpXlate(b, view, aaddr, caddr, cport, baddr, oaddr, vport);
      else icmpXlate(b, view, oaddr, baddr, pb, caddr, aaddr, pa);
    } else if (dir === 0) {
      natRewrite(b, view, 0, aaddr, pa);
      natRewrite(b, view, 1, baddr, pb);
    } else {
      // a reply seen from the VIP (client-side capture) needs no source change: natRewrite skips it
      natRewrite(b, view, 0, oaddr, vport);
      natRewrite(b, view, 1, caddr, cport);
    }
  }

  /**
   * Emit a translated packet. FNAT with TOA, as DPVS: the client's SYN and its packets that acknowledge just
   * the server's SYN-ACK (the handshake's ACK, the first data) carry the client's address in a TCP option.
   */
  private sendTranslated(r: PacketRecord, view: PacketView, c: number, dir: number, toa: boolean): void {
    if (!(toa && view.proto === IPPROTO_TCP && this.sendToa(r, view, c, dir))) this.emit(r, view, r.buf, r.off, r.caplen, r.wirelen);
  }

  /** sendTranslated() with TOA on: true when the packet went out with the option added */
  private sendToa(r: PacketRecord, view: PacketView, c: number, dir: number): boolean {
    const f = view.tcpFlags;
    const toaAck = this.toaAck;
    if (dir === 1) {
      if ((f & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK)) toaAck[c] = (view.seq + 1) >>> 0;
      return false;
    }
    const syn = (f & (TCP_SYN | TCP_ACK)) === TCP_SYN;
    if (syn) toaAck[c] = 0; // a new connection (handles are reused)
    if (!(syn || ((f & (TCP_SYN | TCP_RST)) === 0 && toaAck[c] !== 0 && view.ack === toaAck[c]))) return false;
    this.tracker.table.addrWords(c, 'src', this.caddr);
    const n = addToa(r.buf, view, this.scratch, this.caddr, this.tracker.table.sportOf(c), this.mtu);
    if (n <= 0) return false;
    this.toaAdded++;
    this.emit(r, view, this.scratch, 0, n, n + (r.wirelen - r.caplen));
    return true;
  }

  /**
   * One packet, decoded into `view`, with the tracker's time already set: tracked (unless its checksum
   * failed), then balanced. Returns the tracker's result (entry handle or a negative code).
   */
  packet(r: PacketRecord, view: PacketView, badSum: boolean): number {
    const tracker = this.tracker;
    this.cur = r;
    const e = badSum ? (tracker.rejectChecksum(), -1) : tracker.track(view);
    const sp = this.sp;
    const icmpErr = view.icmpIsError && view.inner.valid;
    if (sp && (e === SP_NO_CONN || e === SP_SYN)) {
      // synproxy step 1 or 2, or a new handshake on a closing connection (the SYN and the bad ACK are answered
      // only with transmit room to spare; a good ACK opens its connection whatever the load)
      if ((view.tcpFlags & TCP_SYN) !== 0 && !sp.verified.has(view.src, view.ipVersion === 6, tracker.nowUs) && this.overloaded()) return e;
      const a = e === SP_NO_CONN ? sp.noConn(r.buf, view) : sp.synOnConn(r.buf, view, tracker.spConn);
      if (a === SP_REPLY) {
        if ((view.tcpFlags & TCP_SYN) === 0 && this.overloaded()) return e; // the RST to a bad ACK
        this.emit(r, view, r.buf, r.off, sp.replyLen, sp.replyLen);
      }
      else if (a === SP_DROP) this.skip('synproxy');
      else if (a === SP_TRUNCATED) this.skip('truncated');
      else if (a === SP_FORWARD) this.skip('not_tracked');
      return e;
    }
    if (e < 0) {
      this.skip(view.status !== 0 ? 'decode_drop' : badSum ? 'bad_checksum' : 'not_tracked');
      return e;
    }
    const c = e >>> 1;
    const si = tracker.serviceOf(c);
    if (si < 0) this.skip('not_service');
    else if (view.isFragment || (view.proto !== 6 && view.proto !== 17 && !icmpErr)) this.skip('not_tcp_udp');
    else this.balance(r, view, c, e & 1, si, icmpErr);
    return e;
  }

  private balance(r: PacketRecord, view: PacketView, c: number, dir: number, si: number, icmpErr: boolean): void {
    const s = this.lb.services.list[si]!;
    const d = this.tracker.serverOf(c);
    const mode = s.fwd[d]!;
    if (this.sp !== null && this.tracker.isSynproxy(c)) {
      if (!icmpErr && this.synproxyHeld(r, view, c, dir)) return;
      if (icmpErr) this.sp.icmpQuote(r.buf, view, c, dir);
    }
    if (mode === FWD_NAT || mode === FWD_FNAT || mode === FWD_SNAT) {
      // (a packet hop() refuses expired here or does not fit the path: counted, maybe answered, by hop)
      if (this.hop(r, view, dir === 0 && !icmpErr ? this.mtu : 0)) {
        this.translate(r.buf, view, c, dir, icmpErr);
        this.sendTranslated(r, view, c, dir, s.toa && !icmpErr);
      }
    } else this.direct(r, view, s, d, mode);
  }

  /** a packet of a synproxy connection: true when the synproxy kept it (saved, dropped, or the server's SYN-ACK) */
  private synproxyHeld(r: PacketRecord, view: PacketView, c: number, dir: number): boolean {
    const sp = this.sp!;
    const a = sp.onConn(r.buf, view, c, dir);
    if (a === SP_FLUSH) {
      // the server's SYN-ACK: the saved packets go (TOA on those that acknowledge it)
      if (this.toaOn) this.toaAck[c] = (view.seq + 1) >>> 0;
      sp.flush(c);
      this.skip('synproxy_handshake');
    } else if (a === SP_DROP) this.skip('synproxy');
    // else saved for the server
    return a !== SP_FORWARD;
  }

  /** DR and tunnel: the server answers the client directly; only what goes to the VIP is forwarded */
  private direct(r: PacketRecord, view: PacketView, s: Service, d: number, mode: number): void {
    const v6 = view.ipVersion === 6;
    const toVip = sameAddr(view.dst, s.vip, v6);
    if (!toVip) this.skip('direct_return');
    else if (!this.hop(r, view, mode === FWD_DR ? this.mtu : this.mtu - (v6 ? 40 : 20) - (s.gue ? 8 : 0))) {
      // expired here (the tunnel's inner packet is the one forwarded, as the kernel's)
    } else if (mode === FWD_DR) {
      if (r.linktype !== 1) this.skip('dr_needs_ethernet');
      else {
        drRewrite(r.buf, r.off, s.mac[d]!);
        this.emit(r, view, r.buf, r.off, r.caplen, r.wirelen, true);
      }
    } else {
      const n = tunnelEncap(r.buf, view, this.scratch, s.tunnelSrc ?? s.vip, s.serverAddr[d]!, s.gue, s.guePort);
      if (n < 0) this.skip('tunnel_too_big');
      else this.emit(r, view, this.scratch, 0, n, n + (r.wirelen - r.caplen));
    }
  }

  /** What the LB emitted and did not, and the per-service counters. */
  summary(): LbSummary {
    const out = lbSummary(this.lb.services, this.emitted, this.notEmitted);
    if (this.icmpSent.frag_needed + this.icmpSent.time_exceeded > 0) out.icmp_sent = this.icmpSent;
    if (this.toaOn) out.toa_added = this.toaAdded;
    if (this.sp) out.synproxy = this.sp.counterObject();
    const tp = this.tracker.templates;
    if (tp) out.templates = { created: tp.created, expired: tp.expired, open_at_end: tp.count };
    return out;
  }
}

export function lbSummary(sv: Services, emitted: number, notEmitted: Record<string, number>): LbSummary {
  return {
    emitted,
    not_emitted: notEmitted,
    services: sv.list.map((s) => ({
      service: s.label,
      scheduler: s.cfg.scheduler,
      forward: s.cfg.forward,
      conns: s.stats[ST_CONNS]!,
      in_pkts: s.stats[ST_INPKTS]!,
      out_pkts: s.stats[ST_OUTPKTS]!,
      in_bytes: s.stats[ST_INBYTES]!,
      out_bytes: s.stats[ST_OUTBYTES]!,
      rate: s.est.rates(0),
      servers: s.cfg.servers.map((x, i) => ({
        server: serverLabel(x),
        weight: s.dests.weight[i]!,
        conns: s.destStats[i * ST_N + ST_CONNS]!,
        in_pkts: s.destStats[i * ST_N + ST_INPKTS]!,
        out_pkts: s.destStats[i * ST_N + ST_OUTPKTS]!,
        in_bytes: s.destStats[i * ST_N + ST_INBYTES]!,
        out_bytes: s.destStats[i * ST_N + ST_OUTBYTES]!,
        active: s.dests.active[i]!,
        inactive: s.dests.inactive[i]!,
        rate: s.destEst.rates(i),
      })),
    })),
  };
}
