/**
 * The packet path, shared by replay and live (DPVS's __dp_vs_in, Katran's process_packet): a frame is
 * decoded, its time set, its checksums checked when asked, and then
 *   ICMP error     -> the connection it quotes (RELATED), translated like it
 *   lookup         -> hit: the synproxy's hold for its connections, the state machine, accounting, transmit
 *                  -> miss: synproxy step 1/2 for its services, else service -> schedule -> new connection
 * Without a load balancer it only tracks: the same path, nothing scheduled or sent. What is not sent is
 * counted by reason. Rare branches live in their own methods; everything per connection is an integer handle.
 */
import { RegionDriver, type Answer } from './lb/region-driver.js';
import { PacketRecord } from './capture/record.js';
import type { SynproxyConfig } from './config.js';
import { C_DROP, Conntrack, STEP_REOPEN, type ConntrackConfig } from './conntrack/conntrack.js';
import type { TupleKey } from './conntrack/table.js';
import { Balancer } from './lb/balancer.js';
import { l4ChecksumStatus, ipv4HeaderOk } from './packet/checksum.js';
import { decode } from './packet/decode.js';
import { IPPROTO_TCP, IPPROTO_UDP, PacketView, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from './packet/view.js';
import type { Services } from './service/services.js';
import { DecodeStats } from './stats/decode-stats.js';
import { SP_DROP, SP_FLUSH, SP_FORWARD, SP_OPEN, SP_REPLY, SP_TRUNCATED, Synproxy } from './synproxy/synproxy.js';
import { Timeline } from './timer/timeline.js';
import { FWD_DR, FWD_FNAT, FWD_NAT, FWD_SNAT, FWD_TUNNEL } from './xmit/modes.js';
import { GENERATED, Xmit, type Sink } from './xmit/xmit.js';
import { Flows, type FlowsConfig } from './flows/flows.js';
import { statusName } from './packet/status.js';

export type { Sink } from './xmit/xmit.js';

export interface LbOptions {
  services: Services;
  /** region_select in replay: what each region's probes answer (a latency model); without it no plan runs here (tsvs run probes for real) */
  regionAnswer?: Answer;
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

export interface EngineOptions {
  /** connection tracking; without it the engine only decodes and counts */
  conntrack?: ConntrackConfig;
  /** load balancing; without it the engine only tracks */
  lb?: LbOptions;
  /** where the LB's packets go (needed with lb) */
  sink?: Sink;
  /** verify IPv4 header and L4 checksums: counted, and packets that fail are not tracked (nf_conntrack_checksum) */
  verifyChecksums?: boolean;
  /** flow accounting per (source, destination) (src/flows) */
  flows?: FlowsConfig;
}

const FLAGS = TCP_SYN | TCP_ACK | TCP_FIN | TCP_RST;

/** after an overload drop, this long: packets without a connection make no new flow (Engine.account) */
const OVERLOAD_FLOWS_US = 1e6;

export class Engine {
  readonly time = new Timeline();
  readonly ct: Conntrack;
  readonly lb: Balancer | null;
  readonly sp: Synproxy | null;
  readonly x: Xmit | null;
  readonly flows: Flows | null;
  readonly services: Services | null;
  /** region_select: the probe plans (replay: answered by the latency model) */
  readonly regionDriver: RegionDriver | null = null;
  readonly stats = new DecodeStats();
  readonly checksums = { ipv4_bad: 0, l4_bad: 0, l4_unverified: 0 };
  private readonly view = new PacketView();
  private readonly tracking: boolean;
  private readonly verify: boolean;
  private readonly reserve: number;
  private readonly spView = new PacketView();
  /** the record being processed: packets the synproxy makes take its link type and timestamp */
  private cur: PacketRecord | null = null;
  private readonly gen = new PacketRecord();
  /** flow accounting: each connection's flows (see the constructor) */
  private flowCache: Uint32Array | null = null;

  constructor(o: EngineOptions) {
    this.tracking = o.conntrack !== undefined;
    this.ct = new Conntrack(o.conntrack ?? { profile: 'netfilter', maxConns: 16, seed: 1 }, this.time);
    this.verify = o.verifyChecksums === true;
    const lb = o.lb;
    this.services = lb?.services ?? null;
    this.reserve = lb?.reserve ?? 0;
    this.flows = o.flows ? new Flows(o.flows, o.conntrack?.seed ?? 1) : null;
    if (this.flows !== null) {
      // per connection, 3 slots (original direction, reply, reply untranslated: from the VIP) of 2 words: the
      // flow's handle + 1 and its generation then; a new connection starts with none
      const cache = (this.flowCache = new Uint32Array(6 * this.ct.table.capacity));
      this.ct.extend({
        created: (c) => {
          cache[6 * c] = 0;
          cache[6 * c + 2] = 0;
          cache[6 * c + 4] = 0;
        },
      });
    }
    if (!lb) {
      this.lb = this.sp = this.x = null;
      return;
    }
    if (!o.sink) throw new Error('a load balancer needs a sink');
    this.lb = new Balancer(lb.services, this.ct, this.time);
    this.x = new Xmit(o.sink, this.ct, { decrementTtl: lb.decrementTtl, mtu: lb.mtu, toa: lb.services.list.some((s) => s.toa), proxy: lb.services.list.some((s) => s.pp !== 0) });
    const withRegions = lb.services.list.filter((s) => s.regions !== null);
    this.regionDriver = withRegions.length && lb.regionAnswer ? new RegionDriver(withRegions, lb.services.regionsCfg, lb.regionAnswer ?? (() => null), this.time) : null;
    this.sp = lb.synproxy && lb.services.hasSynproxy ? new Synproxy(lb.synproxy.cfg, this.ct, this.lb, lb.synproxy.secret) : null;
    const sp = this.sp;
    const b = this.lb;
    this.ct.onExpire = (c) => (sp !== null && sp.expire(c)) || (b.expired(c), false);
    if (sp) sp.toServer = (c, frame, len, wirelen) => this.spToServer(c, frame, len, wirelen);
    this.x.flows = this.flows;
  }

  /** the view the last frame was decoded into */
  get lastView(): PacketView {
    return this.view;
  }

  /**
   * Whether this engine's table holds the connection of frame r now (no counter moves): a replay worker asks
   * before it takes a packet that was dispatched to another (a redirect). The clock must be at r's time.
   */
  holds(r: PacketRecord): boolean {
    const v = this.view;
    decode(r.buf, r.off, r.caplen, r.wirelen, r.linktype, v);
    const ct = this.ct;
    if (!this.tracking || v.status !== 0 || !v.hasL4 || (v.proto !== IPPROTO_TCP && v.proto !== IPPROTO_UDP)) return false;
    return ct.key(v) && ct.table.lookup(ct.k) >= 0;
  }

  /** One captured frame: decoded, timed, checked, then the packet path. Returns its entry (2·handle + direction) or -1. */
  frame(r: PacketRecord): number {
    const v = this.view;
    decode(r.buf, r.off, r.caplen, r.wirelen, r.linktype, v);
    this.stats.add(v);
    const bad = this.verify && v.status === 0 && !this.sumsOk(r, v);
    if (!this.tracking) return -1;
    this.time.set(r.tsSec, r.tsFrac, r.digits);
    // without services: tracking alone, here (one call less on the path of every packet)
    if (this.lb === null) {
      if (bad) {
        if (this.flows !== null) this.account(v);
        this.ct.rejectChecksum();
        return -1;
      }
      const e = this.ct.track(v);
      if (this.flows !== null) {
        // (an ICMP error's entry is the connection it quotes: its addresses are another flow's)
        if (e >= 0 && !v.icmpIsError) this.accountConn(e, v);
        else this.account(v);
      }
      return e;
    }
    return this.packet(r, v, bad);
  }

  /**
   * Flow accounting: every packet with addresses counts on its (source, destination) flow; one that did not
   * decode is its drop. The packet path calls this (or accountConn) once per packet, before anything that
   * may drop or send it.
   */
  private account(v: PacketView, miss = false): void {
    const flows = this.flows!;
    let f = -1;
    if (v.ipVersion !== 0) {
      // Overload: while the LB drops for want of transmit room (in the last second), a packet that has no
      // connection makes no flow (a spoofed flood would fill the table: accounting must not add to an
      // attack's cost); it counts on its flow if there is one, else as unaccounted
      const x = this.x;
      if (miss && x !== null && x.overloadAtUs >= 0 && this.time.nowUs - x.overloadAtUs < OVERLOAD_FLOWS_US) f = flows.existing(v.src, v.dst, v.ipVersion === 6, v.ipTotalLen, this.time.nowUs);
      else f = flows.packet(v.src, v.dst, v.ipVersion === 6, v.ipTotalLen, this.time.nowUs);
    }
    if (this.x !== null) {
      this.x.flow = f;
      this.x.flowBytes = v.ipTotalLen;
    } else if (v.status !== 0 && f >= 0) flows.drop(f, statusName(v.status), v.ipTotalLen); // (with services: as the LB's decode_drop)
  }

  /**
   * account() for a packet of a known connection (entry e): each direction of a connection is one flow, so its
   * handle is kept per entry and used while the flow lives (its generation unchanged); no lookup per packet.
   */
  private accountConn(e: number, v: PacketView, untranslated = false): void {
    const flows = this.flows!;
    const cache = this.flowCache!;
    // (a connection's addresses per direction never change; replies to a NAT VIP may come translated, from the
    // server, or untranslated, from the VIP: a slot each. The flow is the slot's while its generation holds.)
    const i = 6 * (e >>> 1) + 2 * ((e & 1) + (untranslated ? 1 : 0));
    const f = cache[i]! - 1;
    if (f >= 0 && flows.genOf(f) === cache[i + 1]) {
      flows.again(f, v.ipTotalLen, this.time.nowUs);
      if (this.x !== null) {
        this.x.flow = f;
        this.x.flowBytes = v.ipTotalLen;
      }
      return;
    }
    this.account(v);
    const g = this.x !== null ? this.x.flow : flows.find(v.src, v.dst, v.ipVersion === 6);
    cache[i] = g >= 0 ? g + 1 : 0;
    if (g >= 0) cache[i + 1] = flows.genOf(g);
  }

  /** --verify-checksums: false (counted) when the IPv4 header or L4 checksum is bad */
  private sumsOk(r: PacketRecord, v: PacketView): boolean {
    let ok = true;
    if (v.ipVersion === 4 && !ipv4HeaderOk(r.buf, v)) {
      this.checksums.ipv4_bad++;
      ok = false;
    }
    const c = l4ChecksumStatus(r.buf, v);
    if (c === 0) {
      this.checksums.l4_bad++;
      ok = false;
    } else if (c < 0 && v.hasL4) this.checksums.l4_unverified++;
    return ok;
  }

  /** The path of a decoded packet (time already set): returns its entry or -1. */
  packet(r: PacketRecord, v: PacketView, badSum: boolean): number {
    const ct = this.ct;
    const lb = this.lb;
    if (this.sp !== null) this.cur = r; // (what the synproxy sends takes its link type and time)
    // (flow accounting, when on, before anything may drop or send the packet: out of line, one test here)
    if (badSum) {
      if (this.flows !== null) this.account(v);
      ct.rejectChecksum();
      this.x?.skip('bad_checksum');
      return -1;
    }
    // without services: tracking alone
    if (lb === null) return ct.track(v);
    // an ICMP error belongs to the connection whose packet it quotes, and is translated like it
    if (v.icmpIsError) {
      if (this.flows !== null) this.account(v);
      return this.related(r, v);
    }
    // the tuple, and one probe for both directions
    if (!ct.key(v)) {
      if (this.flows !== null) this.account(v);
      if (v.status !== 0) this.x!.skip('decode_drop', statusName(v.status));
      else this.x!.skip('not_tracked');
      return -1;
    }
    const k = ct.k;
    let e = ct.find(k);
    if (e >= 0) {
      if (this.flows !== null) this.accountConn(e, v, false);
    } else {
      e = lb.untranslatedReply();
      // the packet's flow: the one its connection's direction keeps, or looked up
      if (this.flows !== null) {
        if (e >= 0) this.accountConn(e, v, true);
        else this.account(v, true);
      }
    }
    if (e < 0) {
      // a miss: a new connection; synproxy step 1 or 2 for its services; else a service, a server, a connection
      if (this.sp !== null && v.proto === IPPROTO_TCP) {
        const si = lb.services.lookup(k.proto, k.v6, k.dst, k.dport);
        if (si >= 0 && lb.services.list[si]!.synproxy) return this.synproxyMiss(r, v, k, si);
      }
      if (!ct.mayOpen(v)) {
        this.x!.skip('not_tracked', 'invalid');
        return -1;
      }
      return this.open(r, v, k, lb.match(k));
    }
    // a hit: the synproxy holds its connections until their server's handshake is done
    const c = e >>> 1;
    const dir = e & 1;
    const sp = this.sp;
    if (sp !== null && sp.owns(c)) {
      if (dir === 0 && (v.tcpFlags & FLAGS) === TCP_SYN) return this.synOnConn(r, v, c);
      if (sp.isPending(c)) {
        // the server handshake is the synproxy's: counted, no state change until it completes
        lb!.account(c, dir, v.ipTotalLen);
        ct.acct.packet(c, dir, v);
        this.forward(r, v, c, dir, false);
        return e;
      }
    }
    // accounting, the state machine (a SYN on a closed connection opens a new one), transmit
    lb.account(c, dir, v.ipTotalLen);
    if (ct.step(c, dir, v, false) === STEP_REOPEN) return this.open(r, v, k, lb.match(k));
    this.forward(r, v, c, dir, false);
    return e;
  }

  /** an ICMP error: the connection of the packet it quotes, translated like that connection's packets */
  private related(r: PacketRecord, v: PacketView): number {
    const e = this.ct.related(v, true);
    if (e < 0) this.x!.skip('not_tracked');
    else this.forward(r, v, e >>> 1, e & 1, true);
    return e;
  }

  /** a new connection to service `si` (-1: none matched): scheduled, inserted, its first packet tracked and sent */
  private open(r: PacketRecord, v: PacketView, k: TupleKey, si: number): number {
    const c = this.create(v, k, si);
    if (c < 0) return -1;
    this.lb!.account(c, 0, v.ipTotalLen);
    this.ct.step(c, 0, v, true);
    this.forward(r, v, c, 0, false);
    return 2 * c;
  }

  /**
   * A handle for a new connection of service `si`, scheduled and inserted, or -1 (counted; not sent:
   * not_tracked, and on its flow why: no_service, insert_failed, no_dest or no_lport).
   */
  private create(v: PacketView, k: TupleKey, si: number): number {
    const ct = this.ct;
    const c = si < 0 ? -1 : ct.alloc(k);
    if (c < 0) {
      this.x!.skip('not_tracked', si < 0 ? 'no_service' : 'insert_failed');
      return -1;
    }
    const flags = this.lb!.bind(c, si, k);
    if (flags < 0) {
      ct.counters[C_DROP]!++;
      ct.release(c);
      this.x!.skip('not_tracked', this.lb!.lastFailure);
      return -1;
    }
    ct.init(c, v.proto, flags);
    return c;
  }

  /** Transmit a packet of load-balanced connection c, by the forwarding mode it was bound to. */
  private forward(r: PacketRecord, v: PacketView, c: number, dir: number, icmpErr: boolean): void {
    const lb = this.lb!;
    const x = this.x!;
    const si = lb.serviceOf(c);
    if (si < 0) {
      x.skip('not_service');
      return;
    }
    if (v.isFragment || (v.proto !== IPPROTO_TCP && v.proto !== IPPROTO_UDP && !icmpErr)) {
      x.skip('not_tcp_udp');
      return;
    }
    const s = lb.services.list[si]!;
    if (this.sp !== null && this.sp.owns(c)) {
      if (!icmpErr && this.synproxyHeld(r, v, c, dir)) return;
      if (icmpErr) this.sp.icmpQuote(r.buf, v, c, dir);
    }
    const mode = lb.modeOf(c);
    switch (mode) {
      case FWD_NAT:
      case FWD_FNAT:
      case FWD_SNAT:
        x.translated(r, v, c, dir, icmpErr, s.toa, s.pp);
        break;
      case FWD_DR:
      case FWD_TUNNEL:
        x.direct(r, v, s, lb.serverOf(c), mode);
        break;
    }
  }

  /* ---------------- the synproxy's steps ---------------- */

  /** a TCP packet with no connection to a synproxy service: step 1 (SYN -> cookie SYN-ACK) or 2 (a valid ACK opens) */
  private synproxyMiss(r: PacketRecord, v: PacketView, k: TupleKey, si: number): number {
    const sp = this.sp!;
    const x = this.x!;
    if ((v.tcpFlags & TCP_SYN) !== 0 && this.reserve !== 0 && !sp.verified.has(v.src, v.ipVersion === 6, this.time.nowUs) && x.overloaded(this.reserve, 'synproxy_overload')) return -1;
    const a = sp.noConn(r.buf, v, si);
    if (a === SP_OPEN) {
      const c = this.create(v, k, si);
      if (c < 0) {
        sp.noDest();
        return -1;
      }
      this.lb!.account(c, 0, v.ipTotalLen);
      this.ct.acct.packet(c, 0, v);
      sp.opened(c, r.buf, v);
      return 2 * c;
    }
    this.synproxyAnswer(r, v, a);
    return -1;
  }

  /** a client's SYN on a synproxy connection: a new handshake on a closing one, answered like a first SYN */
  private synOnConn(r: PacketRecord, v: PacketView, c: number): number {
    if (this.reserve !== 0 && !this.sp!.verified.has(v.src, v.ipVersion === 6, this.time.nowUs) && this.x!.overloaded(this.reserve, 'synproxy_overload')) return -1;
    this.synproxyAnswer(r, v, this.sp!.synOnConn(r.buf, v, c));
    return -1;
  }

  private synproxyAnswer(r: PacketRecord, v: PacketView, a: number): void {
    const x = this.x!;
    if (a === SP_REPLY) {
      // the RST to a bad ACK waits, like a SYN-ACK, when there is no room to spare
      if ((v.tcpFlags & TCP_SYN) === 0 && x.overloaded(this.reserve, 'synproxy_overload')) return;
      // on its flow, the client's packet went no further: answered by the synproxy (a cookie, or a RST)
      if (this.flows !== null) this.flows.drop(x.flow, (v.tcpFlags & TCP_SYN) !== 0 ? 'synproxy_cookie' : 'synproxy_rst', x.flowBytes);
      x.emit(r, v, r.buf, r.off, this.sp!.replyLen, this.sp!.replyLen, GENERATED);
    } else if (a === SP_DROP) x.skip('synproxy');
    else if (a === SP_TRUNCATED) x.skip('truncated');
    else if (a === SP_FORWARD) x.skip('not_tracked');
  }

  /** a packet of a synproxy connection: true when the synproxy kept it (saved, dropped, or the server's SYN-ACK) */
  private synproxyHeld(r: PacketRecord, v: PacketView, c: number, dir: number): boolean {
    const sp = this.sp!;
    const a = sp.onConn(r.buf, v, c, dir);
    if (a === SP_FLUSH) {
      // the server's SYN-ACK: the saved packets go (TOA on those that acknowledge it)
      this.x!.serverIsn(c, v.seq);
      sp.flush(c);
      this.x!.skip('synproxy_handshake');
    } else if (a === SP_DROP) this.x!.skip('synproxy');
    // else saved for the server
    return a !== SP_FORWARD;
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
    const x = this.x!;
    const v = this.spView;
    if (decode(frame, 0, len, wirelen, cur.linktype, v) !== 0) {
      x.skip('decode_drop');
      return;
    }
    // the frame is the client's (held, or the SYN made for it): what it is sent as counts on the client's flow
    const flow = x.flow;
    const flowBytes = x.flowBytes;
    if (this.flows !== null) {
      x.flow = this.flows.find(v.src, v.dst, v.ipVersion === 6);
      x.flowBytes = v.ipTotalLen;
    }
    this.sp!.translateSaved(frame, v, c);
    x.translate(frame, v, c, 0, false);
    x.sendTranslated(gen, v, c, 0, this.lb!.services.list[this.lb!.serviceOf(c)]!.toa);
    x.flow = flow;
    x.flowBytes = flowBytes;
  }

  /* ---------------- the end of a replay ---------------- */

  /** advance time until every connection (and persistence template) has expired */
  drain(): void {
    this.ct.drain(() => (this.lb?.templates?.count ?? 0) > 0);
  }
}
