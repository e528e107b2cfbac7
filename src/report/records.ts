/**
 * Records of the tracker for people and tools: events and per-connection lines (JSON lines), and the
 * snapshot of the table that `ctstat` reads. Formatting happens only when an output is asked for.
 */
import { writeAll } from '../capture/writer.js';
import type { FlowRecord } from './flows.js';
import * as fs from 'node:fs';
import { formatAddr } from '../packet/bytes.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP } from '../packet/view.js';
import { F_NAT, icmpReplyKey } from '../conntrack/table.js';
import { COUNTER_NAMES, S_ASSURED, S_SEEN_REPLY, type Conntrack, type EventType } from '../conntrack/conntrack.js';
import { C_KILLED } from '../conntrack/bits.js';
import { LB_COUNTER_NAMES, type Balancer } from '../lb/balancer.js';
import { stateNames as profileStates } from '../proto/index.js';
import { serverLabel } from '../service/services.js';
import { addrToWords, inPrefix, userPrefix, type Prefix } from '../packet/addr.js';
import type { Rates } from '../stats/estimator.js';

export function protoName(p: number): string {
  switch (p) {
    case IPPROTO_TCP:
      return 'tcp';
    case IPPROTO_UDP:
      return 'udp';
    case IPPROTO_ICMP:
      return 'icmp';
    case IPPROTO_ICMPV6:
      return 'icmpv6';
    default:
      return String(p);
  }
}

export interface TupleJson {
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  type?: number;
  code?: number;
  id?: number;
}

const w4 = new Uint32Array(4);

function addr(t: Conntrack, c: number, which: 'src' | 'dst', v6: boolean): string {
  t.table.addrWords(c, which, w4);
  return formatAddr(w4, v6 ? 6 : 4);
}

/** The original (dir 0) or reply (dir 1) tuple of connection c. */
export function tupleJson(t: Conntrack, c: number, dir: number): TupleJson {
  const tb = t.table;
  const v6 = t.isV6(c);
  const p = tb.protoOf(c);
  const a = addr(t, c, 'src', v6);
  const b = addr(t, c, 'dst', v6);
  if (dir === 1 && tb.flagsOf(c) & F_NAT) {
    // load balanced: the reply comes from the real server
    tb.replyAddrWords(c, 'src', w4);
    const rs = formatAddr(w4, v6 ? 6 : 4);
    tb.replyAddrWords(c, 'dst', w4);
    return { src: rs, dst: formatAddr(w4, v6 ? 6 : 4), sport: tb.rsportOf(c), dport: tb.rdportOf(c) };
  }
  const src = dir === 0 ? a : b;
  const dst = dir === 0 ? b : a;
  if (p === IPPROTO_ICMP || p === IPPROTO_ICMPV6) {
    const tc = dir === 0 ? tb.dportOf(c) : icmpReplyKey(p === IPPROTO_ICMPV6, tb.dportOf(c));
    return { src, dst, type: tc >>> 8, code: tc & 0xff, id: tb.sportOf(c) };
  }
  return dir === 0 ? { src, dst, sport: tb.sportOf(c), dport: tb.dportOf(c) } : { src, dst, sport: tb.dportOf(c), dport: tb.sportOf(c) };
}

/** an event as one JSON object's text; `ts`: how its time is written (default: the capture's time) */
export function eventJson(t: Conntrack, type: EventType, c: number, tsUs: number, ts?: (us: number) => string): string {
  return JSON.stringify({
    ts: ts ? ts(tsUs) : tsUs === t.time.nowUs && type !== 'destroy' ? t.time.nowString() : t.time.formatUs(tsUs),
    type,
    proto: protoName(t.table.protoOf(c)),
    state: t.stateName(c),
    orig: tupleJson(t, c, 0),
    reply: tupleJson(t, c, 1),
    timeout: type === 'destroy' ? 0 : Math.round(t.timeoutOf(c)),
    assured: (t.statusOf(c) & S_ASSURED) !== 0,
    replied: (t.statusOf(c) & S_SEEN_REPLY) !== 0,
  });
}

