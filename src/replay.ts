/**
 * Replay of one capture file in virtual time: every record goes through the engine (decoded, counted,
 * tracked, balanced when there are services) with the clock set from its timestamp. Outputs (events,
 * per-connection records, snapshot, the output pcap) are written only when asked for.
 */
import { Bpf } from './capture/bpf.js';
import { readCapture, type ReadOptions } from './capture/reader.js';
import { CaptureError, formatTs, RecordHandlerError, type PacketRecord } from './capture/record.js';
import type { ConntrackConfig } from './conntrack/conntrack.js';
import { Engine, type LbOptions, type Sink } from './engine.js';
import type { PacketView } from './packet/view.js';
import { connRecord, counterObject, eventJson, gauges, snapshot, writeSnapshot, type ConnRecord, type Snapshot } from './report/records.js';
import { lbSummaryOf, type LbSummary } from './report/summary.js';
import { flowRecord, flowsSummary, type FlowsSummary } from './report/flows.js';
import type { FlowsConfig } from './flows/flows.js';
import type { DecodedCounts } from './stats/decode-stats.js';
import { PcapWriter } from './capture/writer.js';
import { ReportCollector, type ReportData } from './report/report.js';

/** where JSON lines go (a LineWriter for files) */
export interface LineSink {
  line(s: string): void;
}

export interface ConnsSummary {
  total: number;
  tcp: number;
  udp: number;
  icmp: number;
  open_at_end: number;
}

export interface ReplaySummary {
  file: string;
  format: 'pcap' | 'pcapng';
  compressed: boolean;
  linktypes: number[];
  packets: number;
  /** with --filter: every record read (packets counts those that matched) */
  read?: number;
  bytes: number;
  first_ts: string | null;
  last_ts: string | null;
  decoded: DecodedCounts;
  drops: Record<string, number>;
  checksums?: { ipv4_bad: number; l4_bad: number; l4_unverified: number };
  conns?: ConnsSummary;
  conntrack?: Record<string, number>;
  /** load balancing: what the LB emitted, what it did not and why, per-service counters */
  lb?: LbSummary;
  /** flow accounting (with --flows): flows open at the end, evicted, drops by reason, the top 10 by bytes */
  flows?: FlowsSummary;
  /** connections open at the end, by protocol and by protocol/state */
  gauges?: { entries: number; by_proto: Record<string, number>; by_state: Record<string, number> };
  warnings: string[];
  /** replay with workers (--workers N > 1): how many, how records were dispatched, the packets each processed, NAT replies redirected */
  workers?: { n: number; dispatch: string; packets: number[]; redirected: number };
  /** set when the file could not be read to its end: the counts cover what was read before */
  error?: string;
}

export interface ReplayOptions extends ReadOptions {
  /** verify IPv4 header and L4 checksums: counted, and packets that fail are not tracked (nf_conntrack_checksum) */
  verifyChecksums?: boolean;
  /** after the engine: each record and the view it was decoded into */
  onPacket?: (r: PacketRecord, v: PacketView) => void;
  /** connection tracking; omit to only decode */
  track?: ConntrackConfig & {
    drain?: boolean;
    events?: LineSink;
    conns?: LineSink;
    /** how a connection record becomes a --conns line (default: JSON) */
    connLine?: (r: ConnRecord) => string;
    /** receives the table at the end of the replay */
    onSnapshot?: (s: Snapshot) => void;
    /** write the table at the end of the replay to this file (streamed) */
    snapshotFile?: string;
  };
  /** load balancing (see LbOptions), and the output pcap for what the LB emits */
  lb?: LbOptions & { out?: string };
  /** flow accounting per (source, destination), and where each flow goes when it is evicted or at the end */
  flows?: FlowsConfig & { out?: LineSink };
  /** a libpcap filter expression (tcpdump syntax): only matching records enter the engine */
  filter?: string;
  /** the engine, once built (before the first record): for what watches it from outside (tests) */
  onEngine?: (e: Engine) => void;
  /** collect the replay report (needs track): given its data at the end of the capture, before any draining */
  report?: { points?: number; done: (d: ReportData) => void };
}

