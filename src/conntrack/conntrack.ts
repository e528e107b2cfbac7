/**
 * Connection tracking, and nothing of load balancing (Linux keeps nf_conntrack_core.c free of IPVS): one
 * probe per packet into the table, the protocol state machine of src/proto (the profile chosen once, at
 * construction), the idle timeout re-armed on one timer wheel, counters named as nf_conntrack's, and the
 * accounting extension (acct.ts). What sits above it (the load balancer, the synproxy, records, flows) uses:
 *  - key(v) / find(k): the packet's tuple and its entry (2·handle + direction), or -1;
 *  - mayOpen(v), alloc(k), insert(c, k[, reply]), init(c): a new connection, with the reply tuple the caller
 *    chose (a NAT connection's server answers, not its original destination);
 *  - step(c, dir, v, isNew): the packet through the state machine; STEP_REOPEN when it closed the
 *    connection to open it again;
 *  - hooks: onEvent (new/update/destroy, for records), onTransition (a state change, with the old state and
 *    the packet's direction), onExpire (may keep the connection, re-armed), and extensions called when a
 *    connection is destroyed.
 * A random delay in [0, 1 s) from a seeded PRNG is added to the first timeout of every connection
 * (dpvs_time_rand_delay() in dp_vs_conn_new()), so replays are repeatable for a seed.
 */
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, type PacketView } from '../packet/view.js';
import { icmpInverse, icmpIsRequest } from '../proto/icmp.js';
import { machines, type Machines, type Profile } from '../proto/index.js';
import { TICK_US, type Timeline } from '../timer/timeline.js';
import { TimerWheel } from '../timer/wheel.js';
import { Acct } from './acct.js';
import { ConnTable, jitterUs, TupleKey } from './table.js';
import {
  STEP_REOPEN,
  C_DROP,
  C_EARLY_DROP,
  C_EXPIRED,
  C_FOUND,
  C_ICMP_ERROR,
  C_INSERT,
  C_INSERT_FAILED,
  C_INVALID,
  C_NEW,
  C_NO_CONN,
  C_RELATED,
  C_SEARCHED,
  C_UNTRACKED_CHECKSUM,
  C_UNTRACKED_DECODE,
  C_UNTRACKED_FRAGMENT,
  C_UNTRACKED_ICMP,
  C_UNTRACKED_PROTO,
  COUNTER_NAMES,
  F_TIMEOUT_HOOK,
  S_ASSURED,
  S_NO_LAST,
  S_SEEN_REPLY,
  type CounterName,
} from './bits.js';

export * from './bits.js';

export type { Profile } from '../proto/index.js';

export interface ConntrackConfig {
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

export type EventType = 'new' | 'update' | 'destroy';
export type DestroyReason = 'expired' | 'killed' | 'evicted' | 'reopened';
/** Event sink: called only when set; `tsUs` is the event time in µs. */
export type EventFn = (type: EventType, c: number, tsUs: number) => void;

/**
 * Something kept per connection beside the tracker's own rows (accounting, LB rows, synproxy state, records,
 * flows): rows by handle, allocated for the table's capacity, told when a connection is made at a handle and
 * when it goes (nf_conntrack's extensions, allocated and released with the connection).
 */
export interface ConnExtension {
  /** a connection is made at handle c (after insert); `reused`: the handle held another one, whose rows it must reset */
  created?(c: number, reused: boolean): void;
  /** connection c is being destroyed at `tUs` (its tuple and rows still readable) */
  destroyed?(c: number, tUs: number, reason: DestroyReason): void;
}

export class Conntrack {
  readonly table: ConnTable;
  readonly wheel: TimerWheel;
  readonly acct: Acct;
  readonly profile: Profile;
  readonly counters = new Float64Array(COUNTER_NAMES.length);
  /* per-connection rows, by handle */
  readonly state: Uint8Array;
  readonly status: Uint8Array;
  /** F_* bits set by whoever created the connection */
  readonly flags: Uint8Array;
  /** netfilter TCP: last_index (3 bits) | last_dir << 3 */
  readonly tcpLast: Uint8Array;
  readonly lastEnd: Uint32Array;
  readonly m: Machines;
  readonly tcpTimeouts: number[];
  readonly tcpNames: string[];
  readonly udpT: { unreplied: number; replied: number; oneway: number; normal: number };
  readonly icmpT: number;
  private readonly jitter: boolean;
  private readonly dpvs: boolean;
  /** the lookup key of the packet being tracked (filled by key()) */
  readonly k = new TupleKey();
  private readonly inv = new TupleKey();
  created = 0;
  createdByProto = { tcp: 0, udp: 0, icmp: 0 };
  /**
   * connections open now by protocol (0 TCP, 1 UDP, 2 ICMP, 3 ICMPv6) and state: byState[p * STATE_STRIDE + state], kept
   * on every transition (a few per connection, never per packet), so a gauge costs no scan of the table. Each
   * connection's counted state is its own row (a machine may name another `old` than it left: a resync).
   */
  readonly byState = new Float64Array(4 * STATE_STRIDE);
  private readonly counted: Uint8Array;
  /** the profile's ESTABLISHED state */
  readonly stEstablished: number;

