/**
 * Shared memory between the replay's reader thread and its lanes (no message per packet):
 *
 * - windows ("chunks"): the reader's windows (SharedArrayBuffers). Records stay where the reader parsed them;
 *   the reader writes one row of META_WORDS per record (where it lies, its times, link type, the lane it goes
 *   to), a list of rows per lane, and publishes the window; each lane processes the rows of its list in place
 *   (the engine rewrites them there) and sets the emit slot of a record it sends on as it lies; the reader
 *   writes the output pcap from the window once the lanes are past it.
 * - the control words (Int32Array `ctl`): windows published, the published queue, each lane's progress
 *   (windows done, rows done in the current one), its output ring's two ends, its state.
 * - an output ring per worker thread (single producer: the worker; single consumer: the reader; lane 0 on
 *   the reader's thread keeps its own buffer): what the engine emitted otherwise (copies, rewritten headers)
 *   and the lines of --events, --conns and --snapshot, each entry tagged with the window and row it was made
 *   at, so the reader writes them in the capture's order.
 */
import type { PacketRecord } from '../capture/record.js';

/** rows of a chunk: 14 words per record */
export const META_WORDS = 14;
export const M_OFF = 0;
export const M_CAPLEN = 1;
export const M_WIRELEN = 2;
export const M_SEC = 3;
export const M_FRAC = 4;
/** linktype (16 bits) | nanoseconds << 16 | header little-endian << 17 | earlier than a record before << 18 */
export const M_FLAGS = 5;
export const M_HDR = 6;
/** the lane the record goes to (SKIP: filtered out) | W_NATREPLY */
export const M_WORKER = 7;
export const M_FILEOFF_LO = 8;
export const M_FILEOFF_HI = 9;
export const M_IFINDEX = 10;
/** 0, or 1 + the lane that took this record as the owner of its connection (a redirect) */
export const M_CLAIM = 11;
/** with F_BEHIND: the latest time of the records so far (an earlier record's; the engine's clock never goes back) */
export const M_MAXSEC = 12;
export const M_MAXFRAC = 13;
/** in M_WORKER: a NAT server's packet (tuple dispatch: the owner of its connection may be another lane) */
export const W_NATREPLY = 0x100;
/**
 * Each window's lists, one per lane (so a lane touches only its own rows, not every row another core
 * wrote): lane w's at w * listWords(rows): [count, pcap flags, entries...], an entry two words: the row | L_*
 * bits, and where the record's classic pcap header lies in the window (-1: none, pcapng; the lane then reads
 * the row). With a header the lane reads the record's times and lengths from it, beside the packet it reads
 * anyway: no row's cache line to bring over from the reader's core. The pcap flags: the link type | F_NS |
 * F_HDRLE of the window's classic pcap records (one file: all alike).
 */
export const L_HEAD = 2;
export const L_OWNNAT = 1 << 29; // a NAT server's packet hashed to this lane
export const L_FOREIGN = 1 << 30; // a NAT server's packet hashed to another: this lane takes it if it holds its connection
export const L_BEHIND = 1 << 28; // earlier than a record before (the row has the latest time)
export const L_ROW = (1 << 28) - 1;
export function listWords(maxRows: number): number {
  return L_HEAD + 2 * maxRows + 16;
}
/**
 * Each window's emit slots, one word per row: 1 + the length the record left with when the engine sent it on
 * unchanged in length (rewritten where it lies, its pcap header still right) and nothing else was written for
 * that row before it: the reader writes it from the window, no entry needed (the common case, per packet).
 * 0: see the entries.
 */

export const F_NS = 1 << 16;
export const F_HDRLE = 1 << 17;
export const F_BEHIND = 1 << 18;
export const SKIP = 255;

/**
 * Windows in flight (the reader reads ahead by this many less one) and their size. Small windows keep what
 * the reader just read and dispatched in the cache when a lane processes it: with 4 MiB windows (4 in flight)
 * the reader thread's lane cost twice the CPU of one thread doing the same packets (tracking alone,
 * lb-5m-v4.pcap: 2.1 s against 1.4 s); with 256 KiB, 1.4-1.6 s. 16 in flight keep the worker threads fed.
 */
export const CHUNKS = 16;
export const WINDOW = 1 << 18;