export interface ConnRecord {
  proto: string;
  orig: TupleJson;
  reply: TupleJson;
  first_ts: string;
  last_ts: string;
  orig_pkts: number;
  orig_bytes: number;
  reply_pkts: number;
  reply_bytes: number;
  related: number;
  state: string;
  assured: boolean;
  replied: boolean;
  history: string;
  end: string;
}

function ts(t: Conntrack, sec: number, frac: number): string {
  return `${sec}.${String(frac).padStart(t.time.digits, '0')}`;
}

export function connRecord(t: Conntrack, c: number, end: string): ConnRecord {
  const a = t.acct;
  return {
    proto: protoName(t.table.protoOf(c)),
    orig: tupleJson(t, c, 0),
    reply: tupleJson(t, c, 1),
    first_ts: ts(t, ...a.firstOf(c)),
    last_ts: ts(t, ...a.lastOf(c)),
    orig_pkts: a.packetsOf(c, 0),
    orig_bytes: a.bytesOf(c, 0),
    reply_pkts: a.packetsOf(c, 1),
    reply_bytes: a.bytesOf(c, 1),
    related: a.relatedOf(c),
    state: t.stateName(c),
    assured: (t.statusOf(c) & S_ASSURED) !== 0,
    replied: (t.statusOf(c) & S_SEEN_REPLY) !== 0,
    history: a.historyString(c),
    end,
  };
}

/** One entry of a table snapshot (what `ctstat -L` lists). */
export interface SnapshotConn {
  proto: string;
  state: string;
  /** seconds left before expiry */
  expire: number;
  timeout: number;
  assured: boolean;
  replied: boolean;
  orig: TupleJson;
  reply: TupleJson;
  orig_pkts: number;
  orig_bytes: number;
  reply_pkts: number;
  reply_bytes: number;
  /** load balancing (later issues): real server and local address */
  server?: string;
  laddr?: string;
}

export interface Snapshot {
  version: 1;
  source: string;
  profile: string;
  time: string;
  counters: Record<string, number>;
  gauges: { entries: number; by_proto: Record<string, number>; by_state: Record<string, number> };
  conns: SnapshotConn[];
  /** load balancing: services with their servers and counters (as in replay --json "lb") */
  services?: SnapshotService[];
  /** synproxy counters by DPVS name */
  synproxy?: Record<string, number>;
  /** flows per (source, destination) when flow accounting was on */
  flows?: FlowRecord[];
  /** a running daemon's packet I/O: its path and batches (issue 19) */
  io?: { path: string; rx_batches: number; rx_per_batch: number; ring_drops: number; tx_batches: number; tx_per_batch: number; tx_errors: number; tx_last_error: string };
}

/** what a connection listing can be narrowed to (ctstat -L options, the control socket's conns filter) */
export interface ConnFilter {
  proto?: string;
  state?: string;
  src?: string;
  dst?: string;
  /** source or destination port, or ICMP id */
  port?: number;
}

/** a ConnFilter checked and turned into what the table holds (no string built per connection) */
interface ConnQuery {
  proto: number;
  /** the state's name in upper case, or '' for any */
  state: string;
  src: Prefix | null;
  srcV6: boolean;
  dst: Prefix | null;
  dstV6: boolean;
  port: number;
}

const PROTO_NUMBERS: Record<string, number> = { tcp: IPPROTO_TCP, udp: IPPROTO_UDP, icmp: IPPROTO_ICMP, icmpv6: IPPROTO_ICMPV6 };

/** every state name a connection of tracker t can have */
export function stateNames(t: Conntrack): string[] {
  return profileStates(t.profile);
}


/** Check a filter (throws a one-line Error naming the bad field) and compile it for `pageConns`. */
export function compileFilter(t: Conntrack, f: ConnFilter): ConnQuery {
  return compileFor(stateNames(t), f);
}

