/**
 * Connection tracking: one probe per packet into the table, the protocol state machine, the idle timeout
 * re-armed on one timer wheel, counters, per-connection accounting and events.
 *
 * Profiles:
 * - netfilter: Linux nf_conntrack semantics without TCP window tracking (nf_conntrack_proto_tcp.c
 *   nf_conntrack_tcp_packet(): sIG/sIV handling, reopen on SYN in TIME_WAIT/CLOSE after a close or RST,
 *   immediate removal on RST before any reply, SYN retransmits not refreshing the timer, mid-stream
 *   pickup capped at the 300 s "unacknowledged" timeout until a reply is seen, ASSURED); UDP 30 s / 120 s
 *   stream after 2 s; ICMP queries 30 s. State names as `conntrack -L` prints them (UDP and ICMP, which
 *   have no kernel state, are shown as UNREPLIED / REPLIED / ASSURED).
 * - dpvs: the DPVS tables (INPUT for the original direction, OUTPUT for replies; INPUT-ONLY for
 *   connections marked input-only, as DR/TUNNEL are); only a pure SYN opens a TCP connection, as
 *   tcp_conn_sched() requires; the timeout changes with the state and every packet re-arms it.
 * A random delay in [0, 1 s) from a seeded PRNG is added to the first timeout of every connection
 * (dpvs_time_rand_delay() in dp_vs_conn_new()), so replays are repeatable for a seed.
 */
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, type PacketView } from '../packet/view.js';
import { icmpInverse, icmpIsRequest, NF_ICMP_TIMEOUT, DPVS_ICMP_TIMEOUT } from '../proto/icmp.js';
import {
  D_CLOSE,
  D_SYN_RECV,
  D_SYN_SENT,
  DPVS_TCP_STATE_NAMES,
  DPVS_TCP_TIMEOUTS,
  D_DIR_INPUT,
  D_DIR_INPUT_ONLY,
  D_DIR_OUTPUT,
  D_ESTABLISHED,
  NF_TCP_STATE_NAMES,
  NF_TCP_TIMEOUTS,
  NI_ACK,
  NI_NONE,
  NI_RST,
  NI_SYN,
  NI_SYNACK,
  N_CLOSE,
  N_ESTABLISHED,
  N_FIN_WAIT,
  N_IGNORE,
  N_INVALID,
  N_LAST_ACK,
  N_SYN_RECV,
  N_SYN_SENT,
  N_SYN_SENT2,
  N_TIME_WAIT,
  N_UNACK,
  dpvsNext,
  nfIndex,
  nfNext,
} from '../proto/tcp.js';
import { DPVS_UDP_TIMEOUTS, NF_UDP_REPLIED, NF_UDP_STREAM_AFTER, NF_UDP_UNREPLIED, U_NONE, U_NORMAL, U_ONEWAY } from '../proto/udp.js';
import { Rng } from '../timer/rng.js';
import { TimerWheel } from '../timer/wheel.js';
import { ConnTable, TupleKey } from './table.js';
import { Templates } from '../service/persistence.js';
import { FWD_FNAT, FWD_NAT, FWD_SNAT, ST_CONNS, ST_INBYTES, ST_INPKTS, ST_N, type Services } from '../service/services.js';

export type Profile = 'netfilter' | 'dpvs';

/* status bits (per connection) */
export const S_ASSURED = 0x01;
export const S_SEEN_REPLY = 0x02;
const S_CLOSE_INIT0 = 0x04; // FIN_WAIT entered by the original direction
const S_CLOSE_INIT1 = 0x08;
const S_SIMOPEN = 0x10;
const S_CHALLENGE = 0x20; // IP_CT_EXP_CHALLENGE_ACK
const S_NO_LAST = 0x80; // tcp last_index not set yet
/* load-balancer flags (lbFlags) */
const L_ACTIVE = 0x01; // counted in its server's active connections (else inactive)
const L_INPUT_ONLY = 0x02; // DR / tunnel: replies bypass the LB, DPVS's INPUT-ONLY table
const L_SYNPROXY = 0x04; // opened by the synproxy (DPVS_CONN_F_SYNPROXY): sequence numbers are translated
const L_SP_PENDING = 0x08; // synproxy: the SYN to the server is out, its SYN-ACK not yet in
const L_OUTCOME = 0x10; // passive health: this connection's outcome was reported
const L_CONN_TO = 0x20; // its service has a conn_timeout (ESTABLISHED TCP and UDP timeout)

/** track(): a TCP packet to a synproxy service with no connection (the synproxy answers or opens it) */
export const SP_NO_CONN = -2;
/** track(): a client's SYN on an existing synproxy connection (`spConn`), answered by the synproxy */
export const SP_SYN = -3;
/** synproxyFound(): go on with the state machine */
const SPF_CONTINUE = -9;

/* netfilter UDP / ICMP pseudo-states */
export const X_UNREPLIED = 0;
export const X_REPLIED = 1;
export const X_ASSURED = 2;
const X_NAMES = ['UNREPLIED', 'REPLIED', 'ASSURED'];

/** Zeek history letters: index = code; upper case for the originator */
const HISTORY_LETTERS = 'SHADFRshadfr';
const H_S = 0;
const H_H = 1;
const H_A = 2;
const H_D = 3;
const H_F = 4;
const H_R = 5;
const H_DA = (1 << H_D) | (1 << H_A);

export interface TrackerConfig {
  profile: Profile;
  maxConns: number;
  seed: number;
  /** TCP timeouts in seconds by state name (of the profile); merged over the defaults */
  tcpTimeouts?: Record<string, number>;
  udpTimeouts?: { unreplied?: number; replied?: number; oneway?: number; normal?: number };
  icmpTimeout?: number;
  /** add the [0, 1 s) random delay to new connections (default true) */
  jitter?: boolean;
}

export const COUNTER_NAMES = [
  'searched',
  'found',
  'new',
  'insert',
  'invalid',
  'ignore',
  'insert_failed',
  'drop',
  'early_drop',
  'icmp_error',
  'related',
  'expired',
  'killed',
  'reopened',
  'untracked_decode',
  'untracked_checksum',
  'untracked_fragment',
  'untracked_proto',
  'untracked_icmp',
  'no_conn',
  'unmatched',
  'no_dest',
  'no_lport',
] as const;
export type CounterName = (typeof COUNTER_NAMES)[number];

/* counter indexes (plain constants: no object lookup on the packet path) */
const C_SEARCHED = 0;
const C_FOUND = 1;
const C_NEW = 2;
const C_INSERT = 3;
const C_INVALID = 4;
const C_IGNORE = 5;
const C_INSERT_FAILED = 6;
const C_DROP = 7;
const C_EARLY_DROP = 8;
const C_ICMP_ERROR = 9;
const C_RELATED = 10;
const C_EXPIRED = 11;
const C_KILLED = 12;
const C_REOPENED = 13;
const C_UNTRACKED_DECODE = 14;
const C_UNTRACKED_CHECKSUM = 15;
const C_UNTRACKED_FRAGMENT = 16;
const C_UNTRACKED_PROTO = 17;
const C_UNTRACKED_ICMP = 18;
const C_NO_CONN = 19;
const C_UNMATCHED = C_NO_CONN + 1;
const C_NO_DEST = C_NO_CONN + 2;
const C_NO_LPORT = C_NO_CONN + 3;

