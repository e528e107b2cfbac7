/**
 * Load balancing over connection tracking (as Cilium's lb.h sits over conntrack.h, never the reverse): the
 * service of a new connection's destination, a real server from its scheduler (or its client's persistence
 * template), the connection indexed with the reply tuple its forwarding mode builds, and per connection the
 * service, server, mode, local port and template. It keeps each server's active (ESTABLISHED) and inactive
 * counts with the connection's state, the per-service and per-server counters, passive health outcomes, and
 * gives the port and the template back when the connection goes.
 */
import { F_INPUT_ONLY, F_TIMEOUT_HOOK, type Conntrack, type ConnExtension, S_SEEN_REPLY } from '../conntrack/conntrack.js';
import { TupleKey } from '../conntrack/table.js';
import { IPPROTO_TCP } from '../packet/view.js';
import { ST_CONNS, ST_INBYTES, ST_INPKTS, ST_N, type Services } from '../service/services.js';
import type { Timeline } from '../timer/timeline.js';
import { MODES } from '../xmit/modes.js';
import { Templates } from './persistence.js';

export const LB_COUNTER_NAMES = ['unmatched', 'no_dest', 'no_lport'] as const;
const C_UNMATCHED = 0;
const C_NO_DEST = 1;
const C_NO_LPORT = 2;

/* per-connection flags */
const L_ACTIVE = 0x01; // counted in its server's active connections (else inactive)
const L_OUTCOME = 0x02; // passive health: this connection's outcome was reported

export class Balancer implements ConnExtension {
  /** unmatched, no_dest, no_lport (reported with the conntrack counters, as they were) */
  readonly counters = new Float64Array(LB_COUNTER_NAMES.length);
  /* per connection: service index + 1 (0 = none), server index, L_* flags, forwarding mode (bound once) */
  private readonly svc: Int32Array;
  private readonly dest: Int32Array;
  private readonly lflags: Uint8Array;
  private readonly mode: Uint8Array;
  /** FNAT/SNAT: local address index << 16 | local port, and the id of the pool that lent it */
  private readonly local: Int32Array;
  private readonly pool: Int32Array;
  /** persistence template of the connection + 1 (0 = none) */
  private readonly tmpl: Int32Array;
  /** persistence templates (created when a persistent service first schedules) */
  templates: Templates | null = null;
  private readonly tOut = new Int32Array(1);
  /** why the last bind() failed: no_dest or no_lport */
  lastFailure = '';
  private readonly rkey = new TupleKey();
  /**
   * Passive health: called once per load-balanced TCP connection whose answers pass the LB (not DR/tunnel)
   * with ok = true when it reaches ESTABLISHED, false when its server refuses it (RST while it waits for the
   * server) or it expires waiting without a packet from the server. A server's SYN-ACK that the client never
   * acknowledges (a spoofed SYN) is neither.
   */
  onOutcome: ((svc: number, dest: number, ok: boolean) => void) | null = null;

  constructor(
    readonly services: Services,
    private readonly ct: Conntrack,
    private readonly time: Timeline,
  ) {
    const cap = ct.table.capacity;
    this.svc = new Int32Array(cap);
    this.dest = new Int32Array(cap);
    this.lflags = new Uint8Array(cap);
    this.mode = new Uint8Array(cap);
    this.local = new Int32Array(cap);
    this.pool = new Int32Array(cap);
    this.tmpl = new Int32Array(cap);
    ct.extend(this);
    ct.onTransition = (c, old, dir) => this.transition(c, old, dir);
    ct.timeoutHook = (c) => this.connTimeout(c);
    time.every((_tick, us) => this.templates?.advance(us), true);
    time.every((_tick, us) => this.services.estimate(us));
  }

