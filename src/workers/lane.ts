/**
 * One engine of a replay with workers (a "lane"): its own connection table, timer wheel, counters,
 * schedulers and share of the local ports. It processes the rows of a published window that are its own
 * (the window's list for it), in place, and writes what the engine emits and the lines it makes as entries
 * (layout.ts) to an EntryOut: the shared output ring of a worker thread, or the reader thread's own buffer for
 * the lane that runs there. Both run this same code.
 */
import { isMainThread } from 'node:worker_threads';
import { PacketRecord } from '../capture/record.js';
import type { ConntrackConfig } from '../conntrack/conntrack.js';
import { Engine, type Sink } from '../engine.js';
import { connRecord, counterObject, eventJson, gauges, snapshotConn, type ConnRecord } from '../report/records.js';
import { lbSummaryOf, type LbSummary } from '../report/summary.js';
import { zeekLine } from '../report/zeek.js';
import { Services } from '../service/services.js';
import type { ServiceConfig, SynproxyConfig } from '../config.js';
import type { RegionsConfig } from '../lb/regions.js';
import * as L from './layout.js';

/** what every lane is made from (structured-cloneable: sent to the worker threads) */
export interface LaneInit {
  track: ConntrackConfig & { drain: boolean };
  verifyChecksums: boolean;
  lb: null | { services: ServiceConfig[]; regions: RegionsConfig; decrementTtl: boolean; mtu: number; synproxy: { cfg: SynproxyConfig; secret: Uint8Array }; out: boolean };
  events: boolean;
  conns: boolean;
  /** --snapshot: each open connection at the end */
  snapshot: boolean;
  zeek: boolean;
  /** TSVS_TEST_FAULT_RECORD: fail at this record (the internal-error path) */
  faultAt: number;
  /** TSVS_TEST_EXIT_RECORD: a worker thread ends at once at its first record from this one on (test) */
  exitAt: number;
}

export interface LaneResult {
  decoded: Record<string, number>;
  drops: Record<string, number>;
  checksums: { ipv4_bad: number; l4_bad: number; l4_unverified: number };
  lb?: LbSummary;
  clamped: number;
  conns: { total: number; tcp: number; udp: number; icmp: number; open_at_end: number };
  conntrack: Record<string, number>;
  gauges: { entries: number; by_proto: Record<string, number>; by_state: Record<string, number> };
  packets: number;
  redirects: { taken: number; given: number };
  /** the clock at the end, as a snapshot gives it */
  time: string;
  synproxy?: Record<string, number>;
}

/** where a lane's entries go */
export interface EntryOut {
  i32: Int32Array;
  u8: Buffer;
  /** room for an entry of `bytes` (a multiple of 4); returns its byte offset in i32/u8 */
  reserve(bytes: number): number;
  commit(bytes: number): void;
}

/** what a lane asks of the thread it runs on while it walks a window */
export interface LaneHooks {
  /** every few hundred rows: `row` is the row being processed (every row before it is done) */
  progress(row: number): void;
  /** block until every other lane is past row `row` of window `seq` (a redirect's answer is known then) */
  waitOthers(seq: number, row: number): void;
}

/** a window as a lane sees it */
export interface LaneWindow {
  buf: Buffer;
  meta: Int32Array;
  /** emit slots (layout.ts) */
  emit: Int32Array;
  /** this lane's list: [count, row | L_* bits ...] */
  list: Int32Array;
}

/** a record the engine failed on (a bug): which one, where */
export class RecordError extends Error {
  readonly index: number;
  readonly fileOffset: number;
  constructor(
    r: PacketRecord,
    readonly inner: Error,
  ) {
    super(inner.message);
    this.index = r.index;
    this.fileOffset = r.fileOffset;
  }
}

const COPY = Buffer.prototype.copy;

export class Lane {
  readonly engine: Engine;
  readonly r = new PacketRecord();
  private outSeq = 0;
  private outRow = 0;
  private packets = 0;
  private taken = 0;
  private given = 0;
  private sincePublish = 0;
  /** the window's emit slots; the row whose slot this lane set last; the row it last wrote an entry for */
  private emit: Int32Array = new Int32Array(0);
  /** a DataView of the window being processed (made once per window buffer) */
  private dv: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
  private dvBuf: Buffer | null = null;
  private slotRow = -1;
  private entryRow = -1;
  private readonly connLine: (x: ConnRecord) => string;