  onEvent: EventFn | null = null;
  /** a connection's state changed from `old` (the packet, if any, went in direction `dir`) */
  onTransition: ((c: number, old: number, dir: number) => void) | null = null;
  /** a connection's timer ran out: true keeps it (the hook re-armed it) */
  onExpire: ((c: number) => boolean) | null = null;
  /** the timeout of an ESTABLISHED TCP or a UDP connection with F_TIMEOUT_HOOK, or 0 for the profile's */
  timeoutHook: ((c: number) => number) | null = null;
  /** extensions from above (the tracker's own accounting is reset directly) */
  private readonly onCreate: ConnExtension[] = [];
  private readonly onDestroy: ConnExtension[] = [];
  private readonly fireFn = (c: number) => this.expire(c);

  constructor(
    cfg: ConntrackConfig,
    readonly time: Timeline,
  ) {
    const cap = cfg.maxConns;
    this.profile = cfg.profile;
    this.table = new ConnTable(cap, (cfg.seed ^ 0x5bd1e995) >>> 0);
    this.wheel = new TimerWheel(cap);
    this.acct = new Acct(cap, time);
    this.dpvs = cfg.profile === 'dpvs';
    this.state = new Uint8Array(cap);
    this.status = new Uint8Array(cap);
    this.flags = new Uint8Array(cap);
    this.tcpLast = new Uint8Array(cap);
    this.lastEnd = new Uint32Array(cap);
    this.counted = new Uint8Array(cap);
    this.jitter = cfg.jitter !== false;
    this.m = machines(cfg.profile, this);
    this.tcpNames = this.m.tcpNames;
    this.tcpTimeouts = [...this.m.tcpTimeouts];
    this.stEstablished = this.m.established;
    const d = this.m.defaults;
    const u = cfg.udpTimeouts ?? {};
    this.udpT = { unreplied: u.unreplied ?? d.unreplied, replied: u.replied ?? d.replied, oneway: u.oneway ?? d.oneway, normal: u.normal ?? d.normal };
    this.icmpT = cfg.icmpTimeout ?? d.icmp;
    for (const [name, secs] of Object.entries(cfg.tcpTimeouts ?? {})) {
      const i = this.tcpNames.findIndex((n) => n.toLowerCase() === name.toLowerCase());
      if (i < 0) throw new Error(`unknown TCP state "${name}" for profile ${cfg.profile} (known: ${this.tcpNames.join(', ')})`);
      this.tcpTimeouts[i] = secs;
    }
    time.every((tick) => this.wheel.advance(tick, this.fireFn), true);
  }

  extend(ext: ConnExtension): void {
    if (ext.created) this.onCreate.push(ext);
    if (ext.destroyed) this.onDestroy.push(ext);
  }

  counter(name: CounterName): number {
    return this.counters[COUNTER_NAMES.indexOf(name)]!;
  }

  /* ---------------- lookup ---------------- */