export type EventType = 'new' | 'update' | 'destroy';
/** Event sink: called only when set; `tsUs` is the event time in µs. */
export type EventFn = (type: EventType, c: number, tsUs: number) => void;
/** Called when a connection is destroyed (before its handle is freed): for per-connection records. */
export type DestroyFn = (c: number, tsUs: number, reason: 'expired' | 'killed' | 'evicted' | 'reopened') => void;

const TICK_US = 1000;
/**
 * The latest time the engine keeps (µs since the epoch, 2^52: the year 2112, past every classic pcap
 * timestamp). A pcapng timestamp can be up to 2^64 units with an offset; beyond this the clock stays here, so
 * every time stays an exact integer in a double (counted in `clamped`; records keep their own timestamps).
 */
export const MAX_TIME_US = 2 ** 52;

export class Tracker {
  readonly table: ConnTable;
  readonly wheel: TimerWheel;
  readonly profile: Profile;
  readonly counters = new Float64Array(COUNTER_NAMES.length);
  /* per-connection rows: one typed array per field, indexed by handle ([2c + dir] for per-direction ones) */
  private readonly state: Uint8Array;
  private readonly status: Uint8Array;
  /** netfilter TCP: last_index (3 bits) | last_dir << 3 */
  private readonly tcpLast: Uint8Array;
  private readonly lastEnd: Uint32Array;
  private readonly pkts: Uint32Array;
  private readonly bytes: Float64Array;
  private readonly firstSec: Uint32Array;
  private readonly firstFrac: Uint32Array;
  private readonly lastSec: Uint32Array;
  private readonly lastFrac: Uint32Array;
  private readonly related: Uint16Array;
  /** history: up to 16 letter codes, 4 bits each, in order of first appearance; hseen = set of codes */
  private readonly hist: Uint32Array;
  private readonly hseen: Uint16Array;

  readonly tcpTimeouts: number[];
  readonly tcpNames: string[];
  private readonly udpT: { unreplied: number; replied: number; oneway: number; normal: number };
  private readonly icmpT: number;
  private readonly rng: Rng;
  private readonly jitter: boolean;
  private readonly key = new TupleKey();

  /** packet time of the current packet (µs) and its timestamp parts, for records */
  nowUs = 0;
  private lastTick = -1;
  /** ceil(nowUs / TICK_US): the tick a timeout of whole milliseconds counts from */
  private tickUp = 0;
  private curSec = 0;
  private curFrac = 0;
  /** fraction digits of the capture being tracked (6 or 9), for formatting */
  digits = 6;
  created = 0;
  createdByProto = { tcp: 0, udp: 0, icmp: 0 };
  /** packets whose time was beyond MAX_TIME_US */
  clamped = 0;

  /** load balancing: services to schedule new connections on (null = tracking only) */
  lb: Services | null = null;
  /** synproxy: a pending connection's timer ran out: true when it resent its SYN (the timer is re-armed) */
  spExpire: ((c: number) => boolean) | null = null;
  /** synproxy: a synproxy connection is going away */
  spRelease: ((c: number) => void) | null = null;
  /** the connection of the last SP_SYN, the service of the last SP_NO_CONN */
  spConn = -1;
  spSvc = -1;
  private synproxyOn = false;
  private spOpening = false;
  /** TCP states the synproxy moves its connections to, in the profile's numbering */
  private readonly spSynSent: number;
  /** passive health: the state a new connection waits in for its server's answer */
  private readonly awaitServer: number;
  /** the profile's ESTABLISHED and CLOSE state numbers (synproxy steps, passive health) */
  private readonly stEstablished: number;
  private readonly stClosed: number;
  /** per connection: service index + 1 (0 = none), server index, L_* flags */
  private readonly lbSvc: Int32Array;
  private readonly lbDest: Int32Array;
  private readonly lbFlags: Uint8Array;
  /** FNAT: local address index << 16 | local port */
  private readonly lbLocal: Int32Array;
  /** persistence template of the connection + 1 (0 = none) */
  private readonly lbTmpl: Int32Array;
  /** persistence templates (created when a persistent service first schedules) */
  templates: Templates | null = null;
  private readonly tOut = new Int32Array(1);
  private readonly rkey = new TupleKey();

  onEvent: EventFn | null = null;
  onDestroy: DestroyFn | null = null;
  /**
   * Passive health: called once per load-balanced TCP connection (not DR/tunnel, whose server answers
   * bypass the LB) with ok = true when it reaches ESTABLISHED, false when its server refuses it (RST while
   * it waits for the server) or it expires waiting without a packet from the server. A server's SYN-ACK that
   * the client never acknowledges (a spoofed SYN) is neither.
   */
  onOutcome: ((svc: number, dest: number, ok: boolean) => void) | null = null;
  private readonly fireFn = (c: number) => this.expire(c);

  constructor(cfg: TrackerConfig) {
    const cap = cfg.maxConns;
    this.profile = cfg.profile;
    this.table = new ConnTable(cap, (cfg.seed ^ 0x5bd1e995) >>> 0);
    this.wheel = new TimerWheel(cap);
    this.state = new Uint8Array(cap);
    this.status = new Uint8Array(cap);
    this.tcpLast = new Uint8Array(cap);
    this.lastEnd = new Uint32Array(cap);
    this.pkts = new Uint32Array(cap * 2);
    this.bytes = new Float64Array(cap * 2);
    this.firstSec = new Uint32Array(cap);
    this.firstFrac = new Uint32Array(cap);
    this.lastSec = new Uint32Array(cap);
    this.lastFrac = new Uint32Array(cap);
    this.related = new Uint16Array(cap);
    this.hist = new Uint32Array(cap * 2);
    this.hseen = new Uint16Array(cap);
    this.lbSvc = new Int32Array(cap);
    this.lbDest = new Int32Array(cap);
    this.lbFlags = new Uint8Array(cap);
    this.lbLocal = new Int32Array(cap);
    this.lbTmpl = new Int32Array(cap);
    this.rng = new Rng(cfg.seed);
    const dpvs = cfg.profile === 'dpvs';
    this.spSynSent = dpvs ? D_SYN_SENT : N_SYN_SENT;
    this.stEstablished = dpvs ? D_ESTABLISHED : N_ESTABLISHED;
    this.stClosed = dpvs ? D_CLOSE : N_CLOSE;
    this.awaitServer = dpvs ? D_SYN_RECV : N_SYN_SENT;
    this.jitter = cfg.jitter !== false;
    if (cfg.profile === 'dpvs') {
      this.tcpNames = DPVS_TCP_STATE_NAMES;
      this.tcpTimeouts = [...DPVS_TCP_TIMEOUTS];
      this.udpT = { unreplied: 0, replied: 0, oneway: cfg.udpTimeouts?.oneway ?? DPVS_UDP_TIMEOUTS[U_ONEWAY]!, normal: cfg.udpTimeouts?.normal ?? DPVS_UDP_TIMEOUTS[U_NORMAL]! };
      this.icmpT = cfg.icmpTimeout ?? DPVS_ICMP_TIMEOUT;
    } else {
      this.tcpNames = [...NF_TCP_STATE_NAMES, 'RETRANS', 'UNACK'];
      this.tcpTimeouts = [...NF_TCP_TIMEOUTS];
      this.udpT = { unreplied: cfg.udpTimeouts?.unreplied ?? NF_UDP_UNREPLIED, replied: cfg.udpTimeouts?.replied ?? NF_UDP_REPLIED, oneway: 0, normal: 0 };
      this.icmpT = cfg.icmpTimeout ?? NF_ICMP_TIMEOUT;
    }
    for (const [name, secs] of Object.entries(cfg.tcpTimeouts ?? {})) {
      const i = this.tcpNames.findIndex((n) => n.toLowerCase() === name.toLowerCase());
      if (i < 0) throw new Error(`unknown TCP state "${name}" for profile ${cfg.profile} (known: ${this.tcpNames.join(', ')})`);
      this.tcpTimeouts[i] = secs;
    }
  }