export async function replayFile(file: string, opts: ReplayOptions = {}): Promise<ReplaySummary> {
  const range = new TimeRange();
  const onPacket = opts.onPacket;
  const tc = opts.track;
  const lb = tc ? opts.lb : undefined;
  let writer: PcapWriter | null = null;
  /** what the LB transmits: to the output pcap (same link type, timestamps at its precision) */
  const sink: Sink = {
    send(r, buf, off, len, wirelen) {
      if (!lb?.out) return null;
      if (!writer) writer = new PcapWriter(lb.out, r.linktype, r.digits === 9 ? 9 : 6);
      if (r.linktype !== writer.linktype) return 'other_linktype';
      writer.writeRecord(r, buf, off, len, wirelen);
      return null;
    },
  };
  const engine = new Engine({ conntrack: tc, lb, sink: lb ? sink : undefined, verifyChecksums: opts.verifyChecksums, flows: tc ? opts.flows : undefined });
  const ct = engine.ct;
  opts.onEngine?.(engine);
  const rep = tc && opts.report ? new ReportCollector(engine, opts.report.points) : null;
  const flows = engine.flows;
  const flowsOut = opts.flows?.out;
  if (flows && flowsOut) flows.onEvict = (f, why) => flowsOut.line(JSON.stringify(flowRecord(flows, f, engine.time, why)));
  if (tc?.events) {
    const w = tc.events;
    ct.onEvent = (type, c, tsUs) => w.line(eventJson(ct, type, c, tsUs));
  }
  const connLine = tc?.connLine ?? ((r: ConnRecord) => JSON.stringify(r));
  if (tc?.conns) {
    const w = tc.conns;
    ct.extend({ destroyed: (c, _tsUs, reason) => w.line(connLine(connRecord(ct, c, reason))) });
  }
  const build = (res: { format: 'pcap' | 'pcapng'; linktypes: number[]; packets: number; bytes: number; warnings: string[] }, compressed: boolean): ReplaySummary => {
    const summary = summaryOf(file, res, compressed, filter, range, engine.stats.decoded(), engine.stats.drops());
    if (opts.verifyChecksums) summary.checksums = engine.checksums;
    if (engine.x) summary.lb = lbSummaryOf(engine);
    if (flows) summary.flows = flowsSummary(flows, engine.time);
    if (engine.time.clamped > 0) summary.warnings.push(`${engine.time.clamped} packet${engine.time.clamped === 1 ? '' : 's'} timed after the year 2112: the engine's clock stops there for them`);
    if (tc) {
      summary.conns = { total: ct.created, ...ct.createdByProto, open_at_end: ct.table.count };
      summary.conntrack = counterObject(ct, engine.lb);
      summary.gauges = gauges(ct);
    }
    return summary;
  };
  const finishTracking = () => {
    writer?.close();
    if (!tc) return;
    if (rep) opts.report!.done(rep.finish(file, range.first(), range.last()));
    if (tc.drain) engine.drain();
    if (flows && flowsOut) for (const f of flows.handles()) flowsOut.line(JSON.stringify(flowRecord(flows, f, engine.time)));
    if (tc.conns) for (const c of ct.handles()) tc.conns.line(connLine(connRecord(ct, c, 'open')));
    if (tc.onSnapshot) tc.onSnapshot(snapshot(ct, engine.lb, file));
    if (tc.snapshotFile) {
      const fl = flows ? (function* () { for (const f of flows.handles()) yield flowRecord(flows, f, engine.time); })() : undefined;
      writeSnapshot(ct, engine.lb, file, tc.snapshotFile, engine.x ? lbSummaryOf(engine).services : undefined, engine.sp?.counterObject(), fl);
    }
  };
  // --filter: a program per link type (compiled when the type is first seen), and what it left out
  const filter = opts.filter !== undefined ? new RecordFilter(opts.filter) : null;
  // a fault injected at one record (TSVS_TEST_FAULT_RECORD=N): how the tests reach the internal-error path
  const faultAt = Number(process.env.TSVS_TEST_FAULT_RECORD ?? 0) || -1;
  let res;
  try {
    res = await readCapture(
      file,
      (r) => {
        if (r.index === faultAt) throw new Error(`injected fault (TSVS_TEST_FAULT_RECORD=${faultAt})`);
        if (filter !== null && !filter.matches(r)) return;
        range.add(r);
        engine.frame(r);
        if (rep !== null) {
          rep.packets++;
          rep.bytes += r.wirelen;
        }
        if (onPacket) onPacket(r, engine.lastView);
      },
      { ...opts, beforeReuse: () => writer?.flush() },
    );
  } catch (e) {
    if ((e instanceof CaptureError || e instanceof RecordHandlerError) && e.partial) {
      const internal = e instanceof RecordHandlerError;
      let also = '';
      try {
        finishTracking();
      } catch (e2) {
        // the state a bug left may not be writable: what was written stays, the rest is named
        also = `; the outputs could not be finished: ${(e2 as Error).message}`;
      }
      const s = build(e.partial, false);
      s.error = `${internal ? 'internal error: ' : ''}${e.message}${also}`;
      throw new ReplayError(e, s, internal);
    }
    throw new ReplayError(e as Error, null, e instanceof RecordHandlerError);
  }
  finishTracking();
  return build(res, res.compressed);
}