  /** The service a new connection `k` (hashed) goes to, or -1 (counted): a virtual service, else a SNAT one. */
  match(k: TupleKey): number {
    const lb = this.services;
    let s = lb.lookup(k.proto, k.v6, k.dst, k.dport);
    if (s < 0 && lb.hasSnat) s = lb.matchSnat(k.proto, k.v6, k.src, k.dst, k.dport);
    if (s < 0) this.counters[C_UNMATCHED]!++;
    return s;
  }

  /**
   * Schedule new connection c (key `k`, service `si`): a real server, the connection inserted into the table
   * with its mode's reply tuple. Returns the conntrack flags the connection gets, or -1 (counted: no usable
   * server, no free local port) when it cannot be made.
   */
  bind(c: number, si: number, k: TupleKey): number {
    const s = this.services.list[si]!;
    const pers = s.cfg.persistence;
    let tmpl = -1;
    let d: number;
    if (pers) {
      // persistent service: the client's template decides while it lives and its server is usable
      const tm = (this.templates ??= new Templates(this.ct.table.capacity, this.ct.table.seed));
      const prefix = pers.netmask === 32 && k.v6 ? 128 : pers.netmask;
      d = tm.find(k.proto, k.v6, k.src, s.vip, s.port, prefix, this.tOut);
      if (d >= 0 && s.keepsTemplate(d)) tmpl = this.tOut[0]!;
      else {
        d = this.services.schedule(si, k);
        if (d >= 0) tmpl = tm.create(k.proto, k.v6, k.src, s.vip, s.port, prefix, d, pers.timeout, this.time.nowUs);
      }
    } else d = this.services.schedule(si, k);
    if (d < 0) {
      this.counters[C_NO_DEST]!++;
      this.lastFailure = 'no_dest';
      return -1;
    }
    const code = s.fwd[d]!;
    const mode = MODES[code]!;
    let flags = 0;
    if (mode.translated) {
      const r = this.rkey;
      const l = mode.reply(k, s, d, r);
      if (l < 0) {
        this.counters[C_NO_LPORT]!++;
        this.lastFailure = 'no_lport';
        return -1;
      }
      this.local[c] = l;
      this.pool[c] = l > 0 ? s.pool!.id : -1;
      this.ct.table.hashKey(r);
      this.ct.insertNat(c, k, r);
    } else {
      // DR / tunnel: the server answers from the VIP itself, the reply tuple is the inverse; its replies bypass
      // the LB (DPVS's input-only state table) unless the server is an agent's, whose replies the hub brings
      this.ct.insert(c, k);
      this.pool[c] = -1;
      if (s.agentOf[d] === null) flags = F_INPUT_ONLY;
    }
    if (s.cfg.conn_timeout > 0) flags |= F_TIMEOUT_HOOK;
    this.svc[c] = si + 1;
    this.dest[c] = d;
    this.mode[c] = code;
    this.lflags[c] = 0;
    this.tmpl[c] = 0;
    if (tmpl >= 0) {
      this.templates!.use(tmpl, this.time.nowUs);
      this.tmpl[c] = tmpl + 1;
    }
    s.dests.inactive[d]!++;
    s.checkOverload(d);
    s.stats[ST_CONNS]!++;
    s.destStats[d * ST_N + ST_CONNS]!++;
    return flags;
  }

  /** per service and per server packet and byte counts */
  account(c: number, dir: number, len: number): void {
    // (ST_OUTPKTS = ST_INPKTS + 1, ST_OUTBYTES = ST_INBYTES + 1: the direction is an offset)
    const s = this.services.list[this.svc[c]! - 1]!;
    const st = s.stats;
    const ds = s.destStats;
    const o = this.dest[c]! * ST_N + dir;
    st[ST_INPKTS + dir]!++;
    st[ST_INBYTES + dir]! += len;
    ds[o + ST_INPKTS]!++;
    ds[o + ST_INBYTES]! += len;
  }

  /**
   * A lookup that missed: in a capture taken on the client side the LB's answer comes from the VIP and stands
   * for the chosen server's reply (the original entry of the reversed tuple, reply direction); the same for a
   * SNAT connection seen from the inside. The entry, or -1.
   */
  untranslatedReply(): number {
    const e = this.ct.table.reverse;
    return e >= 0 && this.svc[e >>> 1] !== 0 ? e | 1 : -1;
  }