  counter(name: CounterName): number {
    return this.counters[COUNTER_NAMES.indexOf(name)]!;
  }

  /* ---------------- time ---------------- */

  /**
   * Move time to the packet's timestamp, expiring what is due. Call before `track` for every record
   * (also for packets that do not decode: time passes regardless).
   */
  setTime(sec: number, frac: number, digits: number): void {
    let us = sec * 1e6 + (digits === 6 ? frac : Math.floor(frac / 10 ** (digits - 6)));
    if (!(us <= MAX_TIME_US)) {
      us = MAX_TIME_US;
      this.clamped++;
    }
    if (us >= this.nowUs) {
      this.nowUs = us;
      this.curSec = sec;
      this.curFrac = frac;
    }
    this.digits = digits;
    const tick = Math.floor(this.nowUs / TICK_US);
    this.tickUp = tick * TICK_US < this.nowUs ? tick + 1 : tick;
    if (tick !== this.lastTick) {
      // the wheel moves in 1 ms ticks: nothing can expire between two packets of the same millisecond
      this.lastTick = tick;
      this.wheel.advance(tick, this.fireFn);
      if (this.templates) this.templates.advance(this.nowUs);
      if (this.lb) this.lb.estimate(this.nowUs);
    }
  }

  /**
   * Advance time until every connection has expired (replay --drain). Each connection is destroyed at its
   * own expiry time; the wheel skips the empty stretches in between.
   */
  drain(): void {
    const longest = Math.max(...this.tcpTimeouts, this.udpT.unreplied, this.udpT.replied, this.udpT.oneway, this.udpT.normal, this.icmpT) + 2;
    while (this.wheel.armed > 0) {
      const target = Math.floor(this.nowUs / TICK_US) + longest * 1000;
      this.wheel.advance(target, this.fireFn);
      this.nowUs = target * TICK_US;
      this.tickUp = target;
    }
    // persistence templates outlive their connections by their own timeout
    for (let guard = 0; this.templates && this.templates.count > 0 && guard < 1000; guard++) {
      this.nowUs += 3600 * 1e6;
      this.templates.advance(this.nowUs);
    }
    this.tickUp = Math.ceil(this.nowUs / TICK_US);
  }

  /** Format a µs time as "sec.frac" with the capture's digits. */
  formatUs(us: number): string {
    const sec = Math.floor(us / 1e6);
    const fracUs = us - sec * 1e6;
    return this.digits === 9 ? `${sec}.${String(Math.round(fracUs * 1000)).padStart(9, '0')}` : `${sec}.${String(Math.round(fracUs)).padStart(6, '0')}`;
  }

  /** current event time: the packet's own timestamp at the capture's precision */
  nowString(): string {
    return `${this.curSec}.${String(this.curFrac).padStart(this.digits, '0')}`;
  }

  private armTimeout(c: number, secs: number, jitter: boolean): void {
    // whole milliseconds (every timeout but a configured fraction of one): in ticks, without a division
    const ms = secs * 1000;
    if (!jitter && ms === Math.floor(ms)) {
      this.wheel.extend(c, this.tickUp + ms);
      return;
    }
    let us = this.nowUs + secs * 1e6;
    if (jitter) us += this.rng.below(1000000);
    this.wheel.extend(c, Math.ceil(us / TICK_US));
  }

  /** Remaining time before expiry, in seconds (for listings). */
  remaining(c: number): number {
    return Math.max(0, (this.wheel.expiry(c) * TICK_US - this.nowUs) / 1e6);
  }

  private expire(c: number): void {
    if (this.lbFlags[c]! & L_SP_PENDING && this.spExpire !== null && this.spExpire(c)) {
      this.armTimeout(c, this.tcpTimeouts[this.spSynSent]!, false);
      return;
    }
    // passive health: expired waiting for the server, which never sent a packet (a SYN-ACK the client never
    // acknowledged is not the server's failure)
    if (this.onOutcome !== null && (this.lbFlags[c]! & L_SP_PENDING || (this.state[c] === this.awaitServer && !(this.status[c]! & S_SEEN_REPLY)))) this.outcome(c, false);
    this.counters[C_EXPIRED]!++;
    this.destroy(c, this.wheel.expiry(c) * TICK_US, 'expired');
  }

  private destroy(c: number, tUs: number, reason: 'expired' | 'killed' | 'evicted' | 'reopened'): void {
    this.wheel.cancel(c);
    if (this.lbFlags[c]! & L_SYNPROXY && this.spRelease) this.spRelease(c);
    if (this.lb && this.lbSvc[c]! > 0) {
      const d = this.lb.list[this.lbSvc[c]! - 1]!.dests;
      const i = this.lbDest[c]!;
      if (this.lbFlags[c]! & L_ACTIVE) d.active[i]!--;
      else d.inactive[i]!--;
      const s = this.lb.list[this.lbSvc[c]! - 1]!;
      s.checkOverload(i);
      if (s.fwd[i] === FWD_FNAT || s.fwd[i] === FWD_SNAT) s.pool!.give(this.localAddrOf(c), this.localPortOf(c));
      if (this.lbTmpl[c]! > 0) {
        this.templates!.release(this.lbTmpl[c]! - 1);
        this.lbTmpl[c] = 0;
      }
    }
    if (this.onEvent) this.onEvent('destroy', c, tUs);
    if (this.onDestroy) this.onDestroy(c, tUs, reason);
    this.table.remove(c);
  }

  /* ---------------- per packet ---------------- */

  /**
   * Track one decoded packet. Returns the index entry (2·handle + direction) of its connection, or -1
   * when it is not tracked (not decodable, fragment, other protocol, untracked ICMP, invalid first packet).
   */
  track(v: PacketView): number {
    // (the hot path is kept in small methods, each within V8's inlining budget; rare cases are calls)
    if (v.status !== 0 || !v.hasL4) return this.untracked(v);
    const p = v.proto;
    if (p !== IPPROTO_TCP && p !== IPPROTO_UDP) return this.trackOther(v);
    const k = this.key;
    k.sport = v.sport;
    k.dport = v.dport;
    return this.trackKey(v, k, p);
  }