/**
 * A file that could not be replayed to its end; `summary` holds what was read before, when anything was.
 * `internal`: the file was fine, tsvs failed on one of its records (a bug; `cause` has the stack).
 */
export class ReplayError extends Error {
  constructor(
    override readonly cause: Error,
    readonly summary: ReplaySummary | null,
    readonly internal = false,
  ) {
    super(internal ? `internal error: ${cause.message}` : cause.message);
    this.name = 'ReplayError';
  }
}

/** what was read (packets, bytes: without what --filter left out), its times, and the decode counts and drops */
export function summaryOf(
  file: string,
  res: { format: 'pcap' | 'pcapng'; linktypes: number[]; packets: number; bytes: number; warnings: string[] },
  compressed: boolean,
  filter: RecordFilter | null,
  range: TimeRange,
  decoded: DecodedCounts,
  drops: Record<string, number>,
): ReplaySummary {
  return {
    file,
    format: res.format,
    compressed,
    linktypes: res.linktypes,
    packets: res.packets - (filter?.out ?? 0),
    bytes: res.bytes - (filter?.outBytes ?? 0),
    ...(filter !== null ? { read: res.packets } : {}),
    first_ts: range.first(),
    last_ts: range.last(),
    decoded,
    drops,
    warnings: [...res.warnings, ...(filter?.warnings ?? [])],
  };
}

/** --filter: a program per link type (compiled when the type is first seen), and what it left out */
export class RecordFilter {
  private readonly progs = new Map<number, Bpf>();
  out = 0;
  outBytes = 0;
  readonly warnings: string[] = [];
  constructor(readonly expr: string) {}

  matches(r: PacketRecord): boolean {
    let bpf = this.progs.get(r.linktype);
    if (bpf === undefined) {
      try {
        bpf = Bpf.compile(this.expr, r.linktype);
      } catch (e) {
        // (checked on Ethernet before the replay: an expression that means nothing on this type matches nothing)
        this.warnings.push(`${(e as Error).message} (link type ${r.linktype}): no packet of that type matches`);
        bpf = Bpf.never();
      }
      this.progs.set(r.linktype, bpf);
    }
    if (bpf.matches(r.buf, r.off, r.caplen, r.wirelen)) return true;
    this.out++;
    this.outBytes += r.caplen;
    return false;
  }
}

/** the earliest and latest timestamps (as capinfos reports them; captures can be out of order) */
export class TimeRange {
  private firstSec = -1;
  private firstFrac = 0;
  private firstDigits = 6;
  private firstNs = 0;
  lastSec = -1;
  lastFrac = 0;
  lastDigits = 6;
  private lastNs = 0;

  add(r: PacketRecord): void {
    const fracNs = r.digits === 9 ? r.tsFrac : r.tsFrac * 1000;
    if (this.firstSec < 0 || r.tsSec < this.firstSec || (r.tsSec === this.firstSec && fracNs < this.firstNs)) {
      this.firstSec = r.tsSec;
      this.firstNs = fracNs;
      this.firstFrac = r.tsFrac;
      this.firstDigits = r.digits;
    }
    if (this.lastSec < 0 || r.tsSec > this.lastSec || (r.tsSec === this.lastSec && fracNs > this.lastNs)) {
      this.lastSec = r.tsSec;
      this.lastNs = fracNs;
      this.lastFrac = r.tsFrac;
      this.lastDigits = r.digits;
    }
  }

  first(): string | null {
    return this.firstSec < 0 ? null : formatTs(this.firstSec, this.firstFrac, this.firstDigits);
  }

  last(): string | null {
    return this.lastSec < 0 ? null : formatTs(this.lastSec, this.lastFrac, this.lastDigits);
  }
}