  /**
   * The packet's tuple in `k` (hashed): TCP/UDP ports, ICMP queries by id and type. False (counted as not
   * tracked) for what has none: not decoded, a later fragment, another protocol, an ICMP message that is not
   * a query (errors go to related()).
   */
  key(v: PacketView): boolean {
    const k = this.k;
    const p = v.proto;
    // IPv4 TCP/UDP after an IPv4 key (almost every packet) here; everything else out of line (this is inlined)
    if (v.status !== 0 || !v.hasL4 || v.ipVersion !== 4 || k.v6 || (p !== IPPROTO_TCP && p !== IPPROTO_UDP)) return this.keyOther(v);
    k.sport = v.sport;
    k.dport = v.dport;
    k.proto = p;
    k.src[0] = v.src[0]!;
    k.dst[0] = v.dst[0]!;
    this.table.hashKey(k);
    return true;
  }

  /** key() for the rest: IPv6, ICMP queries, what has no tuple, the first IPv4 key after an IPv6 one */
  private keyOther(v: PacketView): boolean {
    const k = this.k;
    const p = v.proto;
    if (v.status !== 0 || !v.hasL4) return this.untracked(v);
    if (p === IPPROTO_TCP || p === IPPROTO_UDP) {
      k.sport = v.sport;
      k.dport = v.dport;
    } else if ((p === IPPROTO_ICMP || p === IPPROTO_ICMPV6) && icmpInverse(p === IPPROTO_ICMPV6, v.icmpType) >= 0) {
      k.sport = v.icmpId;
      k.dport = (v.icmpType << 8) | v.icmpCode;
    } else {
      this.counters[p === IPPROTO_ICMP || p === IPPROTO_ICMPV6 ? C_UNTRACKED_ICMP : C_UNTRACKED_PROTO]!++;
      return false;
    }
    k.proto = p;
    const v6 = v.ipVersion === 6;
    for (let i = 0; i < 4; i++) {
      // an IPv4 key holds only word 0
      k.src[i] = v6 || i === 0 ? v.src[i]! : 0;
      k.dst[i] = v6 || i === 0 ? v.dst[i]! : 0;
    }
    k.v6 = v6;
    this.table.hashKey(k);
    return true;
  }

  private untracked(v: PacketView): boolean {
    this.counters[v.status !== 0 ? C_UNTRACKED_DECODE : v.isFragment ? C_UNTRACKED_FRAGMENT : C_UNTRACKED_PROTO]!++;
    return false;
  }

  /** The entry (2·handle + direction) of key `k` (hashed), or -1. On a miss, `table.reverse` tells whether the reverse tuple is an original one. */
  find(k: TupleKey): number {
    this.counters[C_SEARCHED]!++;
    const e = this.table.lookup(k);
    if (e >= 0) this.counters[C_FOUND]!++;
    return e;
  }