  private untracked(v: PacketView): number {
    this.counters[v.status !== 0 ? C_UNTRACKED_DECODE : v.isFragment ? C_UNTRACKED_FRAGMENT : C_UNTRACKED_PROTO]!++;
    return -1;
  }

  /** ICMP queries (keyed by id and type), ICMP errors (related to a connection), other protocols (not tracked) */
  private trackOther(v: PacketView): number {
    const p = v.proto;
    if (p !== IPPROTO_ICMP && p !== IPPROTO_ICMPV6) {
      this.counters[C_UNTRACKED_PROTO]!++;
      return -1;
    }
    if (v.icmpIsError) return this.icmpRelated(v);
    if (icmpInverse(p === IPPROTO_ICMPV6, v.icmpType) < 0) {
      this.counters[C_UNTRACKED_ICMP]!++;
      return -1;
    }
    const k = this.key;
    k.sport = v.icmpId;
    k.dport = (v.icmpType << 8) | v.icmpCode;
    return this.trackKey(v, k, p);
  }

  /** the packet's tuple (ports or ICMP id/type already in `k`): look it up, then track it on its connection */
  private trackKey(v: PacketView, k: TupleKey, p: number): number {
    k.proto = p;
    k.v6 = v.ipVersion === 6;
    k.src[0] = v.src[0]!;
    k.dst[0] = v.dst[0]!;
    if (k.v6) {
      k.src[1] = v.src[1]!;
      k.src[2] = v.src[2]!;
      k.src[3] = v.src[3]!;
      k.dst[1] = v.dst[1]!;
      k.dst[2] = v.dst[2]!;
      k.dst[3] = v.dst[3]!;
    }
    this.table.hashKey(k);
    this.counters[C_SEARCHED]!++;
    let e = this.table.lookup(k);
    if (e < 0 && this.lb) e = this.replySeenUntranslated();
    if (e < 0) return this.trackNew(v, k, p);
    this.counters[C_FOUND]!++;
    if (this.lbFlags[e >>> 1]! & L_SYNPROXY) {
      const r = this.synproxyFound(v, e);
      if (r !== SPF_CONTINUE) return r;
    }
    return this.step(v, e, p, false);
  }

  /** a packet of a synproxy connection: a new handshake (SP_SYN), held while the server handshake is pending, or SPF_CONTINUE */
  private synproxyFound(v: PacketView, e: number): number {
    if ((e & 1) === 0 && (v.tcpFlags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) === TCP_SYN) {
      this.spConn = e >>> 1;
      return SP_SYN;
    }
    if (this.lbFlags[e >>> 1]! & L_SP_PENDING) {
      // the server handshake is the synproxy's: no state change until it completes
      this.account(e >>> 1, e & 1, v);
      return e;
    }
    return SPF_CONTINUE;
  }

  /** a packet without a connection: the synproxy's (SP_NO_CONN), or the first of a new connection */
  private trackNew(v: PacketView, k: TupleKey, p: number): number {
    if (p === IPPROTO_TCP && this.synproxyOn) {
      const svc = this.lb!.lookup(p, k.v6, k.dst, k.dport);
      if (svc >= 0 && this.lb!.list[svc]!.synproxy) {
        this.spSvc = svc;
        return SP_NO_CONN;
      }
    }
    const e = this.create(v, k);
    return e < 0 ? -1 : this.step(v, e, p, true);
  }

  /** count the packet on entry e and run its protocol's state machine */
  private step(v: PacketView, e: number, p: number, fresh: boolean): number {
    const c = e >>> 1;
    const dir = e & 1;
    this.account(c, dir, v);
    const r = p === IPPROTO_TCP ? this.tcp(c, dir, v, fresh) : p === IPPROTO_UDP ? this.udp(c, dir, fresh) : this.icmp(c, dir, fresh);
    if (r === REPEAT) return this.reopened(v);
    if (this.lb !== null && this.table.isUsed(c)) this.lbState(c);
    return e;
  }

  /** a reopened connection: the old entry is gone, track this packet as the first of a new one */
  private reopened(v: PacketView): number {
    const e2 = this.create(v, this.key);
    if (e2 < 0) return -1;
    this.account(e2 >>> 1, 0, v);
    this.tcp(e2 >>> 1, 0, v, true);
    return e2;
  }

  /** A packet with a bad checksum: invalid for tracking, as with nf_conntrack_checksum=1. */
  rejectChecksum(): void {
    this.counters[C_UNTRACKED_CHECKSUM]!++;
    this.counters[C_INVALID]!++;
  }

  /** Open a connection for the first packet of a flow, or return -1 when this packet may not open one. */
  private create(v: PacketView, k: TupleKey): number {
    const p = v.proto;
    if (p === IPPROTO_TCP) {
      const f = v.tcpFlags & (TCP_SYN | TCP_ACK | TCP_FIN | TCP_RST);
      const ok = this.spOpening ? f === TCP_ACK : this.profile === 'dpvs' ? f === TCP_SYN : f === TCP_SYN || f === TCP_ACK; // tcp_new(): SYN, or ACK pickup
      if (!ok) {
        this.counters[C_NO_CONN]!++;
        this.counters[C_INVALID]!++;
        return -1;
      }
    } else if (p !== IPPROTO_UDP && !icmpIsRequest(p === IPPROTO_ICMPV6, v.icmpType)) {
      this.counters[C_NO_CONN]!++;
      this.counters[C_INVALID]!++;
      return -1;
    }
    let c = this.table.alloc();
    if (c < 0) {
      // nf_conntrack early_drop: evict a not-yet-assured connection from nearby buckets
      const victim = this.table.findEvictable(k.hash, 8, (x) => (this.status[x]! & S_ASSURED) === 0 && !this.isEstablished(x));
      if (victim < 0) {
        this.counters[C_INSERT_FAILED]!++;
        this.counters[C_DROP]!++;
        return -1;
      }
      this.counters[C_EARLY_DROP]!++;
      this.destroy(victim, this.nowUs, 'evicted');
      c = this.table.alloc();
    }
    const reused = this.table.reused;
    if (this.lb) {
      if (!this.schedule(c, k)) {
        this.table.release(c);
        return -1;
      }
    } else this.table.insert(c, k);
    this.firstSec[c] = this.curSec;
    this.firstFrac[c] = this.curFrac;
    this.status[c] = S_NO_LAST;
    if (reused) {
      // a fresh handle's rows are still zero; a reused one's hold the previous connection
      this.state[c] = 0;
      this.tcpLast[c] = 0;
      this.lastEnd[c] = 0;
      this.pkts[2 * c] = 0;
      this.pkts[2 * c + 1] = 0;
      this.bytes[2 * c] = 0;
      this.bytes[2 * c + 1] = 0;
      this.related[c] = 0;
      this.hist[2 * c] = 0;
      this.hist[2 * c + 1] = 0;
      this.hseen[c] = 0;
    }
    this.counters[C_NEW]!++;
    this.counters[C_INSERT]!++;
    this.created++;
    if (p === IPPROTO_TCP) this.createdByProto.tcp++;
    else if (p === IPPROTO_UDP) this.createdByProto.udp++;
    else this.createdByProto.icmp++;
    return 2 * c;
  }