  /** the state of connection c changed: its server's active/inactive counts, and passive health */
  private transition(c: number, old: number, dir: number): void {
    const si = this.svc[c]! - 1;
    if (si < 0) return;
    const ct = this.ct;
    if (this.onOutcome !== null) {
      const ns = ct.state[c]!;
      if (ns === ct.m.established) this.outcome(c, true);
      else if (old === ct.m.awaitServer && ns === ct.m.closed && dir === 1) this.outcome(c, false); // refused
    }
    const active = ct.isEstablished(c);
    const was = (this.lflags[c]! & L_ACTIVE) !== 0;
    if (active === was) return;
    const d = this.services.list[si]!.dests;
    const i = this.dest[c]!;
    if (active) {
      d.active[i]!++;
      d.inactive[i]!--;
      this.lflags[c]! |= L_ACTIVE;
    } else {
      d.active[i]!--;
      d.inactive[i]!++;
      this.lflags[c]! &= ~L_ACTIVE;
    }
  }

  /** connection c's timer ran out (it goes): passive health, when it was still waiting for its server, which never sent a packet */
  expired(c: number): void {
    const ct = this.ct;
    if (this.onOutcome !== null && ct.state[c] === ct.m.awaitServer && !(ct.status[c]! & S_SEEN_REPLY)) this.outcome(c, false);
  }

  /** report connection c's outcome once (load-balanced TCP connections whose replies pass the LB) */
  outcome(c: number, ok: boolean): void {
    const f = this.lflags[c]!;
    if (this.onOutcome === null || f & L_OUTCOME || this.svc[c] === 0 || this.ct.flags[c]! & F_INPUT_ONLY || this.ct.table.protoOf(c) !== IPPROTO_TCP) return;
    this.lflags[c] = f | L_OUTCOME;
    this.onOutcome(this.svc[c]! - 1, this.dest[c]!, ok);
  }

  /** conn_timeout of connection c's service as configured now (0 = none: a runtime change may have cleared it) */
  private connTimeout(c: number): number {
    const s = this.services.list[this.svc[c]! - 1];
    return s ? s.cfg.conn_timeout : 0;
  }

  /** ConnExtension: the connection goes; its server's counts, its port and its template are given back */
  destroyed(c: number): void {
    const si = this.svc[c]! - 1;
    if (si < 0) return;
    const s = this.services.list[si]!;
    const i = this.dest[c]!;
    if (this.lflags[c]! & L_ACTIVE) s.dests.active[i]!--;
    else s.dests.inactive[i]!--;
    s.checkOverload(i);
    if (this.pool[c]! >= 0) this.services.pools.give(this.pool[c]!, this.local[c]!);
    if (this.tmpl[c]! > 0) {
      this.templates!.release(this.tmpl[c]! - 1);
      this.tmpl[c] = 0;
    }
    this.svc[c] = 0;
  }

  /* ---------------- what a connection is ---------------- */

  /** service index of a load-balanced connection, or -1 */
  serviceOf(c: number): number {
    return this.svc[c]! - 1;
  }

  /** real server index */
  serverOf(c: number): number {
    return this.dest[c]!;
  }

  /** forwarding mode (FWD_*), bound when it was scheduled */
  modeOf(c: number): number {
    return this.mode[c]!;
  }

  /** FNAT: index (in the service's pool) of the local address of connection c */
  localAddrOf(c: number): number {
    return this.local[c]! >>> 16;
  }

  /** FNAT: local port of connection c */
  localPortOf(c: number): number {
    return this.local[c]! & 0xffff;
  }

  counterObject(): Record<string, number> {
    const o: Record<string, number> = {};
    LB_COUNTER_NAMES.forEach((n, i) => (o[n] = this.counters[i]!));
    return o;
  }
}
