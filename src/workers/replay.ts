/**
 * Replay with several engines (`tsvs replay --workers N`: N lanes, lane.ts): this thread reads the capture
 * into shared windows, says which lane each record goes to (dispatch.ts), publishes each window and processes
 * its own lane's rows of it; the worker threads (worker.ts) process theirs meanwhile, where they lie. This
 * thread then writes the output pcap and the lines in the capture's order from the windows, their emit
 * slots and the lanes' entries, and sums the lanes' counters into one summary. Layout and protocol:
 * layout.ts.
 */
import * as fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { readCapture } from '../capture/reader.js';
import { CaptureError, PacketRecord, RecordHandlerError } from '../capture/record.js';
import { PcapWriter } from '../capture/writer.js';
import { RecordFilter, ReplayError, summaryOf, TimeRange, type ReplayOptions, type ReplaySummary } from '../replay.js';
import { LineWriter, snapshotHead } from '../report/records.js';
import { Dispatcher, type DispatchMode } from './dispatch.js';
import * as L from './layout.js';
import { Lane, RecordError, type EntryOut, type LaneInit, type LaneResult } from './lane.js';
import type { WorkerInit } from './worker.js';
import { setPortPartition } from '../xmit/pool.js';
import { sumInto } from '../report/sum.js';

export interface WorkersOptions {
  /** lanes (engines): one on this thread, the others on worker threads */
  workers: number;
  /** the share of the hash slots lane 0 (this thread, which also reads and writes) takes (default: lane0Share()) */
  share?: number;
  dispatch?: DispatchMode;
  /** --conns as Zeek conn.log lines */
  zeek?: boolean;
}

/** a window and what goes with it: its rows, each lane's list of them, their emit slots */
interface Chunk {
  id: number;
  sab: SharedArrayBuffer;
  buf: Buffer;
  metaSab: SharedArrayBuffer;
  meta: Int32Array;
  listSab: SharedArrayBuffer;
  emitSab: SharedArrayBuffer;
  emit: Int32Array;
  /** each lane's list (its rows), and how many it holds so far */
  lists: Int32Array[];
  counts: Int32Array;
  rows: number;
  firstIndex: number;
  seq: number;
  /** rows written out so far */
  walked: number;
  /** the window's classic pcap records' link type | F_NS | F_HDRLE (-1: none yet), and a view to read their headers */
  pf: number;
  dv: DataView;
}

/** what replay with workers does not do yet: said before anything is read */
export function workersRefuse(opts: ReplayOptions): string | null {
  if (opts.report) return '--report';
  if (opts.flows) return '--flows (flow accounting)';
  if (opts.track?.onSnapshot) return 'a snapshot given back in memory';
  if (opts.onEngine) return 'watching the engine';
  if (opts.lb?.services.list.some((s) => s.regions !== null)) return 'region_select services';
  if (!opts.track) return 'decoding without tracking';
  return null;
}

const KEEP = new Set(['weight', 'region', 'time']);

/**
 * The reader thread's lane's share of the packets (the thread also reads, dispatches and writes): a quarter
 * with 2 lanes, 1/(2N) with N. Measured (bench/lb-5m-v4.pcap, 2 lanes, medians of 3 alternating runs): 1/3
 * 1360 ms, 1/4 1312 ms, 0.18 1289 ms. TSVS_LANE0_SHARE (0 to 1) sets it, for measuring.
 */
export function lane0Share(lanes: number): number {
  const env = Number(process.env.TSVS_LANE0_SHARE);
  if (env > 0 && env < 1) return env;
  return lanes <= 1 ? 1 : 1 / (2 * lanes);
}

/**
 * Lane 0's entries: a buffer on this thread (appended to while it processes a window, read when the window
 * is written; grown when it must be: it never waits for itself).
 */
class LocalOut implements EntryOut {
  u8 = Buffer.alloc(1 << 20);
  i32 = new Int32Array(this.u8.buffer, this.u8.byteOffset, this.u8.length >>> 2);
  head = 0;
  tail = 0;