  /**
   * Load balancing: the service of a new connection's destination and a real server for it, and the
   * connection indexed with the server's reply tuple. False (counted) when no service matches or no
   * server may take it.
   */
  private schedule(c: number, k: TupleKey): boolean {
    const lb = this.lb!;
    let svc = lb.lookup(k.proto, k.v6, k.dst, k.dport);
    if (svc < 0 && lb.hasSnat) svc = lb.matchSnat(k.proto, k.v6, k.src, k.dst, k.dport);
    if (svc < 0) {
      this.counters[C_UNMATCHED]!++;
      return false;
    }
    const s = lb.list[svc]!;
    const pers = s.cfg.persistence;
    let tmpl = -1;
    let dest: number;
    if (pers) {
      // persistent service: the client's template decides while it lives and its server is usable
      const tm = (this.templates ??= new Templates(this.table.capacity, this.table.seed, this.rng));
      const prefix = pers.netmask === 32 && k.v6 ? 128 : pers.netmask;
      dest = tm.find(k.proto, k.v6, k.src, s.vip, s.port, prefix, this.tOut);
      if (dest >= 0 && s.keepsTemplate(dest)) tmpl = this.tOut[0]!;
      else {
        dest = lb.schedule(svc, k);
        if (dest >= 0) tmpl = tm.create(k.proto, k.v6, k.src, s.vip, s.port, prefix, dest, pers.timeout, this.nowUs);
      }
    } else dest = lb.schedule(svc, k);
    if (dest < 0) {
      this.counters[C_NO_DEST]!++;
      this.counters[C_DROP]!++;
      return false;
    }
    const mode = s.fwd[dest]!;
    if (mode === FWD_NAT || mode === FWD_FNAT || mode === FWD_SNAT) {
      const r = this.rkey;
      r.v6 = k.v6;
      r.proto = k.proto;
      r.src.set(mode === FWD_SNAT ? k.dst : s.serverAddr[dest]!);
      r.sport = mode === FWD_SNAT ? k.dport : s.serverPort[dest]!;
      if (mode === FWD_NAT) {
        r.dst.set(k.src);
        r.dport = k.sport;
      } else {
        // FNAT: the server sees, and answers, a local address and port of the LB; SNAT: the remote host sees
        // the scheduled SNAT address and a port of its pool
        const l = mode === FWD_SNAT ? s.pool!.takeFrom(dest) : s.pool!.take();
        if (l < 0) {
          this.counters[C_NO_LPORT]!++;
          this.counters[C_DROP]!++;
          return false;
        }
        r.dst.set(s.pool!.addrs[l >>> 16]!);
        r.dport = l & 0xffff;
        this.lbLocal[c] = l;
      }
      this.table.hashKey(r);
      this.table.insertNat(c, k, r);
      this.lbFlags[c] = 0;
    } else {
      // DR / tunnel: the server answers from the VIP itself, the reply tuple is the inverse
      this.table.insert(c, k);
      this.lbFlags[c] = L_INPUT_ONLY;
    }
    if (s.cfg.conn_timeout > 0) this.lbFlags[c]! |= L_CONN_TO;
    this.lbSvc[c] = svc + 1;
    this.lbDest[c] = dest;
    this.lbTmpl[c] = 0;
    if (tmpl >= 0) {
      this.templates!.use(tmpl, this.nowUs);
      this.lbTmpl[c] = tmpl + 1;
    }
    s.dests.inactive[dest]!++;
    s.checkOverload(dest);
    s.stats[ST_CONNS]!++;
    s.destStats[dest * ST_N + ST_CONNS]!++;
    return true;
  }

  /**
   * A packet from a VIP to a client with no connection of its own: in a capture taken on the client side the
   * LB's answer comes from the VIP, and stands for the chosen server's reply (entry of the original tuple,
   * reply direction). The same for a SNAT connection seen from the inside.
   */
  private replySeenUntranslated(): number {
    // the lookup that missed found the original entry of the reversed tuple on its way (same bucket): when
    // that connection was load balanced (SNAT too: a capture taken inside shows the remote host's answer to
    // the inside host, which stands for its answer to the SNAT address), this is its reply
    const e = this.table.reverse;
    return e >= 0 && this.lbSvc[e >>> 1] !== 0 ? e | 1 : -1;
  }

  /** look up the inverse of tuple `k` (already hashed): the entry it would be seen as from the other side */
  private lookupInverse(k: TupleKey): number {
    const r = this.rkey;
    r.v6 = k.v6;
    r.proto = k.proto;
    r.src.set(k.dst);
    r.dst.set(k.src);
    r.sport = k.dport;
    r.dport = k.sport;
    r.hash = k.hash; // the hash is symmetric: the inverse tuple hashes alike
    return this.table.lookup(r);
  }

  /** service index of a load-balanced connection, or -1 */
  serviceOf(c: number): number {
    return this.lbSvc[c]! - 1;
  }

  /** true for DR/tunnel connections, whose replies do not pass through the load balancer */
  inputOnly(c: number): boolean {
    return (this.lbFlags[c]! & L_INPUT_ONLY) !== 0;
  }

  /** FNAT: index (in the service's pool) of the local address of connection c */
  localAddrOf(c: number): number {
    return this.lbLocal[c]! >>> 16;
  }

  /** FNAT: local port of connection c */
  localPortOf(c: number): number {
    return this.lbLocal[c]! & 0xffff;
  }

  /** real server index of a load-balanced connection */
  serverOf(c: number): number {
    return this.lbDest[c]!;
  }

  /* ---------------- synproxy ---------------- */

  /** turn on the synproxy: TCP packets to synproxy services with no connection come back as SP_NO_CONN */
  enableSynproxy(): void {
    this.synproxyOn = this.lb !== null && this.lb.hasSynproxy;
  }

  /**
   * Synproxy step 2: open the connection of the client's validated ACK (the packet track() just returned
   * SP_NO_CONN for) in SYN_SENT, pending the server's handshake. Returns its entry, or -1 (counted) when no
   * server may take it.
   */
  spOpen(v: PacketView): number {
    this.spOpening = true;
    const e = this.create(v, this.key);
    this.spOpening = false;
    if (e < 0) return -1;
    const c = e >>> 1;
    this.lbFlags[c]! |= L_SYNPROXY;
    this.account(c, 0, v);
    this.spState(c, this.spSynSent, true);
    return e;
  }

  /** synproxy step 3: the server's SYN-ACK came in, the connection is established */
  spEstablish(c: number): void {
    this.status[c]! |= S_SEEN_REPLY | S_ASSURED;
    this.spState(c, this.stEstablished, false);
  }