function compileFor(states: string[], f: ConnFilter): ConnQuery {
  const q: ConnQuery = { proto: -1, state: '', src: null, srcV6: false, dst: null, dstV6: false, port: -1 };
  if (f.proto !== undefined) {
    const n = PROTO_NUMBERS[f.proto.toLowerCase()];
    if (n === undefined) throw new Error(`proto: expected tcp, udp, icmp or icmpv6, got ${JSON.stringify(f.proto)}`);
    q.proto = n;
  }
  if (f.state !== undefined) {
    q.state = f.state.toUpperCase();
    if (!states.includes(q.state)) throw new Error(`state: expected one of ${states.join(', ')}, got ${JSON.stringify(f.state)}`);
  }
  if (f.src !== undefined) ({ p: q.src, v6: q.srcV6 } = userPrefix('src', f.src));
  if (f.dst !== undefined) ({ p: q.dst, v6: q.dstV6 } = userPrefix('dst', f.dst));
  if (f.port !== undefined) {
    if (!Number.isInteger(f.port) || f.port < 0 || f.port > 65535) throw new Error(`port: expected 0-65535, got ${JSON.stringify(f.port)}`);
    q.port = f.port;
  }
  return q;
}

function queryMatches(t: Conntrack, c: number, q: ConnQuery): boolean {
  const tb = t.table;
  if (q.proto >= 0 && tb.protoOf(c) !== q.proto) return false;
  if (q.state && t.stateName(c) !== q.state) return false;
  if (q.src) {
    tb.addrWords(c, 'src', w4);
    if (tb.isV6(c) !== q.srcV6 || !inPrefix(w4, q.src, q.srcV6)) return false;
  }
  if (q.dst) {
    tb.addrWords(c, 'dst', w4);
    if (tb.isV6(c) !== q.dstV6 || !inPrefix(w4, q.dst, q.dstV6)) return false;
  }
  if (q.port >= 0) {
    const icmp = tb.protoOf(c) === IPPROTO_ICMP || tb.protoOf(c) === IPPROTO_ICMPV6;
    if (tb.sportOf(c) !== q.port && (icmp || tb.dportOf(c) !== q.port)) return false;
  }
  return true;
}

/** a checked filter as a test of a handle (throws a one-line Error naming a bad field) */
export function connMatcher(t: Conntrack, filter: ConnFilter): (c: number) => boolean {
  const q = compileFilter(t, filter);
  return (c) => queryMatches(t, c, q);
}

/** conntrack -D: destroy every connection matching `filter` (as 'killed', events and records as for any end); how many */
export function deleteConns(t: Conntrack, filter: ConnFilter): number {
  const match = connMatcher(t, filter);
  const victims: number[] = [];
  for (const c of t.handles()) if (match(c)) victims.push(c);
  for (const c of victims) t.destroy(c, t.time.nowUs, 'killed');
  t.counters[C_KILLED]! += victims.length;
  return victims.length;
}

/** conntrack -E: connection events to subscribers, each with its filter; the tracker reports events only while there is one */
export class EventFeed {
  private readonly subs = new Set<(type: EventType, c: number, tsUs: number) => void>();

  constructor(
    private readonly t: Conntrack,
    /** how event times are written (live: wall-clock, as the engine's clock is a monotonic one) */
    private readonly ts?: (us: number) => string,
  ) {}

  /** `send` gets each event's JSON text (eventJson) of the `types` asked for matching `filter` (checked: throws), until the returned function is called */
  subscribe(filter: ConnFilter, types: ReadonlySet<string>, send: (event: string) => void): () => void {
    const t = this.t;
    const match = connMatcher(t, filter);
    const fn = (type: EventType, c: number, tsUs: number) => {
      if (types.has(type) && match(c)) send(eventJson(t, type, c, tsUs, this.ts));
    };
    this.subs.add(fn);
    t.onEvent = (type, c, tsUs) => {
      for (const f of this.subs) f(type, c, tsUs);
    };
    return () => {
      this.subs.delete(fn);
      if (this.subs.size === 0) t.onEvent = null;
    };
  }
}