  reserve(bytes: number): number {
    if (this.tail + bytes > this.u8.length) {
      if (this.head > 0) {
        this.u8.copyWithin(0, this.head, this.tail);
        this.tail -= this.head;
        this.head = 0;
      }
      if (this.tail + bytes > this.u8.length) {
        const bigger = Buffer.alloc(Math.max(this.u8.length * 2, this.tail + bytes));
        this.u8.copy(bigger, 0, 0, this.tail);
        this.u8 = bigger;
        this.i32 = new Int32Array(bigger.buffer, bigger.byteOffset, bigger.length >>> 2);
      }
    }
    return this.tail;
  }

  commit(bytes: number): void {
    this.tail += bytes;
  }
}

export async function replayWorkers(file: string, opts: ReplayOptions, wo: WorkersOptions): Promise<ReplaySummary> {
  const n = wo.workers;
  const refused = workersRefuse(opts);
  if (refused) throw new ReplayError(new Error(`${refused} does not work with --workers yet (use --workers 1)`), null);
  const tc = opts.track!;
  const lb = opts.lb;
  const slots = L.slotTable(n, wo.share ?? lane0Share(n));
  const ctlSab = new SharedArrayBuffer(L.ctlBytes(n));
  const ctl = new Int32Array(ctlSab);
  const ctlFSab = new SharedArrayBuffer(L.CTL_F64_BYTES);
  const ctlF = new Float64Array(ctlFSab);
  // output rings of lanes 1.. (lane 0's entries stay on this thread)
  const rings = Array.from({ length: n }, (_, w) => (w === 0 ? null : new SharedArrayBuffer(L.RING_BYTES)));
  const local = new LocalOut();
  const ringI = rings.map((r) => (r ? new Int32Array(r) : null));
  const ringU = rings.map((r) => (r ? Buffer.from(r) : null));
  let nextId = 0;
  const makeChunk = (bytes: number): Chunk => {
    const sab = new SharedArrayBuffer(bytes);
    const maxRows = Math.floor(bytes / 16) + 1;
    const metaSab = new SharedArrayBuffer(maxRows * L.META_WORDS * 4);
    const words = L.listWords(maxRows);
    const listSab = new SharedArrayBuffer(words * 4 * n);
    const lists = Array.from({ length: n }, (_, w) => new Int32Array(listSab, w * words * 4, words));
    const emitSab = new SharedArrayBuffer(maxRows * 4);
    return { id: nextId++, sab, buf: Buffer.from(sab), metaSab, meta: new Int32Array(metaSab), listSab, emitSab, emit: new Int32Array(emitSab), lists, counts: new Int32Array(n), rows: 0, firstIndex: 0, seq: -1, walked: 0, pf: -1, dv: new DataView(sab) };
  };
  const free: Chunk[] = Array.from({ length: L.CHUNKS }, () => makeChunk(L.WINDOW));
  const services = lb?.services ?? null;
  const laneInit: LaneInit = {
    track: { profile: tc.profile, maxConns: tc.maxConns, seed: tc.seed, tcpTimeouts: tc.tcpTimeouts, udpTimeouts: tc.udpTimeouts, icmpTimeout: tc.icmpTimeout, jitter: tc.jitter, drain: tc.drain === true },
    verifyChecksums: opts.verifyChecksums === true,
    lb: lb ? { services: lb.services.list.map((s) => s.cfg), regions: lb.services.regionsCfg, decrementTtl: lb.decrementTtl === true, mtu: lb.mtu ?? 1500, synproxy: lb.synproxy!, out: lb.out !== undefined } : null,
    events: tc.events !== undefined,
    conns: tc.conns !== undefined,
    snapshot: tc.snapshotFile !== undefined,
    zeek: wo.zeek === true,
    faultAt: Number(process.env.TSVS_TEST_FAULT_RECORD ?? 0) || -1,
    exitAt: Number(process.env.TSVS_TEST_EXIT_RECORD ?? 0) || -1,
  };
  const workers: Worker[] = [];
  const results: Array<Promise<LaneResult>> = [];
  /** the first lane that failed and why (`silent`: only its thread's end was seen; its own error, when it comes, says more) */
  let failure: { worker: number; error: string; stack?: string; index: number; fileOffset: number; silent?: boolean } | null = null;
  for (let me = 1; me < n; me++) {
    const init: WorkerInit = { me, lanes: n, slots, ctl: ctlSab, ctlF: ctlFSab, ring: rings[me]!, chunks: free.map((c) => ({ id: c.id, buf: c.sab, meta: c.metaSab, lists: c.listSab, emit: c.emitSab })), lane: laneInit };
    // the kernel's id of the worker's thread, known at once (it is made in the constructor), so that a worker
    // that ends before it runs a line of its own (its file missing or broken) is seen to be gone, not awaited
    const before = threadIds();
    const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: { tsvsWorker: init } });
    const made = [...threadIds()].filter((t) => !before.has(t));
    if (made.length === 1) Atomics.store(ctl, L.wbase(me) + L.W_TID, made[0]!);
    workers.push(w);
    results.push(
      new Promise((resolve, reject) => {
        w.on('message', (m: { ok?: LaneResult; error?: string; stack?: string; index?: number; fileOffset?: number }) => {
          if (m.ok) resolve(m.ok);
          else {
            failure ??= { worker: me, error: m.error!, stack: m.stack, index: m.index ?? -1, fileOffset: m.fileOffset ?? -1 };
            reject(new Error(m.error));
          }
        });
        w.on('error', (e) => {
          if (failure === null || (failure.silent && failure.worker === me)) failure = { worker: me, error: `worker thread: ${e.message}`, stack: e.stack, index: -1, fileOffset: -1 };
          Atomics.store(ctl, L.wbase(me) + L.W_STATE, 2);
          reject(e);
        });
        w.on('exit', () => reject(new Error(`worker ${me} ended without its counters`)));
      }),
    );
  }
  for (const p of results) p.catch(() => undefined);
  // lane 0, on this thread: its share of the local ports while it is made (its pools take them then)
  setPortPartition(slots, 0);
  let lane0: Lane;
  try {
    lane0 = new Lane(0, laneInit, local, () => ctl[L.C_OUTLT]!);
  } finally {
    setPortPartition(null);
  }

  const dispatcher = new Dispatcher(slots, services, wo.dispatch ?? 'service');
  dispatcher.full = opts.onPacket !== undefined;
  const filter = opts.filter !== undefined ? new RecordFilter(opts.filter) : null;
  const range = new TimeRange();
  const onPacket = opts.onPacket;
  let writer: PcapWriter | null = null;
  const outFile = lb?.out;
  const events = tc.events;
  const conns = tc.conns;
  // --snapshot: the lanes' connections as they finish, then the summed counters (a JSON object's keys in any order)
  const snap = tc.snapshotFile !== undefined ? new LineWriter(tc.snapshotFile) : null;
  let snapFirst = true;
  snap?.line('{"conns":[');

  /* ---- the lanes' progress (lane 0's own rows are done when its window is published) ---- */
  const seqDone = new Int32Array(n);
  const posDone = new Int32Array(n);
  const past = (w: number, s: number, i: number): boolean => {
    if (seqDone[w]! > s || (seqDone[w] === s && posDone[w]! > i)) return true;
    const b = L.wbase(w);
    const ws = Atomics.load(ctl, b + L.W_SEQ);
    seqDone[w] = ws;
    posDone[w] = ws === s ? Atomics.load(ctl, b + L.W_POS) : 0;
    return ws > s || (ws === s && posDone[w]! > i);
  };
  let lookedAlive = Date.now();
  const failed = (): boolean => {
    for (let w = 1; w < n; w++) if (Atomics.load(ctl, L.wbase(w) + L.W_STATE) === 2) return true;
    // a worker thread that ended without a word (its isolate at its heap limit, or killed): its thread is
    // gone from /proc; looked for at most every 200 ms (the 'exit' event cannot reach a thread that waits)
    const now = Date.now();
    if (now - lookedAlive < 200) return false;
    lookedAlive = now;
    for (let w = 1; w < n; w++) {
      const tid = Atomics.load(ctl, L.wbase(w) + L.W_TID);
      if (tid > 0 && Atomics.load(ctl, L.wbase(w) + L.W_STATE) === 0 && !fs.existsSync(`/proc/self/task/${tid}`)) {
        failure ??= { worker: w, error: `worker ${w}'s thread ended without a word (its heap limit, or killed)`, index: -1, fileOffset: -1, silent: true };
        return true;
      }
    }
    return false;
  };
  /** wait (writing what is earlier than `tag` meanwhile) until `cond` */
  const waitFor = (cond: () => boolean, tag: number): void => {
    while (!cond()) {
      for (let w = 0; w < n; w++) consume(w, tag - 1);
      const e = Atomics.load(ctl, L.C_EPOCH);
      Atomics.add(ctl, L.C_WAITERS, 1);
      if (!cond()) Atomics.wait(ctl, L.C_EPOCH, e, 50);
      Atomics.sub(ctl, L.C_WAITERS, 1);
      if (failed()) throw new WorkerFailed();
    }
  };

  /* ---- the lanes' entries: rings of the worker threads, lane 0's local buffer ---- */
  const heads = new Int32Array(n);
  const tails = new Int32Array(n);
  const cur = new PacketRecord();
  const chunkBySeq = new Map<number, Chunk>();
  /** write one entry at byte `pos` of (i32, u8); returns its length */
  const entry = (ri: Int32Array, ru: Buffer, pos: number): number => {
    const h = pos >>> 2;
    const kind = ri[h]! & 0xff;
    const payload = ri[h]! >>> 8;
    if (kind === L.E_INPLACE) {
      const ch = chunkBySeq.get(ri[h + 1]!)!;
      cur.buf = ch.buf;
      L.readRow(ch.meta, ri[h + 2]! * L.META_WORDS, cur);
      writer ??= new PcapWriter(outFile!, cur.linktype, cur.digits === 9 ? 9 : 6);
      writer.writeRecord(cur, ch.buf, cur.off, ri[h + 3]!, ri[h + 4]!);
    } else if (kind === L.E_COPY) {
      const lt = ri[h + 7]!;
      const digits = lt & L.F_NS ? 9 : 6;
      writer ??= new PcapWriter(outFile!, lt & 0xffff, digits);
      const frac = ri[h + 6]! >>> 0;
      const f = digits === writer.digits ? frac : writer.digits === 9 ? frac * 1000 : Math.floor(frac / 1000);
      writer.write(ri[h + 5]! >>> 0, f, ru, pos + L.E_WORDS * 4, ri[h + 3]!, ri[h + 4]!);
    } else {
      const line = ru.toString('utf8', pos + L.E_WORDS * 4, pos + L.E_WORDS * 4 + payload);
      if (kind === L.E_SNAP) {
        snap!.line(snapFirst ? line : `,${line}`);
        snapFirst = false;
      } else (kind === L.E_EVENT ? events : conns)!.line(line);
    }
    return L.E_WORDS * 4 + ((payload + 3) & ~3);
  };
  /** write lane w's entries tagged up to `upto` */
  const consume = (w: number, upto: number): void => {
    if (w === 0) {
      const o = local;
      while (o.head < o.tail) {
        const h = o.head >>> 2;
        if (L.tagOf(o.i32[h + 1]!, o.i32[h + 2]!) > upto) break;
        o.head += entry(o.i32, o.u8, o.head);
      }
      if (o.head === o.tail) o.head = o.tail = 0;
      return;
    }
    const ri = ringI[w]!;
    const size = L.RING_BYTES;
    let head = heads[w]!;
    let moved = false;
    for (;;) {
      if (head === tails[w]) {
        tails[w] = Atomics.load(ctl, L.wbase(w) + L.W_TAIL);
        if (head === tails[w]) break;
      }
      const pos = head & (size - 1);
      const h = pos >>> 2;
      if ((ri[h]! & 0xff) === L.E_PAD) {
        head = (head + (size - pos)) | 0;
        moved = true;
        continue;
      }
      if (L.tagOf(ri[h + 1]!, ri[h + 2]!) > upto) break;
      head = (head + entry(ri, ringU[w]!, pos)) | 0;
      moved = true;
    }
    if (moved) {
      heads[w] = head;
      const b = L.wbase(w);
      Atomics.store(ctl, b + L.W_HEAD, head);
      if (Atomics.load(ctl, b + L.W_WAITOUT) !== 0) {
        Atomics.store(ctl, b + L.W_WAITOUT, 0);
        Atomics.notify(ctl, b + L.W_HEAD);
      }
    }
  };

  /* ---- windows ---- */
  let pubSeq = 0;
  let current: Chunk | null = null;
  const inFlight: Chunk[] = [];
  let firstRecord = true;
  /** every worker thread's lane past row i of window s (lane 0's rows are done when it is published) */
  const allPastNow = (s: number, i: number): boolean => {
    for (let w = 1; w < n; w++) if (!past(w, s, i)) return false;
    return true;
  };
  /** the same as a condition to wait for (made only when there is waiting to do) */
  const allPast = (s: number, i: number) => () => allPastNow(s, i);
  /** write what the lanes made of window `ch`'s rows up to `upto` (following them as they go) */
  const walk = (ch: Chunk, upto: number): void => {
    const s = ch.seq;
    const meta = ch.meta;
    const emit = ch.emit;
    if (ch.walked === 0 && upto === ch.rows) {
      // first wait for every lane to be done with the window, unless one needs room in its ring first (then
      // follow them row by row, writing as they go)
      for (;;) {
        if (allPastNow(s, ch.rows - 1)) break;
        let stuck = false;
        for (let w = 1; w < n; w++) if (Atomics.load(ctl, L.wbase(w) + L.W_WAITOUT) !== 0) stuck = true;
        if (stuck) break;
        const e = Atomics.load(ctl, L.C_DONE);
        if (allPastNow(s, ch.rows - 1)) break;
        Atomics.wait(ctl, L.C_DONE, e, 50);
        if (failed()) throw new WorkerFailed();
      }
    }
    for (let i = ch.walked; i < upto; i++) {
      const m = i * L.META_WORDS;
      let w = meta[m + L.M_WORKER]!;
      if (w === L.SKIP) continue;
      const tag = L.tagOf(s, i);
      if (w & L.W_NATREPLY) {
        // the hashed lane or the one that took it as its connection's owner (the others say first)
        w &= 0xff;
        if (!allPastNow(s, i)) waitFor(allPast(s, i), tag);
        const c = Atomics.load(meta, m + L.M_CLAIM);
        if (c !== 0) w = c - 1;
      } else if (w !== 0 && !past(w, s, i)) waitFor(() => past(w, s, i), tag);
      const ev = emit[i]!;
      if (ev !== 0) {
        // the record as it lies (its slot): from the window, its header as it is when this writer would write it
        const flags = meta[m + L.M_FLAGS]!;
        const digits = flags & L.F_NS ? 9 : 6;
        writer ??= new PcapWriter(outFile!, flags & 0xffff, digits);
        if (flags & L.F_HDRLE && digits === writer.digits) writer.appendInPlace(ch.buf, meta[m + L.M_HDR]!, ev - 1);
        else {
          cur.buf = ch.buf;
          L.readRow(meta, m, cur);
          writer.writeRecord(cur, ch.buf, cur.off, ev - 1, cur.wirelen);
        }
      }
      consume(w, tag);
    }
    ch.walked = Math.max(ch.walked, upto);
  };
  /** write the oldest window in flight, then let it be reused */
  const retire = (): Chunk => {
    const ch = inFlight[0]!;
    walk(ch, ch.rows);
    // every lane past the window (they read its rows) before it is written over
    const s = ch.seq;
    if (!allPastNow(s, ch.rows)) waitFor(allPast(s, ch.rows), L.tagOf(s, ch.rows));
    writer?.flush();
    chunkBySeq.delete(s);
    inFlight.shift();
    return ch;
  };
  /** lane 0's hooks: its progress for the others; a redirect's wait, writing what is before it meanwhile */
  const wb0 = L.wbase(0);
  const hooks0 = {
    progress(row: number) {
      Atomics.store(ctl, wb0 + L.W_POS, row);
      if (Atomics.load(ctl, L.C_WAITERS) > 0) {
        Atomics.add(ctl, L.C_EPOCH, 1);
        Atomics.notify(ctl, L.C_EPOCH);
      }
    },
    waitOthers(s: number, i: number) {
      hooks0.progress(i);
      while (inFlight.length > 0 && inFlight[0]!.seq < s) free.push(retire());
      const ch = chunkBySeq.get(s)!;
      walk(ch, i); // (lane 0's rows before i are done: it is at row i)
      if (!allPastNow(s, i)) waitFor(allPast(s, i), L.tagOf(s, i));
    },
  };
  const publish = (ch: Chunk): void => {
    ch.seq = pubSeq;
    ch.walked = 0;
    chunkBySeq.set(pubSeq, ch);
    const slot = pubSeq % L.Q_SLOTS;
    ctl[L.Q_BASE + 2 * slot] = ch.id;
    ctl[L.Q_BASE + 2 * slot + 1] = ch.rows;
    ctlF[L.FQ_BASE + slot] = ch.firstIndex;
    for (let w = 0; w < n; w++) {
      ch.lists[w]![0] = ch.counts[w]!;
      ch.lists[w]![1] = ch.pf;
    }
    inFlight.push(ch);
    pubSeq++;
    Atomics.store(ctl, L.C_PUB, pubSeq);
    Atomics.notify(ctl, L.C_PUB);
    // lane 0's rows of it, here and now (the workers take theirs meanwhile)
    Atomics.store(ctl, wb0 + L.W_POS, 0);
    lane0.process({ buf: ch.buf, meta: ch.meta, emit: ch.emit, list: ch.lists[0]! }, ch.seq, ch.firstIndex, hooks0);
    Atomics.store(ctl, wb0 + L.W_POS, 0);
    Atomics.store(ctl, wb0 + L.W_SEQ, ch.seq + 1);
    hooks0.progress(0);
  };
  const windows = {
    take(min: number): Buffer {
      let ch = free.pop() ?? null;
      if (ch === null) ch = retire();
      if (ch.buf.length < min) {
        // a unit bigger than a window: a bigger one, sent to the workers before it is published
        ch = makeChunk(min);
        for (const w of workers) w.postMessage({ id: ch.id, buf: ch.sab, meta: ch.metaSab, lists: ch.listSab, emit: ch.emitSab });
      }
      ch.emit.fill(0, 0, ch.rows);
      ch.rows = 0;
      ch.pf = -1;
      ch.counts.fill(0);
      current = ch;
      return ch.buf;
    },
  };
  const beforeReuse = (): void => {
    const ch = current;
    if (ch === null) return;
    current = null;
    if (ch.rows === 0) free.push(ch);
    else publish(ch);
  };
  const onRecord = (r: PacketRecord): void => {
    const ch = current!;
    if (ch.rows === 0) ch.firstIndex = r.index;
    const m = ch.rows++ * L.META_WORDS;
    const meta = ch.meta;
    if (filter !== null && !filter.matches(r)) {
      meta[m + L.M_WORKER] = L.SKIP;
      meta[m + L.M_FLAGS] = 0;
      return;
    }
    range.add(r);
    if (firstRecord) {
      firstRecord = false;
      ctl[L.C_OUTLT] = r.linktype;
    }
    meta[m + L.M_OFF] = r.off;
    meta[m + L.M_CAPLEN] = r.caplen;
    meta[m + L.M_WIRELEN] = r.wirelen;
    meta[m + L.M_SEC] = r.tsSec;
    meta[m + L.M_FRAC] = r.tsFrac;
    meta[m + L.M_HDR] = r.hdr;
    meta[m + L.M_FILEOFF_LO] = r.fileOffset % 4294967296;
    meta[m + L.M_FILEOFF_HI] = Math.floor(r.fileOffset / 4294967296);
    meta[m + L.M_IFINDEX] = r.ifIndex;
    meta[m + L.M_CLAIM] = 0;
    const w = dispatcher.workerOf(r.buf, r.off, r.caplen, r.wirelen, r.linktype);
    const row = ch.rows - 1;
    let flags = r.linktype | (r.digits === 9 ? L.F_NS : 0) | (r.hdrLe ? L.F_HDRLE : 0);
    let bits = 0;
    if (range.lastSec !== r.tsSec || range.lastFrac !== r.tsFrac) {
      // earlier than a record before: the clock stays at the latest time (in this record's precision)
      flags |= L.F_BEHIND;
      bits = L.L_BEHIND;
      meta[m + L.M_MAXSEC] = range.lastSec;
      meta[m + L.M_MAXFRAC] = range.lastDigits === r.digits ? range.lastFrac : r.digits === 9 ? range.lastFrac * 1000 : Math.floor(range.lastFrac / 1000);
    }
    meta[m + L.M_FLAGS] = flags;
    // a lane reads a classic pcap record's times and lengths from its header when they are what the parser
    // made of them (and the window's records share link type, precision and byte order); else from the row
    let hdr = -1;
    if (r.hdr >= 0 && r.buf === ch.buf) {
      const pf = flags & (0xffff | L.F_NS | L.F_HDRLE);
      if (ch.pf === -1) ch.pf = pf;
      const dv = ch.dv;
      const le = r.hdrLe;
      const h = r.hdr;
      if (pf === ch.pf && dv.getUint32(h, le) === r.tsSec && dv.getUint32(h + 4, le) === r.tsFrac && dv.getUint32(h + 8, le) === r.caplen && dv.getUint32(h + 12, le) === r.wirelen && h + 16 === r.off) hdr = h;
    }
    if (dispatcher.natReply) {
      meta[m + L.M_WORKER] = w | L.W_NATREPLY;
      for (let x = 0; x < n; x++) {
        const list = ch.lists[x]!;
        const k = L.L_HEAD + 2 * ch.counts[x]!++;
        list[k] = row | bits | (x === w ? L.L_OWNNAT : L.L_FOREIGN);
        list[k + 1] = hdr;
      }
    } else {
      meta[m + L.M_WORKER] = w;
      const list = ch.lists[w]!;
      const k = L.L_HEAD + 2 * ch.counts[w]!++;
      list[k] = row | bits;
      list[k + 1] = hdr;
    }
    if (onPacket) onPacket(r, dispatcher.view);
    // a worker that failed stops the reading (checked once a window's worth of rows)
    if ((ch.rows & 4095) === 0 && failed()) throw new WorkerFailed();
  };

  let res: Awaited<ReturnType<typeof readCapture>> | null = null;
  let readError: Error | null = null;
  try {
    res = await readCapture(file, onRecord, { ...opts, windows, beforeReuse });
  } catch (e) {
    readError = e as Error;
    beforeReuse(); // what was read before the error is still processed
  }
  // the end: every chunk written, then what the workers finish with (at the capture's latest time)
  if (range.lastSec >= 0) {
    ctlF[L.F_ENDSEC] = range.lastSec;
    ctlF[L.F_ENDFRAC] = range.lastFrac;
    ctlF[L.F_ENDDIGITS] = range.lastDigits;
  }
  Atomics.store(ctl, L.C_END, 1);
  Atomics.notify(ctl, L.C_PUB);
  let finished: LaneResult[] | null = null;
  if (readError instanceof RecordError) failure ??= { worker: 0, error: readError.message, stack: readError.inner.stack, index: readError.index, fileOffset: readError.fileOffset };
  try {
    if (failure !== null || failed() || (readError instanceof RecordHandlerError && readError.cause instanceof WorkerFailed)) throw new WorkerFailed();
    while (inFlight.length > 0) free.push(retire());
    const lane0Result = lane0.finish(range.lastSec >= 0 ? { sec: range.lastSec, frac: range.lastFrac, digits: range.lastDigits } : null);
    consume(0, Infinity);
    for (let w = 1; w < n; w++) {
      const done = () => Atomics.load(ctl, L.wbase(w) + L.W_STATE) !== 0;
      for (;;) {
        consume(w, Infinity);
        if (done()) {
          consume(w, Infinity);
          break;
        }
        waitFor(() => done() || Atomics.load(ctl, L.wbase(w) + L.W_TAIL) !== heads[w], Infinity);
      }
    }
    finished = [lane0Result, ...(await Promise.all(results))];
  } catch (e) {
    if (!(e instanceof WorkerFailed) && failure === null) throw e;
    // a worker failed (a bug): the others stop; what was written stays
    Atomics.store(ctl, L.C_ABORT, 1);
    Atomics.notify(ctl, L.C_PUB);
    Atomics.notify(ctl, L.C_EPOCH);
    for (let w = 0; w < n; w++) Atomics.notify(ctl, L.wbase(w) + L.W_HEAD);
  } finally {
    (writer as PcapWriter | null)?.close();
    if (finished === null) snap?.close(); // (a lane failed: what was written stays)
    await Promise.all(workers.map((w) => w.terminate()));
  }
  const f = failure as { worker: number; error: string; stack?: string; index: number; fileOffset: number } | null;
  if (f !== null || finished === null) {
    const what = `${f?.error ?? 'a lane failed'} (lane ${f?.worker ?? '?'} of ${n}; the counts of the lanes are lost)`;
    const cause = f && f.index > 0 ? new RecordHandlerError(file, f.index, f.fileOffset, Object.assign(new Error(what), { stack: f.stack })) : new Error(`${file}: ${what}`);
    throw new ReplayError(cause, null, true);
  }

  /* ---- one summary ---- */
  const sum = finished.reduce((a, b) => sumInto(a, b, KEEP) as LaneResult);
  const partial = readError instanceof CaptureError || readError instanceof RecordHandlerError ? readError.partial : undefined;
  if (readError && !partial) throw new ReplayError(readError, null, readError instanceof RecordHandlerError);
  const summary = summaryOf(file, res ?? partial!, res?.compressed ?? false, filter, range, sum.decoded as unknown as ReplaySummary['decoded'], sum.drops);
  if (snap) {
    const head = snapshotHead(file, tc.profile, finished[0]!.time, sum.conntrack, sum.gauges, sum.lb?.services, sum.synproxy);
    snap.line(`],${JSON.stringify(head).slice(1)}`);
    snap.close();
  }
  if (opts.verifyChecksums) summary.checksums = sum.checksums;
  if (sum.lb) summary.lb = sum.lb;
  if (sum.clamped > 0) summary.warnings.push(`${sum.clamped} packet${sum.clamped === 1 ? '' : 's'} timed after the year 2112: the engine's clock stops there for them`);
  summary.conns = sum.conns;
  summary.conntrack = sum.conntrack;
  summary.gauges = sum.gauges;
  summary.workers = { n, dispatch: dispatcher.mode, packets: finished.map((x) => x.packets), redirected: sum.redirects.taken };
  if (readError) {
    summary.error = readError instanceof RecordHandlerError ? `internal error: ${readError.message}` : readError.message;
    throw new ReplayError(readError, summary, readError instanceof RecordHandlerError);
  }
  return summary;
}

class WorkerFailed extends Error {}

/** this process's threads (their kernel ids; empty where there is no /proc) */
function threadIds(): Set<number> {
  try {
    return new Set(fs.readdirSync('/proc/self/task').map(Number));
  } catch {
    return new Set();
  }
}