  /** synproxy: the server refused (RST): the connection closes */
  spClose(c: number): void {
    this.status[c]! |= S_SEEN_REPLY;
    this.spState(c, this.stClosed, false);
  }

  /** synproxy: a closing connection reused by a new valid handshake goes back to SYN_SENT, pending */
  spReopen(c: number): void {
    this.spState(c, this.spSynSent, true);
  }

  /** move a synproxy connection to state `st` (pending in SYN_SENT), its timer, server counts and event */
  private spState(c: number, st: number, jitter: boolean): void {
    const isNew = this.state[c] === 0 && (this.status[c]! & S_NO_LAST) !== 0;
    if (st === this.spSynSent) this.lbFlags[c]! |= L_SP_PENDING;
    else this.lbFlags[c]! &= ~L_SP_PENDING;
    if (this.onOutcome !== null && st !== this.spSynSent) this.outcome(c, st === this.stEstablished);
    this.state[c] = st;
    this.status[c]! &= ~S_NO_LAST;
    this.armTimeout(c, this.tcpTimeout(c, st), jitter && this.jitter);
    this.lbState(c);
    this.emit(isNew ? 'new' : 'update', c);
  }

  /** passive health: a TCP state change that tells whether the connection's server answered */
  private transition(c: number, old: number, ns: number, dir: number): void {
    if (ns === this.stEstablished) this.outcome(c, true);
    else if (old === this.awaitServer && ns === this.stClosed && dir === 1) this.outcome(c, false); // refused
  }

  /** report connection c's outcome once (load-balanced TCP connections whose replies pass the LB) */
  private outcome(c: number, ok: boolean): void {
    const f = this.lbFlags[c]!;
    if (f & (L_OUTCOME | L_INPUT_ONLY) || this.lbSvc[c] === 0 || this.table.protoOf(c) !== IPPROTO_TCP) return;
    this.lbFlags[c] = f | L_OUTCOME;
    this.onOutcome!(this.lbSvc[c]! - 1, this.lbDest[c]!, ok);
  }

  /** opened by the synproxy */
  isSynproxy(c: number): boolean {
    return (this.lbFlags[c]! & L_SYNPROXY) !== 0;
  }

  /** synproxy connection waiting for its server's SYN-ACK */
  spPending(c: number): boolean {
    return (this.lbFlags[c]! & L_SP_PENDING) !== 0;
  }

  /** the TCP state number of connection c (profile's numbering) */
  stateOf(c: number): number {
    return this.state[c]!;
  }

  /** keep the server's active/inactive counts with the connection's state (DPVS: ESTABLISHED = active) */
  private lbState(c: number): void {
    const svc = this.lbSvc[c]! - 1;
    if (svc < 0) return;
    const active = this.isEstablished(c);
    const was = (this.lbFlags[c]! & L_ACTIVE) !== 0;
    if (active === was) return;
    const d = this.lb!.list[svc]!.dests;
    const i = this.lbDest[c]!;
    if (active) {
      d.active[i]!++;
      d.inactive[i]!--;
      this.lbFlags[c]! |= L_ACTIVE;
    } else {
      d.active[i]!--;
      d.inactive[i]!++;
      this.lbFlags[c]! &= ~L_ACTIVE;
    }
  }

  /**
   * Timeout of TCP state st for connection c: its service's conn_timeout in ESTABLISHED when set, else the
   * profile's (DPVS dp_vs_conn_set_timeout: the service's value for ESTABLISHED TCP and for UDP).
   */
  private tcpTimeout(c: number, st: number): number {
    if (st === this.stEstablished && this.lbFlags[c]! & L_CONN_TO) {
      const t = this.connTimeout(c);
      if (t > 0) return t;
    }
    return this.tcpTimeouts[st]!;
  }

  /** the UDP timeout `dflt` of connection c, or its service's conn_timeout when set */
  private udpTimeout(c: number, dflt: number): number {
    if (!(this.lbFlags[c]! & L_CONN_TO)) return dflt;
    const t = this.connTimeout(c);
    return t > 0 ? t : dflt;
  }

  /** conn_timeout of connection c's service as configured now (0 = none: a runtime change may have cleared it) */
  private connTimeout(c: number): number {
    const s = this.lb?.list[this.lbSvc[c]! - 1];
    return s ? s.cfg.conn_timeout : 0;
  }

  private isEstablished(c: number): boolean {
    if (this.table.protoOf(c) !== IPPROTO_TCP) return (this.status[c]! & S_SEEN_REPLY) !== 0;
    return this.state[c] === this.stEstablished;
  }

  private account(c: number, dir: number, v: PacketView): void {
    this.pkts[2 * c + dir]!++;
    this.bytes[2 * c + dir]! += v.ipTotalLen;
    if (this.lb !== null && this.lbSvc[c] !== 0) this.lbAccount(c, dir, v.ipTotalLen);
    this.lastSec[c] = this.curSec;
    this.lastFrac[c] = this.curFrac;
    const p = v.proto;
    if (p === IPPROTO_TCP) {
      // once this side's D and A letters are in, only SYN, FIN and RST can add one; nor can more data once
      // D is in (a side that never sends a pure ACK, as a server answering requests, never gets its A)
      const off = dir === 0 ? 0 : 6;
      const seen = this.hseen[c]!;
      if ((v.tcpFlags & (TCP_SYN | TCP_FIN | TCP_RST)) !== 0 || ((~seen & (H_DA << off)) !== 0 && !(seen & (1 << (off + H_D)) && v.payloadLen > 0))) this.tcpHistory(c, off, v);
    } else if (p === IPPROTO_UDP) {
      const code = dir === 0 ? H_D : 6 + H_D;
      if (!(this.hseen[c]! & (1 << code)) && v.payloadLen > 0) this.history(c, code, this.hseen[c]!);
    }
  }

  /** per service and per server packet and byte counts */
  private lbAccount(c: number, dir: number, len: number): void {
    // (ST_OUTPKTS = ST_INPKTS + 1, ST_OUTBYTES = ST_INBYTES + 1: the direction is an offset)
    const s = this.lb!.list[this.lbSvc[c]! - 1]!;
    const st = s.stats;
    const ds = s.destStats;
    const o = this.lbDest[c]! * ST_N + dir;
    st[ST_INPKTS + dir]!++;
    st[ST_INBYTES + dir]! += len;
    ds[o + ST_INPKTS]!++;
    ds[o + ST_INBYTES]! += len;
  }

  /** Zeek letters of a TCP packet: S/H (SYN, SYN+ACK), F, R, A (pure ACK), D (payload); upper case = originator */
  private tcpHistory(c: number, off: number, v: PacketView): void {
    const f = v.tcpFlags;
    const seen = this.hseen[c]!;
    if (f & TCP_SYN) this.history(c, off + (f & TCP_ACK ? H_H : H_S), seen);
    if (f & TCP_FIN) this.history(c, off + H_F, seen);
    if (f & TCP_RST) this.history(c, off + H_R, seen);
    if (v.payloadLen > 0) {
      if (!(seen & (1 << (off + H_D)))) this.history(c, off + H_D, this.hseen[c]!);
    } else if ((f & (TCP_ACK | TCP_SYN | TCP_FIN | TCP_RST)) === TCP_ACK && !(seen & (1 << (off + H_A)))) this.history(c, off + H_A, this.hseen[c]!);
  }