/**
 * Up to `limit` connections matching `filter`, from table position (handle) `from` on, looking at `budget`
 * handles at most: the page, and the position to go on from (null when the table was scanned to its end).
 * Pages are not one instant: what opens or closes between two requests may be missing or listed (as with
 * conntrack -L over netlink); nothing is copied or kept between requests.
 */
export function pageConns(t: Conntrack, lb: Balancer | null, from: number, limit: number, budget: number, filter: ConnFilter): { conns: SnapshotConn[]; next: number | null; total: number } {
  const q = compileFilter(t, filter);
  const tb = t.table;
  const end = tb.highWater;
  const conns: SnapshotConn[] = [];
  let c = Math.max(0, from);
  for (let looked = 0; c < end && conns.length < limit && looked < budget; c++, looked++) {
    if (tb.isUsed(c) && queryMatches(t, c, q)) conns.push(snapshotConn(t, lb, c));
  }
  return { conns, next: c < end ? c : null, total: tb.count };
}

/**
 * A filter over a snapshot's connections, checked as the control socket checks it (the states of the
 * snapshot's profile, addresses or CIDR prefixes; throws a one-line Error naming the field).
 */
export function snapshotMatcher(profile: string, f: ConnFilter): (c: SnapshotConn) => boolean {
  const q = compileFor(profileStates(profile === 'dpvs' ? 'dpvs' : 'netfilter'), f);
  const inside = (a: string, p: Prefix | null, v6: boolean) => {
    if (!p) return true;
    const w = addrToWords(a);
    return w.v6 === v6 && inPrefix(w.words, p, v6);
  };
  return (c) =>
    (q.proto < 0 || PROTO_NUMBERS[c.proto] === q.proto) &&
    (!q.state || c.state === q.state) &&
    inside(c.orig.src, q.src, q.srcV6) &&
    inside(c.orig.dst, q.dst, q.dstV6) &&
    (q.port < 0 || c.orig.sport === q.port || c.orig.dport === q.port || c.orig.id === q.port);
}

export interface SnapshotService {
  service: string;
  scheduler: string;
  forward?: string;
  conns: number;
  in_pkts: number;
  out_pkts: number;
  in_bytes: number;
  out_bytes: number;
  /** EWMA rates at the end (IPVS estimator) */
  rate?: Rates;
  servers: Array<{ server: string; weight: number; conns: number; in_pkts: number; out_pkts: number; in_bytes?: number; out_bytes?: number; active: number; inactive: number; rate?: Rates; health?: 'up' | 'down'; region?: string }>;
  /** region_select: the home region, each region's latency in the last report (ms, null: no answer), every change of home */
  region?: { home: string | null; rule: string; latency: Record<string, number | null>; changes: Array<{ ts: string; from: string | null; to: string; why: string }> };
}

/** the conntrack counters, and the load balancer's (unmatched, no_dest, no_lport; 0 without one) after them */
export function counterObject(t: Conntrack, lb: Balancer | null = null): Record<string, number> {
  const out: Record<string, number> = {};
  COUNTER_NAMES.forEach((n, i) => (out[n] = t.counters[i]!));
  LB_COUNTER_NAMES.forEach((n, i) => (out[n] = lb ? lb.counters[i]! : 0));
  return out;
}

export function gauges(t: Conntrack): Snapshot['gauges'] {
  const byProto: Record<string, number> = {};
  const byState: Record<string, number> = {};
  let n = 0;
  for (const c of t.handles()) {
    n++;
    const p = protoName(t.table.protoOf(c));
    byProto[p] = (byProto[p] ?? 0) + 1;
    const k = `${p}/${t.stateName(c)}`;
    byState[k] = (byState[k] ?? 0) + 1;
  }
  return { entries: n, by_proto: byProto, by_state: byState };
}

