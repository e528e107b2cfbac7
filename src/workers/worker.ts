/**
 * A replay worker (worker_threads): its own engine (connection table, timer wheel, counters, schedulers,
 * local ports: its share), fed by the reader through shared chunks (layout.ts). It walks every row of
 * every chunk in order and processes the records dispatched to it, in place; what the engine emits and the
 * lines it writes go to its output ring, tagged with the row. At the end it moves its clock to the capture's
 * last time (as one engine would have it), finishes (drain, the open connections' records) and posts its
 * counters.
 */
import '../runtime.js';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { PacketRecord } from '../capture/record.js';
import type { ConntrackConfig } from '../conntrack/conntrack.js';
import { Engine, type Sink } from '../engine.js';
import { connRecord, counterObject, eventJson, gauges, type ConnRecord } from '../report/records.js';
import { lbSummaryOf, type LbSummary } from '../report/summary.js';
import { zeekLine } from '../report/zeek.js';
import { Services } from '../service/services.js';
import type { ServiceConfig, SynproxyConfig } from '../config.js';
import type { RegionsConfig } from '../lb/regions.js';
import { setPortPartition } from '../xmit/pool.js';
import * as L from './layout.js';

export interface WorkerInit {
  me: number;
  workers: number;
  ctl: SharedArrayBuffer;
  ctlF: SharedArrayBuffer;
  ring: SharedArrayBuffer;
  chunks: Array<{ id: number; buf: SharedArrayBuffer; meta: SharedArrayBuffer; lists: SharedArrayBuffer }>;
  track: ConntrackConfig & { drain: boolean };
  verifyChecksums: boolean;
  lb: null | { services: ServiceConfig[]; regions: RegionsConfig; decrementTtl: boolean; mtu: number; synproxy: { cfg: SynproxyConfig; secret: Uint8Array }; out: boolean };
  events: boolean;
  conns: boolean;
  zeek: boolean;
  /** TSVS_TEST_FAULT_RECORD: fail at this record (the internal-error path) */
  faultAt: number;
}

export interface WorkerResult {
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
}

/**
 * The output ring, producer side. The tail is kept here and stored for the reader only at flush() (with the
 * progress, every few hundred rows and at each chunk's end): one shared store per batch, not per packet.
 */
class RingOut {
  readonly i32: Int32Array;
  readonly u8: Buffer;
  readonly size: number;
  private tail = 0;
  /** the reader's head as last read: room is re-read only when this says there is none */
  private head = 0;
  constructor(
    sab: SharedArrayBuffer,
    private readonly ctl: Int32Array,
    private readonly base: number,
    private readonly progress: () => void,
  ) {
    this.i32 = new Int32Array(sab);
    this.u8 = Buffer.from(sab);
    this.size = sab.byteLength;
  }

  /** room for an entry of `bytes` (header included, a multiple of 4) at the tail; returns its byte offset */
  reserve(bytes: number): number {
    const size = this.size;
    let pos = this.tail & (size - 1);
    const toEnd = size - pos;
    const need = toEnd < bytes ? toEnd + bytes : bytes;
    if (size - ((this.tail - this.head) | 0) < need) this.waitRoom(need);
    if (toEnd < bytes) {
      this.i32[pos >>> 2] = L.E_PAD;
      this.tail = (this.tail + toEnd) | 0;
      pos = 0;
    }
    return pos;
  }

  private waitRoom(need: number): void {
    const ctl = this.ctl;
    for (;;) {
      this.head = Atomics.load(ctl, this.base + L.W_HEAD);
      if (this.size - ((this.tail - this.head) | 0) >= need) return;
      // full: say how far this worker got and what it wrote (the reader may be waiting for that), then wait
      this.flush();
      this.progress();
      Atomics.store(ctl, this.base + L.W_WAITOUT, 1);
      Atomics.add(ctl, L.C_DONE, 1);
      Atomics.notify(ctl, L.C_DONE);
      Atomics.wait(ctl, this.base + L.W_HEAD, this.head, 200);
      if (Atomics.load(ctl, L.C_ABORT) !== 0) throw new Aborted();
    }
  }