  /**
   * An ICMP error: the entry of the connection its quoted packet belongs to (in the quoted packet's
   * direction), counted as RELATED (no timer refresh), or -1. `inverse`: a quoted packet may also be seen
   * from the other side of a translation (the inverse of a stored reply tuple).
   */
  related(v: PacketView, inverse: boolean): number {
    const q = v.inner;
    if (!q.valid || (q.proto !== IPPROTO_TCP && q.proto !== IPPROTO_UDP && q.proto !== IPPROTO_ICMP && q.proto !== IPPROTO_ICMPV6)) {
      this.counters[C_ICMP_ERROR]!++;
      return -1;
    }
    const k = this.k;
    k.proto = q.proto;
    k.v6 = q.ipVersion === 6;
    for (let i = 0; i < 4; i++) {
      k.src[i] = k.v6 || i === 0 ? q.src[i]! : 0;
      k.dst[i] = k.v6 || i === 0 ? q.dst[i]! : 0;
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
    if (e < 0 && inverse && (q.proto === IPPROTO_TCP || q.proto === IPPROTO_UDP)) {
      // the quoted packet went client -> server, the inverse of the stored reply tuple
      const r = this.inv;
      r.v6 = k.v6;
      r.proto = k.proto;
      r.src.set(k.dst);
      r.dst.set(k.src);
      r.sport = k.dport;
      r.dport = k.sport;
      r.hash = k.hash; // the hash is symmetric: the inverse tuple hashes alike
      e = this.table.lookup(r);
      if (e >= 0) e ^= 1; // the direction of the quoted packet
    }
    if (e < 0) {
      this.counters[C_ICMP_ERROR]!++;
      return -1;
    }
    this.counters[C_RELATED]!++;
    this.acct.relatedPacket(e >>> 1);
    return e;
  }

  /* ---------------- new connections ---------------- */

  /**
   * May this packet open a connection? TCP: a SYN (dpvs: a pure SYN, as tcp_conn_sched() requires;
   * netfilter also picks up an ACK mid-stream), or `ackOnly` (the synproxy opens on the client's ACK); UDP:
   * any; ICMP: a request. Counted as invalid when not.
   */
  mayOpen(v: PacketView, ackOnly = false): boolean {
    const p = v.proto;
    let ok: boolean;
    if (p === IPPROTO_TCP) {
      const f = v.tcpFlags & (TCP_SYN | TCP_ACK | TCP_FIN | TCP_RST);
      ok = ackOnly ? f === TCP_ACK : this.dpvs ? f === TCP_SYN : f === TCP_SYN || f === TCP_ACK;
    } else ok = p === IPPROTO_UDP || icmpIsRequest(p === IPPROTO_ICMPV6, v.icmpType);
    if (!ok) {
      this.counters[C_NO_CONN]!++;
      this.counters[C_INVALID]!++;
    }
    return ok;
  }

  /**
   * A free handle for a new connection of key `k`, or -1 (counted). When the table is full, a connection that
   * is not assured or established is evicted from nearby buckets (nf_conntrack early_drop).
   */
  alloc(k: TupleKey): number {
    const c = this.table.alloc();
    if (c >= 0) return c;
    const victim = this.table.findEvictable(k.hash, 8, (x) => (this.status[x]! & S_ASSURED) === 0 && !this.isEstablished(x));
    if (victim < 0) {
      this.counters[C_INSERT_FAILED]!++;
      this.counters[C_DROP]!++;
      return -1;
    }
    this.counters[C_EARLY_DROP]!++;
    this.destroy(victim, this.time.nowUs, 'evicted');
    return this.table.alloc();
  }

  /** Give back a handle alloc() returned, when the connection is not made after all. */
  release(c: number): void {
    this.table.release(c);
  }

  /** Index handle c under key `k` (the reply tuple is its inverse). */
  insert(c: number, k: TupleKey): void {
    this.table.insert(c, k);
  }

  /** Index handle c under key `k` with reply tuple `reply` (hashed): its answers come from elsewhere than k's destination. */
  insertNat(c: number, k: TupleKey, reply: TupleKey): void {
    this.table.insertNat(c, k, reply);
  }

  /** A new connection's rows (after insert), with F_* `flags`; counted. */
  init(c: number, proto: number, flags: number): void {
    const reused = this.table.reused;
    this.acct.created(c, reused);
    for (const x of this.onCreate) x.created!(c, reused);
    this.status[c] = S_NO_LAST;
    // (flags stay untouched pages for connections without any: tracking alone never writes them)
    if (flags !== 0 || reused) this.flags[c] = flags;
    if (reused) {
      // a fresh handle's rows are still zero; a reused one's hold the previous connection
      this.state[c] = 0;
      this.tcpLast[c] = 0;
      this.lastEnd[c] = 0;
    }
    this.counted[c] = 0;
    this.byState[protoRow(proto)]!++;
    this.counters[C_NEW]!++;
    this.counters[C_INSERT]!++;
    this.created++;
    if (proto === IPPROTO_TCP) this.createdByProto.tcp++;
    else if (proto === IPPROTO_UDP) this.createdByProto.udp++;
    else this.createdByProto.icmp++;
  }

  /* ---------------- per packet ---------------- */

  /** Count the packet on connection c (direction dir) and run its protocol's state machine. */
  step(c: number, dir: number, v: PacketView, isNew: boolean): number {
    this.acct.packet(c, dir, v);
    const p = v.proto;
    return p === IPPROTO_TCP ? this.m.tcp.step(c, dir, v, isNew) : p === IPPROTO_UDP ? this.m.udp.step(c, dir, isNew) : this.m.icmp.step(c, dir, isNew);
  }

  /**
   * Tracking alone (nf_conntrack_in): the packet's connection found or made, its state machine run. Returns
   * its entry (2·handle + direction) or -1 when it is not tracked. (The load balancer composes the same steps
   * itself, choosing the reply tuple of a new connection.)
   */
  track(v: PacketView): number {
    if (v.icmpIsError) return this.related(v, false);
    if (!this.key(v)) return -1;
    const k = this.k;
    const e = this.find(k);
    if (e >= 0 && this.step(e >>> 1, e & 1, v, false) !== STEP_REOPEN) return e;
    // a new connection (also when the packet closed the old one to open it again)
    if (!this.mayOpen(v)) return -1;
    const c = this.alloc(k);
    if (c < 0) return -1;
    this.table.insert(c, k);
    this.init(c, v.proto, 0);
    this.step(c, 0, v, true);
    return 2 * c;
  }

  /** A packet with a bad checksum: invalid for tracking, as with nf_conntrack_checksum=1. */
  rejectChecksum(): void {
    this.counters[C_UNTRACKED_CHECKSUM]!++;
    this.counters[C_INVALID]!++;
  }

  /* ---------------- what the machines (and the synproxy) use ---------------- */

  emit(type: EventType, c: number): void {
    if (this.onEvent !== null) this.onEvent(type, c, this.time.nowUs);
  }

  transition(c: number, old: number, dir: number): void {
    const row = protoRow(this.table.protoOf(c));
    const st = this.state[c]!;
    this.byState[row + this.counted[c]!]!--;
    this.byState[row + st]!++;
    this.counted[c] = st;
    if (this.onTransition !== null) this.onTransition(c, old, dir);
  }

  /** Mark a reply seen; returns true the first time. */
  seenReply(c: number, dir: number): boolean {
    if (dir === 1 && !(this.status[c]! & S_SEEN_REPLY)) {
      this.status[c]! |= S_SEEN_REPLY;
      return true;
    }
    return false;
  }

  /**
   * Move connection c to state `st` outside a packet (the synproxy's steps): its timer re-armed for the
   * state, the transition and an event (new when it had none yet).
   */
  setState(c: number, st: number, jitter: boolean): void {
    const isNew = this.state[c] === 0 && (this.status[c]! & S_NO_LAST) !== 0;
    const old = this.state[c]!;
    this.state[c] = st;
    this.status[c]! &= ~S_NO_LAST;
    if (st !== old) this.transition(c, old, -1);
    this.armTimeout(c, this.tcpTimeout(c, st), jitter);
    this.emit(isNew ? 'new' : 'update', c);
  }

  /* ---------------- time ---------------- */

  armTimeout(c: number, secs: number, jitter: boolean): void {
    // whole milliseconds (every timeout but a configured fraction of one): in ticks, without a division
    const ms = secs * 1000;
    if (!(jitter && this.jitter) && ms === Math.floor(ms)) {
      this.wheel.extend(c, this.time.tickUp + ms);
      return;
    }
    let us = this.time.nowUs + secs * 1e6;
    // the jitter of a connection is a function of its original tuple's (seeded) hash and the time, not the
    // next draw of one generator: a connection gets the same timeout whatever else was tracked before it, so
    // replays with several workers (each its own table) time out exactly what one would
    if (jitter && this.jitter) us += jitterUs(this.table.tup[8 * c + 1]!, this.time.nowUs);
    this.wheel.extend(c, Math.ceil(us / TICK_US));
  }

  /**
   * Timeout of TCP state st for connection c: with F_TIMEOUT_HOOK, the hook's in ESTABLISHED when it has
   * one, else the profile's (DPVS dp_vs_conn_set_timeout: a service's value for ESTABLISHED TCP and for UDP).
   */
  tcpTimeout(c: number, st: number): number {
    if (st === this.stEstablished && this.flags[c]! & F_TIMEOUT_HOOK) {
      const t = this.timeoutHook!(c);
      if (t > 0) return t;
    }
    return this.tcpTimeouts[st]!;
  }

  /** the UDP timeout `dflt` of connection c, or the hook's when it has one */
  udpTimeout(c: number, dflt: number): number {
    if (!(this.flags[c]! & F_TIMEOUT_HOOK)) return dflt;
    const t = this.timeoutHook!(c);
    return t > 0 ? t : dflt;
  }

  /** Remaining time before expiry, in seconds (for listings). */
  remaining(c: number): number {
    return Math.max(0, (this.wheel.expiry(c) * TICK_US - this.time.nowUs) / 1e6);
  }

  private expire(c: number): void {
    if (this.onExpire !== null && this.onExpire(c)) return;
    this.counters[C_EXPIRED]!++;
    this.destroy(c, this.wheel.expiry(c) * TICK_US, 'expired');
  }

  destroy(c: number, tUs: number, reason: DestroyReason): void {
    this.wheel.cancel(c);
    if (this.onEvent) this.onEvent('destroy', c, tUs);
    for (const x of this.onDestroy) x.destroyed!(c, tUs, reason);
    this.byState[protoRow(this.table.protoOf(c)) + this.counted[c]!]!--;
    this.table.remove(c);
  }

  /**
   * Advance time until every connection has expired (replay --drain), each at its own expiry time, and
   * whatever else runs on expiries (persistence templates) with them.
   */
  drain(more: () => boolean = () => false): void {
    const longest = Math.max(...this.tcpTimeouts, this.udpT.unreplied, this.udpT.replied, this.udpT.oneway, this.udpT.normal, this.icmpT) + 2;
    while (this.wheel.armed > 0) this.time.jump((Math.floor(this.time.nowUs / TICK_US) + longest * 1000) * TICK_US);
    // persistence templates outlive their connections by their own timeout
    for (let guard = 0; more() && guard < 1000; guard++) this.time.jump(this.time.nowUs + 3600 * 1e6);
  }

  /** Remove every connection now (ipvsadm -C / conntrack -F): each is destroyed as 'killed'. Returns how many. */
  flush(): number {
    let n = 0;
    for (const c of [...this.handles()]) {
      this.destroy(c, this.time.nowUs, 'killed');
      n++;
    }
    return n;
  }

  /* ---------------- inspection ---------------- */

  isEstablished(c: number): boolean {
    if (this.table.protoOf(c) !== IPPROTO_TCP) return (this.status[c]! & S_SEEN_REPLY) !== 0;
    return this.state[c] === this.stEstablished;
  }

  statusOf(c: number): number {
    return this.status[c]!;
  }

  stateOf(c: number): number {
    return this.state[c]!;
  }

  /** Idle timeout in force for connection c, in seconds (derived from protocol, state and flags; not stored). */
  timeoutOf(c: number): number {
    return this.m.timeoutOf(c);
  }

  stateName(c: number): string {
    return this.m.nameOf(this.table.protoOf(c), this.state[c]!);
  }

  /** "proto/STATE" -> its rows in byState, for every state of the profile (dpvs names every ICMP state NORMAL) */
  stateRows(): Map<string, number[]> {
    const out = new Map<string, number[]>();
    const protos = [IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6];
    for (let p = 0; p < 4; p++) {
      for (let st = 0; st < STATE_STRIDE; st++) {
        const name = this.m.nameOf(protos[p]!, st);
        if (name === undefined) continue;
        const k = `${PROTO_NAMES[p]}/${name}`;
        const rows = out.get(k);
        if (rows) rows.push(p * STATE_STRIDE + st);
        else out.set(k, [p * STATE_STRIDE + st]);
      }
    }
    return out;
  }

  /** connections open now by "proto/STATE" (from byState: no scan); `all`: every state of the profile, with none too */
  openByState(all = false): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, rows] of this.stateRows()) {
      const n = rows.reduce((a, r) => a + this.byState[r]!, 0);
      if (n > 0 || all) out[k] = n;
    }
    return out;
  }

  isV6(c: number): boolean {
    return this.table.isV6(c);
  }

  /** live connection handles */
  *handles(): Generator<number> {
    const t = this.table;
    for (let c = 0; c < t.highWater; c++) if (t.isUsed(c)) yield c;
  }
}

/** states per protocol row of Conntrack.byState (every profile has fewer) */
export const STATE_STRIDE = 16;
const PROTO_NAMES = ['tcp', 'udp', 'icmp', 'icmpv6'];

/** the byState row of protocol p (the table tracks TCP, UDP, ICMP and ICMPv6 only) */
function protoRow(p: number): number {
  return p === IPPROTO_TCP ? 0 : p === IPPROTO_UDP ? STATE_STRIDE : p === IPPROTO_ICMP ? 2 * STATE_STRIDE : 3 * STATE_STRIDE;
}
