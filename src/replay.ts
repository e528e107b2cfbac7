/**
 * Replay of one capture file in virtual time: every record is decoded in place, counted, and run through
 * connection tracking with the clock set from its timestamp. Outputs (events, per-connection records,
 * snapshot) are written only when asked for.
 */
import { readCapture, type ReadOptions } from './capture/reader.js';
import { CaptureError, formatTs, RecordHandlerError, type PacketRecord } from './capture/record.js';
import { Engine, type LbOptions, type LbSummary, type Sink } from './engine.js';
import { decode } from './packet/decode.js';
import { l4ChecksumStatus, ipv4HeaderOk } from './packet/checksum.js';
import { PacketView } from './packet/view.js';
import { DecodeStats, type DecodedCounts } from './stats/decode-stats.js';
import { connRecord, counterObject, eventJson, gauges, snapshot, writeSnapshot, type Snapshot } from './conntrack/records.js';
import { Tracker, type TrackerConfig } from './conntrack/tracker.js';
import { PcapWriter } from './capture/writer.js';

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
  /** connections open at the end, by protocol and by protocol/state */
  gauges?: { entries: number; by_proto: Record<string, number>; by_state: Record<string, number> };
  warnings: string[];
  /** set when the file could not be read to its end: the counts cover what was read before */
  error?: string;
}

export interface ReplayOptions extends ReadOptions {
  /** verify IPv4 header and L4 checksums: counted, and packets that fail are not tracked (nf_conntrack_checksum) */
  verifyChecksums?: boolean;
  onPacket?: (r: PacketRecord, v: PacketView) => void;
  /** connection tracking; omit to only decode */
  track?: TrackerConfig & {
    drain?: boolean;
    events?: LineSink;
    conns?: LineSink;
    /** receives the table at the end of the replay */
    onSnapshot?: (s: Snapshot) => void;
    /** write the table at the end of the replay to this file (streamed) */
    snapshotFile?: string;
  };
  /** load balancing (see LbOptions), and the output pcap for what the LB emits */
  lb?: LbOptions & { out?: string };
}

export async function replayFile(file: string, opts: ReplayOptions = {}): Promise<ReplaySummary> {
  const view = new PacketView();
  const stats = new DecodeStats();
  let firstSec = -1;
  let firstFrac = 0;
  let firstDigits = 6;
  let lastSec = -1;
  let lastFrac = 0;
  let lastDigits = 6;
  let firstNs = 0;
  let lastNs = 0;
  const verify = opts.verifyChecksums === true;
  let ipv4Bad = 0;
  let l4Bad = 0;
  let l4Unverified = 0;
  const onPacket = opts.onPacket;
  const tc = opts.track;
  const tracker = tc ? new Tracker(tc) : null;
  const lb = opts.lb;
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
  const engine = tracker && lb ? new Engine(tracker, lb, sink) : null;
  if (tracker && tc?.events) {
    const w = tc.events;
    tracker.onEvent = (type, c, tsUs) => w.line(eventJson(tracker, type, c, tsUs));
  }
  if (tracker && tc?.conns) {
    const w = tc.conns;
    tracker.onDestroy = (c, _tsUs, reason) => w.line(JSON.stringify(connRecord(tracker, c, reason)));
  }
  /** --verify-checksums: false (counted) when the IPv4 header or L4 checksum is bad */
  const sumsOk = (r: PacketRecord): boolean => {
    let ok = true;
    if (view.ipVersion === 4 && !ipv4HeaderOk(r.buf, view)) {
      ipv4Bad++;
      ok = false;
    }
    const c = l4ChecksumStatus(r.buf, view);
    if (c === 0) {
      l4Bad++;
      ok = false;
    } else if (c < 0 && view.hasL4) l4Unverified++;
    return ok;
  };
  const build = (res: { format: 'pcap' | 'pcapng'; linktypes: number[]; packets: number; bytes: number; warnings: string[] }, compressed: boolean): ReplaySummary => {
    const summary: ReplaySummary = {
      file,
      format: res.format,
      compressed,
      linktypes: res.linktypes,
      packets: res.packets,
      bytes: res.bytes,
      first_ts: firstSec < 0 ? null : formatTs(firstSec, firstFrac, firstDigits),
      last_ts: lastSec < 0 ? null : formatTs(lastSec, lastFrac, lastDigits),
      decoded: stats.decoded(),
      drops: stats.drops(),
      warnings: res.warnings,
    };
    if (verify) summary.checksums = { ipv4_bad: ipv4Bad, l4_bad: l4Bad, l4_unverified: l4Unverified };
    if (engine) summary.lb = engine.summary();
    if (tracker && tracker.clamped > 0) summary.warnings.push(`${tracker.clamped} packet${tracker.clamped === 1 ? '' : 's'} timed after the year 2112: the engine's clock stops there for them`);
    if (tracker) {
      summary.conns = { total: tracker.created, ...tracker.createdByProto, open_at_end: tracker.table.count };
      summary.conntrack = counterObject(tracker);
      summary.gauges = gauges(tracker);
    }
    return summary;
  };
  const finishTracking = () => {
    writer?.close();
    if (!tracker || !tc) return;
    if (tc.drain) tracker.drain();
    if (tc.conns) for (const c of tracker.handles()) tc.conns.line(JSON.stringify(connRecord(tracker, c, 'open')));
    if (tc.onSnapshot) tc.onSnapshot(snapshot(tracker, file));
    if (tc.snapshotFile) writeSnapshot(tracker, file, tc.snapshotFile, engine?.summary().services, engine?.sp?.counterObject());
  };
  // a fault injected at one record (TSVS_TEST_FAULT_RECORD=N): how the tests reach the internal-error path
  const faultAt = Number(process.env.TSVS_TEST_FAULT_RECORD ?? 0) || -1;
  let res;
  try {
    res = await readCapture(
    file,
    (r) => {
      if (r.index === faultAt) throw new Error(`injected fault (TSVS_TEST_FAULT_RECORD=${faultAt})`);
      decode(r.buf, r.off, r.caplen, r.wirelen, r.linktype, view);
      stats.add(view);
      // earliest and latest timestamps (as capinfos reports them; captures can be out of order)
      const fracNs = r.digits === 9 ? r.tsFrac : r.tsFrac * 1000;
      if (firstSec < 0 || r.tsSec < firstSec || (r.tsSec === firstSec && fracNs < firstNs)) {
        firstSec = r.tsSec;
        firstNs = fracNs;
        firstFrac = r.tsFrac;
        firstDigits = r.digits;
      }
      if (lastSec < 0 || r.tsSec > lastSec || (r.tsSec === lastSec && fracNs > lastNs)) {
        lastSec = r.tsSec;
        lastNs = fracNs;
        lastFrac = r.tsFrac;
        lastDigits = r.digits;
      }
      const badSum = verify && view.status === 0 && !sumsOk(r);
      if (tracker) {
        tracker.setTime(r.tsSec, r.tsFrac, r.digits);
        if (engine) engine.packet(r, view, badSum);
        else if (badSum) tracker.rejectChecksum();
        else tracker.track(view);
      }
      if (onPacket) onPacket(r, view);
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