  commit(bytes: number): void {
    this.tail = (this.tail + bytes) | 0;
  }

  /** let the reader see what was written */
  flush(): void {
    Atomics.store(this.ctl, this.base + L.W_TAIL, this.tail);
  }
}

class Aborted extends Error {}

/** a record the engine failed on (a bug): which one, where */
class RecordError extends Error {
  readonly index: number;
  readonly fileOffset: number;
  constructor(r: PacketRecord, readonly inner: Error) {
    super(inner.message);
    this.index = r.index;
    this.fileOffset = r.fileOffset;
  }
}

function run(init: WorkerInit): WorkerResult {
  const me = init.me;
  const n = init.workers;
  const ctl = new Int32Array(init.ctl);
  const ctlF = new Float64Array(init.ctlF);
  const wb = L.wbase(me);
  setPortPartition(n, me);
  const chunks = new Map<number, { buf: Buffer; meta: Int32Array; list: Int32Array }>();
  const addChunk = (c: { id: number; buf: SharedArrayBuffer; meta: SharedArrayBuffer; lists: SharedArrayBuffer }) => {
    const words = c.lists.byteLength / 4 / n;
    chunks.set(c.id, { buf: Buffer.from(c.buf), meta: new Int32Array(c.meta), list: new Int32Array(c.lists, me * words * 4, words) });
  };
  for (const c of init.chunks) addChunk(c);

  let seq = 0; // the chunk being walked
  let row = 0; // its row
  const publish = () => {
    out.flush();
    Atomics.store(ctl, wb + L.W_POS, row);
    if (Atomics.load(ctl, L.C_WAITERS) > 0) {
      Atomics.add(ctl, L.C_EPOCH, 1);
      Atomics.notify(ctl, L.C_EPOCH);
    }
  };
  const out = new RingOut(init.ring, ctl, wb, publish);
  const ri = out.i32;
  const header = (p: number, kind: number, payload: number, tagSeq: number, tagRow: number) => {
    const w = p >>> 2;
    ri[w] = kind | (payload << 8);
    ri[w + 1] = tagSeq;
    ri[w + 2] = tagRow;
  };
  let outSeq = 0;
  let outRow = 0;

  const r = new PacketRecord();
  let outLinktype = -1;
  const writes = init.lb?.out === true;
  const sink: Sink = {
    send(rec, buf, off, len, wirelen) {
      if (!writes) return null; // (no output pcap: emitted, written nowhere)
      if (outLinktype < 0) outLinktype = Atomics.load(ctl, L.C_OUTLT);
      if (rec.linktype !== outLinktype) return 'other_linktype';
      if (buf === r.buf && rec === r && off === r.off && len <= r.caplen) {
        const p = out.reserve(L.E_WORDS * 4);
        header(p, L.E_INPLACE, 0, outSeq, outRow);
        ri[(p >>> 2) + 3] = len;
        ri[(p >>> 2) + 4] = wirelen;
        out.commit(L.E_WORDS * 4);
        return null;
      }
      const bytes = L.E_WORDS * 4 + ((len + 3) & ~3);
      const p = out.reserve(bytes);
      header(p, L.E_COPY, len, outSeq, outRow);
      const w = p >>> 2;
      ri[w + 3] = len;
      ri[w + 4] = wirelen;
      ri[w + 5] = rec.tsSec;
      ri[w + 6] = rec.tsFrac;
      ri[w + 7] = rec.linktype | (rec.digits === 9 ? L.F_NS : 0);
      out.u8.set(buf.subarray(off, off + len), p + L.E_WORDS * 4);
      out.commit(bytes);
      return null;
    },
  };
  const line = (kind: number, s: string) => {
    const len = Buffer.byteLength(s);
    const bytes = L.E_WORDS * 4 + ((len + 3) & ~3);
    const p = out.reserve(bytes);
    header(p, kind, len, outSeq, outRow);
    ri[(p >>> 2) + 3] = len;
    out.u8.write(s, p + L.E_WORDS * 4, len, 'utf8');
    out.commit(bytes);
  };

  const lbo = init.lb;
  const engine = new Engine({
    conntrack: init.track,
    lb: lbo ? { services: new Services(lbo.services, lbo.regions), decrementTtl: lbo.decrementTtl, mtu: lbo.mtu, synproxy: lbo.synproxy } : undefined,
    sink: lbo ? sink : undefined,
    verifyChecksums: init.verifyChecksums,
  });
  const ct = engine.ct;
  if (init.events) ct.onEvent = (type, c, tsUs) => line(L.E_EVENT, eventJson(ct, type, c, tsUs));
  const connLine = init.zeek ? (x: ConnRecord) => zeekLine(x, init.track.seed) : (x: ConnRecord) => JSON.stringify(x);
  if (init.conns) ct.extend({ destroyed: (c, _tsUs, reason) => line(L.E_CONN, connLine(connRecord(ct, c, reason))) });

  let packets = 0;
  let taken = 0;
  let given = 0;
  /** wait until every other worker is past row `i` of chunk `s` (a redirect's answer is known then) */
  const waitOthers = (s: number, i: number) => {
    for (;;) {
      let behind = -1;
      for (let w = 0; w < n; w++) {
        if (w === me) continue;
        const b = L.wbase(w);
        const ws = Atomics.load(ctl, b + L.W_SEQ);
        if (ws > s || (ws === s && Atomics.load(ctl, b + L.W_POS) > i)) continue;
        behind = w;
        break;
      }
      if (behind < 0) return;
      publish();
      const e = Atomics.load(ctl, L.C_EPOCH);
      Atomics.add(ctl, L.C_WAITERS, 1);
      const bb = L.wbase(behind);
      const ws = Atomics.load(ctl, bb + L.W_SEQ);
      if (!(ws > s || (ws === s && Atomics.load(ctl, bb + L.W_POS) > i))) Atomics.wait(ctl, L.C_EPOCH, e, 100);
      Atomics.sub(ctl, L.C_WAITERS, 1);
      if (Atomics.load(ctl, L.C_ABORT) !== 0) throw new Aborted();
    }
  };

  let sincePublish = 0;
  /** r: row m of the chunk, with the engine's clock at the latest time so far (the capture may be out of order) */
  const fill = (meta: Int32Array, m: number, index: number) => {
    const flags = L.readRow(meta, m, r);
    r.ifIndex = meta[m + L.M_IFINDEX]!;
    r.index = index;
    r.fileOffset = (meta[m + L.M_FILEOFF_HI]! >>> 0) * 4294967296 + (meta[m + L.M_FILEOFF_LO]! >>> 0);
    if (flags & L.F_BEHIND) engine.time.set(meta[m + L.M_MAXSEC]! >>> 0, meta[m + L.M_MAXFRAC]! >>> 0, r.digits);
    else engine.time.set(r.tsSec, r.tsFrac, r.digits);
  };
  for (;;) {
    // the next chunk, or the end
    let pub = Atomics.load(ctl, L.C_PUB);
    while (pub <= seq) {
      if (Atomics.load(ctl, L.C_END) !== 0 && Atomics.load(ctl, L.C_PUB) <= seq) break;
      Atomics.wait(ctl, L.C_PUB, pub, 100);
      if (Atomics.load(ctl, L.C_ABORT) !== 0) break;
      pub = Atomics.load(ctl, L.C_PUB);
    }
    if (pub <= seq || Atomics.load(ctl, L.C_ABORT) !== 0) break;
    const slot = seq % L.Q_SLOTS;
    const id = ctl[L.Q_BASE + 2 * slot]!;
    const rows = ctl[L.Q_BASE + 2 * slot + 1]!;
    const firstIndex = ctlF[L.FQ_BASE + slot]!;
    let ch = chunks.get(id);
    while (ch === undefined) {
      // a bigger window made for a large unit: its memory was posted before it was published
      const m = receiveMessageOnPort(parentPort!);
      if (m === undefined) throw new Error(`chunk ${id} published but never sent`);
      addChunk(m.message as { id: number; buf: SharedArrayBuffer; meta: SharedArrayBuffer; lists: SharedArrayBuffer });
      ch = chunks.get(id);
    }
    const meta = ch.meta;
    const list = ch.list;
    const count = list[0]!;
    r.buf = ch.buf;
    outSeq = seq;
    for (let k = 1; k <= count; k++) {
      const e = list[k]!;
      row = e & L.L_ROW;
      const m = row * L.META_WORDS;
      fill(meta, m, firstIndex + row);
      outRow = row;
      if (e & (L.L_FOREIGN | L.L_OWNNAT)) {
        // a NAT server's packet: whoever holds its connection takes it (a redirect when that is not the
        // worker its tuple hashed to); the hashed worker waits to hear from the others before it takes it
        // as new
        if (e & L.L_FOREIGN) {
          if (!engine.holds(r)) continue;
          Atomics.store(meta, m + L.M_CLAIM, me + 1);
          taken++;
        } else if (!engine.holds(r)) {
          waitOthers(seq, row);
          if (Atomics.load(meta, m + L.M_CLAIM) !== 0) {
            given++;
            continue;
          }
        }
      }
      if (r.index === init.faultAt) throw new RecordError(r, new Error(`injected fault (TSVS_TEST_FAULT_RECORD=${init.faultAt})`));
      try {
        engine.frame(r);
      } catch (e) {
        throw new RecordError(r, e as Error);
      }
      packets++;
      if ((++sincePublish & 255) === 0) publish();
    }
    row = rows;
    // the chunk is done: rows count from 0 in the next one before it is said to be reached
    out.flush();
    Atomics.store(ctl, wb + L.W_POS, 0);
    seq++;
    Atomics.store(ctl, wb + L.W_SEQ, seq);
    row = 0;
    publish();
    Atomics.add(ctl, L.C_DONE, 1);
    Atomics.notify(ctl, L.C_DONE);
  }
  // the end (or an error elsewhere): the clock at the capture's latest time (as one engine's), what finishes
  outSeq = L.END_SEQ;
  outRow = 0;
  if (ctlF[L.F_ENDDIGITS]! > 0) engine.time.set(ctlF[L.F_ENDSEC]!, ctlF[L.F_ENDFRAC]!, ctlF[L.F_ENDDIGITS]!);
  if (init.track.drain) engine.drain();
  if (init.conns) for (const c of ct.handles()) line(L.E_CONN, connLine(connRecord(ct, c, 'open')));
  out.flush();
  return {
    decoded: engine.stats.decoded() as unknown as Record<string, number>,
    drops: engine.stats.drops(),
    checksums: engine.checksums,
    lb: engine.x ? lbSummaryOf(engine) : undefined,
    clamped: engine.time.clamped,
    conns: { total: ct.created, ...ct.createdByProto, open_at_end: ct.table.count },
    conntrack: counterObject(ct, engine.lb),
    gauges: gauges(ct),
    packets,
    redirects: { taken, given },
  };
}

if (parentPort && workerData?.tsvsWorker) {
  const init = workerData.tsvsWorker as WorkerInit;
  const ctl = new Int32Array(init.ctl);
  const wb = L.wbase(init.me);
  try {
    const res = run(init);
    parentPort.postMessage({ ok: res });
    Atomics.store(ctl, wb + L.W_STATE, 1);
  } catch (e) {
    if (!(e instanceof Aborted)) {
      const re = e instanceof RecordError ? e : null;
      parentPort.postMessage({ error: (e as Error).message, stack: (re?.inner ?? (e as Error)).stack, index: re?.index ?? -1, fileOffset: re?.fileOffset ?? -1 });
    }
    Atomics.store(ctl, wb + L.W_STATE, 2);
  }
  Atomics.add(ctl, L.C_EPOCH, 1);
  Atomics.notify(ctl, L.C_EPOCH);
}