export function snapshotConn(t: Conntrack, lb: Balancer | null, c: number): SnapshotConn {
  const a = t.acct;
  return {
    proto: protoName(t.table.protoOf(c)),
    state: t.stateName(c),
    expire: Math.round(t.remaining(c)),
    timeout: Math.round(t.timeoutOf(c)),
    assured: (t.statusOf(c) & S_ASSURED) !== 0,
    replied: (t.statusOf(c) & S_SEEN_REPLY) !== 0,
    orig: tupleJson(t, c, 0),
    reply: tupleJson(t, c, 1),
    orig_pkts: a.packetsOf(c, 0),
    orig_bytes: a.bytesOf(c, 0),
    reply_pkts: a.packetsOf(c, 1),
    reply_bytes: a.bytesOf(c, 1),
    ...(lb && lb.serviceOf(c) >= 0 ? { server: lbServer(lb, c) } : {}),
  };
}

export function lbServer(lb: Balancer, c: number): string {
  const s = lb.services.list[lb.serviceOf(c)]!;
  return serverLabel(s.cfg.servers[lb.serverOf(c)]!);
}

export function snapshot(t: Conntrack, lb: Balancer | null, source: string): Snapshot {
  const conns: SnapshotConn[] = [];
  for (const c of t.handles()) conns.push(snapshotConn(t, lb, c));
  return { version: 1, source, profile: t.profile, time: t.time.nowString(), counters: counterObject(t, lb), gauges: gauges(t), conns };
}

/** a snapshot document but its connections (and flows): also what replay with workers writes after theirs */
export function snapshotHead(source: string, profile: string, time: string, counters: Record<string, number>, g: Snapshot['gauges'], services?: unknown[], synproxy?: Record<string, number>) {
  return { version: 1, source, profile, time, counters, gauges: g, services: services ?? [], ...(synproxy ? { synproxy } : {}) };
}

/** Write the snapshot JSON (same document as `snapshot()`) connection by connection, without building it. */
export function writeSnapshot(t: Conntrack, lb: Balancer | null, source: string, path: string, services?: unknown[], synproxy?: Record<string, number>, flows?: Iterable<FlowRecord>): void {
  const w = new LineWriter(path);
  const head = snapshotHead(source, t.profile, t.time.nowString(), counterObject(t, lb), gauges(t), services, synproxy);
  w.line(`${JSON.stringify(head).slice(0, -1)},"conns":[`);
  let first = true;
  for (const c of t.handles()) {
    w.line(`${first ? '' : ','}${JSON.stringify(snapshotConn(t, lb, c))}`);
    first = false;
  }
  if (flows) {
    w.line('],"flows":[');
    first = true;
    for (const f of flows) {
      w.line(`${first ? '' : ','}${JSON.stringify(f)}`);
      first = false;
    }
  }
  w.line(']}');
  w.close();
}

/** Buffered line writer (one syscall per 64 KiB). */
export class LineWriter {
  private readonly fd: number;
  private parts: string[] = [];
  private size = 0;

  /** `-`: standard output */
  constructor(readonly path: string) {
    this.fd = path === '-' ? 1 : fs.openSync(path, 'w');
  }

  line(s: string): void {
    this.parts.push(s);
    this.size += s.length + 1;
    if (this.size >= 65536) this.flush();
  }

  flush(): void {
    if (this.parts.length === 0) return;
    // (a pipe takes what it has room for; its reader gone, the process ends as SIGPIPE would: writeAll)
    const b = Buffer.from(`${this.parts.join('\n')}\n`);
    writeAll(this.fd, b, 0, b.length);
    this.parts = [];
    this.size = 0;
  }

  close(): void {
    this.flush();
    if (this.fd !== 1) fs.closeSync(this.fd);
  }
}