/** set record `r` from row `m` of a chunk's rows (where it lies, its lengths, times, link type, header) */
export function readRow(meta: Int32Array, m: number, r: PacketRecord): number {
  const flags = meta[m + M_FLAGS]!;
  r.off = meta[m + M_OFF]!;
  r.caplen = meta[m + M_CAPLEN]!;
  r.wirelen = meta[m + M_WIRELEN]!;
  r.tsSec = meta[m + M_SEC]! >>> 0;
  r.tsFrac = meta[m + M_FRAC]! >>> 0;
  r.linktype = flags & 0xffff;
  r.digits = flags & F_NS ? 9 : 6;
  r.hdr = meta[m + M_HDR]!;
  r.hdrLe = (flags & F_HDRLE) !== 0;
  return flags;
}

/* control words */
export const C_PUB = 0; // chunks published
export const C_END = 1; // 1: no more chunks
export const C_EPOCH = 2; // bumped when progress is published while someone waits for it
export const C_WAITERS = 3; // threads waiting on C_EPOCH
export const C_ABORT = 4; // 1: stop now (an error elsewhere)
export const C_OUTLT = 5; // link type of the output pcap (the first record's)
export const C_DONE = 6; // bumped (and notified) when a lane finishes a window or a worker waits for room in its ring
export const Q_BASE = 16; // published queue: [chunk id, rows] per slot
export const Q_SLOTS = 64;
export const W_BASE = Q_BASE + 2 * Q_SLOTS;
/** each lane's words: two cache lines of their own, the reader's (W_HEAD) in the second (no false sharing) */
export const W_WORDS = 32;
export const W_SEQ = 0; // chunks done
export const W_POS = 1; // rows done in chunk W_SEQ
export const W_TAIL = 2; // output ring: produced (bytes, wrapping)
export const W_WAITOUT = 3; // 1: waiting for room in the output ring
export const W_STATE = 4; // 0 running, 1 finished, 2 failed
export const W_TID = 5; // the worker's thread id (Linux; 0 where unknown): the reader checks it is alive
export const W_HEAD = 16; // output ring: consumed (written by the reader)
/** float64 view: the first record's index of each queue slot, then the capture's latest time (the end's clock) */
export const FQ_BASE = 0;
export const F_ENDSEC = Q_SLOTS;
export const F_ENDFRAC = Q_SLOTS + 1;
export const F_ENDDIGITS = Q_SLOTS + 2;

export function ctlBytes(lanes: number): number {
  return (W_BASE + W_WORDS * lanes) * 4;
}
export const CTL_F64_BYTES = (Q_SLOTS + 4) * 8;

export function wbase(w: number): number {
  return W_BASE + W_WORDS * w;
}

/* output ring entries: 8 words of header (+ payload, padded to 4 bytes) */
export const E_WORDS = 8;
export const E_PAD = 0; // skip to the ring's start
export const E_INPLACE = 1; // the record itself, rewritten in place: [3] len, [4] wirelen
export const E_COPY = 2; // bytes that follow: [3] len, [4] wirelen, [5] sec, [6] frac, [7] linktype | ns << 16
export const E_EVENT = 3; // a line of --events: [3] byte length
export const E_CONN = 4; // a line of --conns
export const E_SNAP = 5; // a connection of --snapshot (at the end)
/** [0] kind | payload bytes << 8, [1] chunk sequence (END_SEQ after the last), [2] row */
export const END_SEQ = 0x7fffffff;
export const RING_BYTES = 8 << 20;

/** a tag that orders entries: chunk sequence and row (rows < 2^24 in a window of at most 64 MiB / 16 bytes) */
export function tagOf(seq: number, row: number): number {
  return seq * 16777216 + row;
}

/** whether lane w is past row i of window s (its words: windows done, rows done in the next) */
export function isPast(ctl: Int32Array, w: number, s: number, i: number): boolean {
  const b = wbase(w);
  const ws = Atomics.load(ctl, b + W_SEQ);
  return ws > s || (ws === s && Atomics.load(ctl, b + W_POS) > i);
}

/** hash slots: a packet's lane is slots[hash % SLOTS] (a local port's: slots[port % SLOTS]) */
export const SLOTS = 64;

/** the slots of `lanes` lanes, lane 0 (on the reader thread) taking `share` of them (at least one) */
export function slotTable(lanes: number, share: number): Uint8Array {
  const t = new Uint8Array(SLOTS);
  const first = lanes === 1 ? SLOTS : Math.max(1, Math.min(SLOTS - (lanes - 1), Math.round(SLOTS * share)));
  for (let i = 0; i < SLOTS; i++) t[i] = i < first ? 0 : 1 + ((i - first) % (lanes - 1));
  // interleaved, so consecutive ports and hashes do not all fall to one lane
  const out = new Uint8Array(SLOTS);
  for (let i = 0; i < SLOTS; i++) out[(i * 37) % SLOTS] = t[i]!;
  return out;
}