  private history(c: number, code: number, seenIn: number): void {
    const bit = 1 << code;
    const seen = this.hseen[c]! | seenIn;
    if (seen & bit) return;
    this.hseen[c] = seen | bit;
    // the number of letters so far is the popcount of seen
    let n = 0;
    for (let s = seen; s; s &= s - 1) n++;
    if (n >= 16) return;
    const w = 2 * c + (n >>> 3);
    this.hist[w] = (this.hist[w]! | ((code + 1) << ((n & 7) * 4))) >>> 0;
  }

  /** Zeek-style history string of connection c. */
  historyString(c: number): string {
    let s = '';
    for (let n = 0; n < 16; n++) {
      const code = ((this.hist[2 * c + (n >>> 3)]! >>> ((n & 7) * 4)) & 15) - 1;
      if (code < 0) break;
      s += HISTORY_LETTERS[code];
    }
    return s;
  }

  private emit(type: EventType, c: number): void {
    if (this.onEvent) this.onEvent(type, c, this.nowUs);
  }

  /* ---------------- TCP ---------------- */

  private tcp(c: number, dir: number, v: PacketView, isNew: boolean): number {
    return this.profile === 'dpvs' ? this.tcpDpvs(c, dir, v, isNew) : this.tcpNf(c, dir, v, isNew);
  }

  private tcpDpvs(c: number, dir: number, v: PacketView, isNew: boolean): number {
    const old = this.state[c]!;
    const off = this.lbFlags[c]! & L_INPUT_ONLY ? D_DIR_INPUT_ONLY : dir === 0 ? D_DIR_INPUT : D_DIR_OUTPUT;
    const ns = dpvsNext(off, v.tcpFlags, old);
    if (dir === 1) this.status[c]! |= S_SEEN_REPLY;
    if (ns !== old || isNew) {
      this.state[c] = ns;
      if (this.onOutcome !== null && ns !== old) this.transition(c, old, ns, dir);
      this.armTimeout(c, this.tcpTimeout(c, ns), isNew && this.jitter);
      if (isNew) this.emit('new', c);
      else this.emit('update', c);
      if (ns === D_ESTABLISHED && !(this.status[c]! & S_ASSURED)) this.status[c]! |= S_ASSURED;
    } else {
      this.armTimeout(c, this.tcpTimeout(c, old), false);
    }
    return OK;
  }

  private tcpNf(c: number, dir: number, v: PacketView, isNew: boolean): number {
    const flags = v.tcpFlags;
    let old = this.state[c]!;
    const idx = nfIndex(flags);
    let ns = nfNext(dir, idx, old);
    const st = this.status[c]!;
    const last = this.tcpLast[c]!;
    const lastIdx = st & S_NO_LAST ? NI_NONE : last & 7;
    const lastDir = (last >>> 3) & 1;
    let ignored = false;
    switch (ns) {
      case N_SYN_SENT:
        if (old < N_TIME_WAIT) break;
        // reopen from TIME_WAIT/CLOSE after a close or an RST from this side (RFC 1122)
        if (st & (S_CLOSE_INIT0 | S_CLOSE_INIT1) || (lastDir === dir && lastIdx === NI_RST)) {
          this.counters[C_REOPENED]!++;
          this.destroy(c, this.nowUs, 'reopened');
          return REPEAT;
        }
        ignored = true;
        break;
      case N_IGNORE:
        ignored = true;
        break;
      case N_INVALID:
        this.counters[C_INVALID]!++;
        return INVALID;
      case N_TIME_WAIT:
        if (old === N_LAST_ACK && idx === NI_ACK && lastDir !== dir && lastIdx === NI_SYN && st & S_CHALLENGE) {
          this.status[c] = st & ~S_CHALLENGE; // RFC 5961 challenge ACK: not the last ACK
          this.counters[C_IGNORE]!++;
          this.seenReply(c, dir);
          return OK;
        }
        break;
      case N_SYN_SENT2:
        this.status[c] = st | S_SIMOPEN;
        break;
      case N_SYN_RECV:
        if (dir === 1 && idx === NI_ACK && st & S_SIMOPEN) ns = N_ESTABLISHED;
        break;
      default:
        break;
    }
    if (ignored) {
      if (idx === NI_SYNACK && lastIdx === NI_SYN && lastDir !== dir && v.ack === this.lastEnd[c]) {
        // this SYN/ACK answers a SYN we ignored: client and server are in sync, resynchronise
        old = N_SYN_SENT;
        ns = N_SYN_RECV;
      } else {
        this.tcpLast[c] = idx | (dir << 3);
        this.status[c]! &= ~S_NO_LAST;
        this.lastEnd[c] = (v.seq + v.payloadLen + (flags & TCP_SYN ? 1 : 0) + (flags & TCP_FIN ? 1 : 0)) >>> 0;
        if (idx === NI_SYN && dir === 0) {
          if (old === N_LAST_ACK) this.status[c]! |= S_CHALLENGE;
          else this.status[c]! &= ~S_CHALLENGE;
        }
        this.counters[C_IGNORE]!++;
        this.seenReply(c, dir);
        return OK;
      }
    }
    // in-window (no window tracking: every segment is). last_end is recorded only for ignored segments, as
    // the kernel does when it does not track windows (tcp_in_window keeps it otherwise)
    this.tcpLast[c] = idx | (dir << 3);
    this.status[c]! &= ~S_NO_LAST;
    this.state[c] = ns;
    if (this.onOutcome !== null && ns !== old) this.transition(c, old, ns, dir);
    if (old !== ns && ns === N_FIN_WAIT) this.status[c]! |= dir === 0 ? S_CLOSE_INIT0 : S_CLOSE_INIT1;
    const to = this.tcpTimeouts;
    let timeout = idx === NI_RST ? to[N_CLOSE]! : this.tcpTimeout(c, ns);
    const s2 = this.status[c]!;
    let changed = old !== ns;
    if (!(s2 & S_SEEN_REPLY)) {
      if (flags & TCP_RST) {
        // only a RST answered: not an established connection, delete it at once
        if (isNew) this.emit('new', c);
        this.counters[C_KILLED]!++;
        this.destroy(c, this.nowUs, 'killed');
        return OK;
      }
      if (idx === NI_SYN && old === N_SYN_SENT && !isNew) {
        // SYN retransmit (or simultaneous-open SYN): the state may change, the timeout is not renewed
        if (changed) this.emit('update', c);
        this.seenReply(c, dir);
        return OK;
      }
      if (ns === N_ESTABLISHED && timeout > to[N_UNACK]!) timeout = to[N_UNACK]!;
    } else if (!(s2 & S_ASSURED) && (old === N_SYN_RECV || old === N_ESTABLISHED) && ns === N_ESTABLISHED) {
      this.status[c] = s2 | S_ASSURED;
      changed = true;
    }
    this.armTimeout(c, timeout, isNew && this.jitter);
    const firstReply = this.seenReply(c, dir);
    if (isNew) this.emit('new', c);
    else if (changed || firstReply) this.emit('update', c);
    return OK;
  }