  constructor(
    readonly me: number,
    private readonly init: LaneInit,
    private readonly out: EntryOut,
    /** the output pcap's link type (the first record's) */
    private readonly outLinktype: () => number,
  ) {
    const r = this.r;
    let lt = -1;
    const writes = init.lb?.out === true;
    const sink: Sink = {
      send: (rec, buf, off, len, wirelen) => {
        if (!writes) return null; // (no output pcap: emitted, written nowhere)
        if (lt < 0) lt = this.outLinktype();
        if (rec.linktype !== lt) return 'other_linktype';
        const o = this.out;
        const row = this.outRow;
        if (buf === r.buf && rec === r && off === r.off && len <= r.caplen) {
          if (len === r.caplen && wirelen === r.wirelen && r.hdr >= 0 && this.entryRow !== row) {
            // the common case: the record as it lies, its pcap header still right: a slot, no entry
            this.emit[row] = len + 1;
            this.slotRow = row;
            return null;
          }
          this.noteEntry();
          this.inPlace(len, wirelen);
          return null;
        }
        this.noteEntry();
        const bytes = L.E_WORDS * 4 + ((len + 3) & ~3);
        const p = o.reserve(bytes);
        this.header(p, L.E_COPY, len);
        const w = p >>> 2;
        const ri = o.i32;
        ri[w + 3] = len;
        ri[w + 4] = wirelen;
        ri[w + 5] = rec.tsSec;
        ri[w + 6] = rec.tsFrac;
        ri[w + 7] = rec.linktype | (rec.digits === 9 ? L.F_NS : 0);
        // (Buffer's copy takes any Uint8Array as its source: no view object per packet, as subarray() would make)
        COPY.call(buf, o.u8, p + L.E_WORDS * 4, off, off + len);
        o.commit(bytes);
        return null;
      },
    };
    const lbo = init.lb;
    this.engine = new Engine({
      conntrack: init.track,
      lb: lbo ? { services: new Services(lbo.services, lbo.regions), decrementTtl: lbo.decrementTtl, mtu: lbo.mtu, synproxy: lbo.synproxy } : undefined,
      sink: lbo ? sink : undefined,
      verifyChecksums: init.verifyChecksums,
    });
    const ct = this.engine.ct;
    if (init.events) ct.onEvent = (type, c, tsUs) => this.line(L.E_EVENT, eventJson(ct, type, c, tsUs));
    this.connLine = init.zeek ? (x: ConnRecord) => zeekLine(x, init.track.seed) : (x: ConnRecord) => JSON.stringify(x);
    if (init.conns) ct.extend({ destroyed: (c, _tsUs, reason) => this.line(L.E_CONN, this.connLine(connRecord(ct, c, reason))) });
  }

  /**
   * A packet entry for the current row follows: a slot this row already has must come before it, so it
   * becomes an entry too (the reader writes a row's slot before its entries)
   */
  private noteEntry(): void {
    const row = this.outRow;
    if (this.slotRow === row && this.outSeq !== L.END_SEQ) {
      const len = this.emit[row]! - 1;
      this.emit[row] = 0;
      this.slotRow = -1;
      this.inPlace(len, this.r.wirelen);
    }
    this.entryRow = row;
  }

  /** an entry for the record itself, `len` bytes of it where it lies (the reader rewrites its pcap header) */
  private inPlace(len: number, wirelen: number): void {
    const o = this.out;
    const p = o.reserve(L.E_WORDS * 4);
    this.header(p, L.E_INPLACE, 0);
    o.i32[(p >>> 2) + 3] = len;
    o.i32[(p >>> 2) + 4] = wirelen;
    o.commit(L.E_WORDS * 4);
  }

  private header(p: number, kind: number, payload: number): void {
    const ri = this.out.i32;
    const w = p >>> 2;
    ri[w] = kind | (payload << 8);
    ri[w + 1] = this.outSeq;
    ri[w + 2] = this.outRow;
  }

  private line(kind: number, s: string): void {
    const o = this.out;
    const len = Buffer.byteLength(s);
    const bytes = L.E_WORDS * 4 + ((len + 3) & ~3);
    const p = o.reserve(bytes);
    this.header(p, kind, len);
    o.i32[(p >>> 2) + 3] = len;
    o.u8.write(s, p + L.E_WORDS * 4, len, 'utf8');
    o.commit(bytes);
  }

  /** r: row m, with the engine's clock at the latest time so far (the capture may be out of order) */
  private fill(meta: Int32Array, m: number, index: number): void {
    const r = this.r;
    const flags = L.readRow(meta, m, r);
    r.ifIndex = meta[m + L.M_IFINDEX]!;
    r.index = index;
    // (frame() sets the clock to the record's time; one behind the latest keeps the latest, as one engine would)
    if (flags & L.F_BEHIND) this.engine.time.set(meta[m + L.M_MAXSEC]! >>> 0, meta[m + L.M_MAXFRAC]! >>> 0, r.digits);
  }

