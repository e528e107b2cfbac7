/**
 * A replay worker thread (worker_threads): one lane (lane.ts) fed by the reader thread through shared windows
 * (layout.ts). It waits for each published window, processes its rows of it, says how far it got, and puts
 * what its engine emits in its output ring; at the end it finishes its lane and posts the counters.
 */
import '../runtime.js';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { Lane, RecordError, type LaneInit, type LaneResult } from './lane.js';
import { setPortPartition } from '../xmit/pool.js';
import * as L from './layout.js';
import * as fs from 'node:fs';

export interface WorkerInit {
  /** this worker's lane (1..lanes-1; lane 0 runs on the reader thread) */
  me: number;
  lanes: number;
  /** which lane each of the SLOTS hash slots belongs to (local ports too: port % SLOTS) */
  slots: Uint8Array;
  ctl: SharedArrayBuffer;
  ctlF: SharedArrayBuffer;
  ring: SharedArrayBuffer;
  chunks: WindowMemory[];
  lane: LaneInit;
}

export interface WindowMemory {
  id: number;
  buf: SharedArrayBuffer;
  meta: SharedArrayBuffer;
  lists: SharedArrayBuffer;
  emit: SharedArrayBuffer;
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

function run(init: WorkerInit): LaneResult {
  const me = init.me;
  const n = init.lanes;
  const ctl = new Int32Array(init.ctl);
  const ctlF = new Float64Array(init.ctlF);
  const wb = L.wbase(me);
  setPortPartition(init.slots, me);
  const chunks = new Map<number, { buf: Buffer; meta: Int32Array; emit: Int32Array; list: Int32Array }>();
  const addChunk = (c: WindowMemory) => {
    const words = c.lists.byteLength / 4 / n;
    chunks.set(c.id, { buf: Buffer.from(c.buf), meta: new Int32Array(c.meta), emit: new Int32Array(c.emit), list: new Int32Array(c.lists, me * words * 4, words) });
  };
  for (const c of init.chunks) addChunk(c);

  let row = 0; // the row being processed (every one before it is done)
  const publish = () => {
    out.flush();
    Atomics.store(ctl, wb + L.W_POS, row);
    if (Atomics.load(ctl, L.C_WAITERS) > 0) {
      Atomics.add(ctl, L.C_EPOCH, 1);
      Atomics.notify(ctl, L.C_EPOCH);
    }
  };
  const out = new RingOut(init.ring, ctl, wb, publish);
  const lane = new Lane(me, init.lane, out, () => Atomics.load(ctl, L.C_OUTLT));
  const hooks = {
    progress(at: number) {
      row = at;
      publish();
    },
    /** wait until every other lane is past row `i` of window `s` */
    waitOthers(s: number, i: number) {
      row = i;
      for (;;) {
        let behind = -1;
        for (let w = 0; w < n; w++) if (w !== me && !L.isPast(ctl, w, s, i)) behind = w;
        if (behind < 0) return;
        publish();
        const e = Atomics.load(ctl, L.C_EPOCH);
        Atomics.add(ctl, L.C_WAITERS, 1);
        if (!L.isPast(ctl, behind, s, i)) Atomics.wait(ctl, L.C_EPOCH, e, 100);
        Atomics.sub(ctl, L.C_WAITERS, 1);
        if (Atomics.load(ctl, L.C_ABORT) !== 0) throw new Aborted();
      }
    },
  };
  for (let seq = 0; ; seq++) {
    // the next window, or the end
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
    let ch = chunks.get(id);
    while (ch === undefined) {
      // a bigger window made for a large unit: its memory was posted before it was published
      const m = receiveMessageOnPort(parentPort!);
      if (m === undefined) throw new Error(`window ${id} published but never sent`);
      addChunk(m.message as WindowMemory);
      ch = chunks.get(id);
    }
    row = 0;
    lane.process(ch, seq, ctlF[L.FQ_BASE + slot]!, hooks);
    // the window is done: rows count from 0 in the next one before it is said to be reached
    out.flush();
    Atomics.store(ctl, wb + L.W_POS, 0);
    Atomics.store(ctl, wb + L.W_SEQ, seq + 1);
    row = 0;
    publish();
    Atomics.add(ctl, L.C_DONE, 1);
    Atomics.notify(ctl, L.C_DONE);
  }
  const res = lane.finish(ctlF[L.F_ENDDIGITS]! > 0 ? { sec: ctlF[L.F_ENDSEC]!, frac: ctlF[L.F_ENDFRAC]!, digits: ctlF[L.F_ENDDIGITS]! } : null);
  out.flush();
  return res;
}

/** this thread's id in the kernel (/proc/thread-self -> PID/task/TID), 0 where there is none */
function threadId(): number {
  try {
    return Number(fs.readlinkSync('/proc/thread-self').split('/').pop()) || 0;
  } catch {
    return 0;
  }
}

if (parentPort && workerData?.tsvsWorker) {
  const init = workerData.tsvsWorker as WorkerInit;
  const ctl = new Int32Array(init.ctl);
  const wb = L.wbase(init.me);
  // (the reader took this thread's id when it made it; where it could not tell it from another new thread, say it)
  Atomics.compareExchange(ctl, wb + L.W_TID, 0, threadId());
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