  /** Mark a reply seen; returns true the first time. */
  private seenReply(c: number, dir: number): boolean {
    if (dir === 1 && !(this.status[c]! & S_SEEN_REPLY)) {
      this.status[c]! |= S_SEEN_REPLY;
      return true;
    }
    return false;
  }

  /* ---------------- UDP / ICMP ---------------- */

  private udp(c: number, dir: number, isNew: boolean): number {
    if (this.profile === 'dpvs') {
      const old = this.state[c]!;
      const ns = dir === 1 ? U_NORMAL : old === U_NONE ? U_ONEWAY : old;
      if (dir === 1) this.status[c]! |= S_SEEN_REPLY;
      this.state[c] = ns;
      this.armTimeout(c, this.udpTimeout(c, ns === U_NORMAL ? this.udpT.normal : this.udpT.oneway), isNew && this.jitter);
      if (isNew) this.emit('new', c);
      else if (ns !== old) this.emit('update', c);
      return OK;
    }
    const st = this.status[c]!;
    let timeout = this.udpT.unreplied;
    let changed = false;
    if (st & S_SEEN_REPLY) {
      const ageUs = this.nowUs - (this.firstSec[c]! * 1e6 + this.fracUs(this.firstFrac[c]!));
      if (ageUs > NF_UDP_STREAM_AFTER * 1e6) {
        timeout = this.udpT.replied;
        if (!(st & S_ASSURED)) {
          this.status[c] = st | S_ASSURED;
          this.state[c] = X_ASSURED;
          changed = true;
        }
      }
    }
    this.armTimeout(c, this.udpTimeout(c, timeout), isNew && this.jitter);
    if (this.seenReply(c, dir)) {
      if (this.state[c] === X_UNREPLIED) this.state[c] = X_REPLIED;
      changed = true;
    }
    if (isNew) this.emit('new', c);
    else if (changed) this.emit('update', c);
    return OK;
  }

  private icmp(c: number, dir: number, isNew: boolean): number {
    this.armTimeout(c, this.icmpT, isNew && this.jitter);
    const first = this.seenReply(c, dir);
    if (first) this.state[c] = X_REPLIED;
    if (isNew) this.emit('new', c);
    else if (first) this.emit('update', c);
    return OK;
  }

  private fracUs(frac: number): number {
    return this.digits === 6 ? frac : Math.floor(frac / 10 ** (this.digits - 6));
  }

  /** ICMP error: find the connection of the quoted packet; RELATED, no timer refresh. */
  private icmpRelated(v: PacketView): number {
    const q = v.inner;
    if (!q.valid || (q.proto !== IPPROTO_TCP && q.proto !== IPPROTO_UDP && q.proto !== IPPROTO_ICMP && q.proto !== IPPROTO_ICMPV6)) {
      this.counters[C_ICMP_ERROR]!++;
      return -1;
    }
    const k = this.key;
    k.proto = q.proto;
    k.v6 = q.ipVersion === 6;
    for (let i = 0; i < (k.v6 ? 4 : 1); i++) {
      k.src[i] = q.src[i]!;
      k.dst[i] = q.dst[i]!;
    }
    if (q.proto === IPPROTO_TCP || q.proto === IPPROTO_UDP) {
      k.sport = q.sport;
      k.dport = q.dport;
    } else {
      k.sport = q.icmpId;
      k.dport = q.icmpType << 8; // quoted echo: code 0
    }
    this.table.hashKey(k);
    this.counters[C_SEARCHED]!++;
    let e = this.table.lookup(k);
    if (e < 0 && this.lb && (q.proto === IPPROTO_TCP || q.proto === IPPROTO_UDP)) {
      // load balanced: the quoted packet went client -> server, the inverse of the stored reply tuple
      e = this.lookupInverse(k);
      if (e >= 0) e ^= 1; // the direction of the quoted packet
    }
    if (e < 0) {
      this.counters[C_ICMP_ERROR]!++;
      return -1;
    }
    const c = e >>> 1;
    this.counters[C_RELATED]!++;
    if (this.related[c]! < 0xffff) this.related[c]!++;
    this.lastSec[c] = this.curSec;
    this.lastFrac[c] = this.curFrac;
    return e;
  }

  /* ---------------- inspection ---------------- */

  statusOf(c: number): number {
    return this.status[c]!;
  }

  /**
   * Idle timeout in force for connection c, in seconds (derived from protocol, state and flags, as the
   * packet path sets it; not stored).
   */
  timeoutOf(c: number): number {
    const p = this.table.protoOf(c);
    const st = this.state[c]!;
    if (p === IPPROTO_TCP) {
      const t = this.tcpTimeout(c, st);
      if (this.profile === 'netfilter' && st === N_ESTABLISHED && !(this.status[c]! & S_SEEN_REPLY)) return Math.min(t, this.tcpTimeouts[N_UNACK]!);
      return t;
    }
    if (p === IPPROTO_UDP) {
      if (this.profile === 'dpvs') return this.udpTimeout(c, st === U_NORMAL ? this.udpT.normal : this.udpT.oneway);
      return this.udpTimeout(c, st === X_ASSURED ? this.udpT.replied : this.udpT.unreplied);
    }
    return this.icmpT;
  }

  /** packets of direction dir (0 original, 1 reply) */
  packetsOf(c: number, dir: number): number {
    return this.pkts[2 * c + dir]!;
  }

  /** IP bytes of direction dir */
  bytesOf(c: number, dir: number): number {
    return this.bytes[2 * c + dir]!;
  }

  relatedOf(c: number): number {
    return this.related[c]!;
  }

  /** first and last packet time as [sec, frac] at the capture's precision */
  firstOf(c: number): [number, number] {
    return [this.firstSec[c]!, this.firstFrac[c]!];
  }

  lastOf(c: number): [number, number] {
    return [this.lastSec[c]!, this.lastFrac[c]!];
  }

  stateName(c: number): string {
    const p = this.table.protoOf(c);
    if (p === IPPROTO_TCP) return this.tcpNames[this.state[c]!]!;
    if (this.profile === 'dpvs') return p === IPPROTO_UDP ? ['NONE', 'ONEWAY', 'NORMAL'][this.state[c]!]! : 'NORMAL';
    return X_NAMES[this.state[c]!]!;
  }

  isV6(c: number): boolean {
    return this.table.isV6(c);
  }

  /** Remove every connection now (ipvsadm -C / conntrack -F): each is destroyed as 'killed'. Returns how many. */
  flush(): number {
    let n = 0;
    for (const c of [...this.handles()]) {
      this.destroy(c, this.nowUs, 'killed');
      n++;
    }
    return n;
  }

  /** live connection handles */
  *handles(): Generator<number> {
    const t = this.table;
    for (let c = 0; c < t.highWater; c++) if (t.isUsed(c)) yield c;
  }
}

const OK = 0;
const INVALID = 1;
const REPEAT = 2;