  /** r: the classic pcap record whose header is at `hdr` (times and lengths from there), `pf` the window's pcap flags */
  private fillPcap(dv: DataView<ArrayBufferLike>, hdr: number, pf: number, index: number): void {
    const r = this.r;
    const le = (pf & L.F_HDRLE) !== 0;
    r.tsSec = dv.getUint32(hdr, le);
    r.tsFrac = dv.getUint32(hdr + 4, le);
    r.caplen = dv.getUint32(hdr + 8, le);
    r.wirelen = dv.getUint32(hdr + 12, le);
    r.off = hdr + 16;
    r.hdr = hdr;
    r.hdrLe = le;
    r.linktype = pf & 0xffff;
    r.digits = pf & L.F_NS ? 9 : 6;
    r.ifIndex = 0;
    r.index = index;
  }

  /** this lane's rows of window `seq` */
  process(win: LaneWindow, seq: number, firstIndex: number, hooks: LaneHooks): void {
    const { meta, list } = win;
    const engine = this.engine;
    const r = this.r;
    const me = this.me;
    const count = list[0]!;
    const pf = list[1]!;
    r.buf = win.buf;
    if (this.dvBuf !== win.buf) {
      this.dvBuf = win.buf;
      this.dv = new DataView(win.buf.buffer, win.buf.byteOffset, win.buf.byteLength);
    }
    const dv = this.dv;
    this.emit = win.emit;
    this.slotRow = this.entryRow = -1;
    this.outSeq = seq;
    const faultAt = this.init.faultAt;
    // (TSVS_TEST_EXIT_RECORD, on a worker thread only; -1 otherwise: one compare per record)
    const exitAt = this.init.exitAt > 0 && !isMainThread ? this.init.exitAt : Infinity;
    const end = L.L_HEAD + 2 * count;
    for (let k = L.L_HEAD; k < end; k += 2) {
      const e = list[k]!;
      const hdr = list[k + 1]!;
      const row = e & L.L_ROW;
      const m = row * L.META_WORDS;
      if (hdr >= 0) {
        this.fillPcap(dv, hdr, pf, firstIndex + row);
        if (e & L.L_BEHIND) engine.time.set(meta[m + L.M_MAXSEC]! >>> 0, meta[m + L.M_MAXFRAC]! >>> 0, r.digits);
      } else this.fill(meta, m, firstIndex + row);
      this.outRow = row;
      if (e & (L.L_FOREIGN | L.L_OWNNAT)) {
        // a NAT server's packet: whoever holds its connection takes it (a redirect when that is not the
        // lane its tuple hashed to); the hashed lane waits to hear from the others before it takes it as new
        engine.time.set(r.tsSec, r.tsFrac, r.digits);
        const held = engine.holds(r);
        if (e & L.L_FOREIGN) {
          if (!held) continue;
          Atomics.store(meta, m + L.M_CLAIM, me + 1);
          this.taken++;
        } else if (!held) {
          hooks.waitOthers(seq, row);
          if (Atomics.load(meta, m + L.M_CLAIM) !== 0) {
            this.given++;
            continue;
          }
        }
      }
      try {
        if (r.index === faultAt) throw new Error(`injected fault (TSVS_TEST_FAULT_RECORD=${faultAt})`);
        // (a worker thread that ends at once, as one whose isolate hits its heap limit: no word to the reader)
        if (r.index >= exitAt) process.exit(3);
        engine.frame(r);
      } catch (err) {
        r.fileOffset = (meta[m + L.M_FILEOFF_HI]! >>> 0) * 4294967296 + (meta[m + L.M_FILEOFF_LO]! >>> 0);
        throw new RecordError(r, err as Error);
      }
      this.packets++;
      if ((++this.sincePublish & 255) === 0) hooks.progress(row);
    }
  }

  /** the end: the clock at the capture's latest time (as one engine's), what finishes, the counters */
  finish(end: { sec: number; frac: number; digits: number } | null): LaneResult {
    const engine = this.engine;
    const ct = engine.ct;
    this.outSeq = L.END_SEQ;
    this.outRow = 0;
    this.slotRow = this.entryRow = -1;
    if (end) engine.time.set(end.sec, end.frac, end.digits);
    if (this.init.track.drain) engine.drain();
    if (this.init.conns) for (const c of ct.handles()) this.line(L.E_CONN, this.connLine(connRecord(ct, c, 'open')));
    if (this.init.snapshot) for (const c of ct.handles()) this.line(L.E_SNAP, JSON.stringify(snapshotConn(ct, engine.lb, c)));
    return {
      decoded: engine.stats.decoded() as unknown as Record<string, number>,
      drops: engine.stats.drops(),
      checksums: engine.checksums,
      lb: engine.x ? lbSummaryOf(engine) : undefined,
      clamped: engine.time.clamped,
      conns: { total: ct.created, ...ct.createdByProto, open_at_end: ct.table.count },
      conntrack: counterObject(ct, engine.lb),
      gauges: gauges(ct),
      packets: this.packets,
      redirects: { taken: this.taken, given: this.given },
      time: engine.time.nowString(),
      ...(engine.sp ? { synproxy: engine.sp.counterObject() } : {}),
    };
  }
}
