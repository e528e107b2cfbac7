/**
 * Flow accounting per (source, destination) host pair, directional (Tailscale DERP's flow tracking,
 * derp/flow.go: facts, not code), for every IP packet the engine sees, fragments and undecodable packets with
 * addresses included. Per flow: created, last activity (rough: written at most once a minute, so a busy flow
 * costs no write per packet), packets and IP bytes seen, packets and bytes the LB sent on directly
 * (nat/fnat/dr/snat) and through a tunnel (ipip/gue), and drops by reason with their bytes.
 *
 * Memory is bounded: flows live in typed arrays addressed by handle (no object, no string key per packet),
 * at most `max` of them. Eviction as DERP does it, amortized: each new flow looks at two old flows, round
 * robin over the dense array of flows, and removes one idle for more than `idle` (swap-remove); when the
 * table is full the least recently active flow goes (a list kept in order of the rough last activity), and
 * is counted. Each source keeps its last `perSource` destinations (a list threaded through its flows, most
 * recent first), so "the last N destinations of this host" needs no scan.
 *
 * Drop records (reason, packets, bytes) hang off their flow in a pool of their own; a drop that finds the
 * pool full is counted, unattributed.
 *
 * Layout: what a packet of a known flow touches is packed per flow, so it costs three cache lines (the bucket,
 * the key row, the counts row), not one line per field: `row` (8 words: hash, source and destination word 0,
 * next in chain, IPv6, source entry, first drop record, place in the dense array) and `cnt` (8 doubles:
 * packets, bytes, sent directly, through a tunnel, last activity, head of its source's list). A caller that
 * kept a handle (the engine, per connection) counts with the counts row alone (again()). The arrays
 * grow by doubling up to `max` (a table sized for a million flows costs nothing until it fills).
 */
import { DropPool } from './drops.js';
import { grown, pow2, type Row } from './grow.js';

/** the flow of a packet that has addresses but got none (overload): its drop counts, unattributed */
export const NO_FLOW = -2;

export interface FlowsConfig {
  /** seconds without a packet after which a flow may be evicted */
  idle: number;
  /** most flows at once */
  max: number;
  /** destinations remembered per source */
  perSource: number;
}

/** rough last activity: written when it is more than this older than the packet's time (DERP noteActivity) */
const ROUGH_US = 60e6;
const NIL = -1;

/* a flow's row (Uint32Array, 8 per flow) and counts (Float64Array, 8 per flow) */
const R_SRC0 = 1;
const R_DST0 = 2;
const R_NEXT = 3;
const R_V6 = 4;
const R_SRC = 5;
const R_DROP = 6;
const R_WHERE = 7;
const C_PKTS = 0;
const C_BYTES = 1;
const C_FWD = 2;
const C_TUN = 4;
const C_LAST = 6;
/** 1 while the flow is its source's most recent destination (the head of its list): no write per packet */
const C_HEAD = 7;

export class Flows {
  readonly max: number;
  private readonly idleUs: number;
  private readonly perSource: number;
  private readonly seed: number;
  /** flows the arrays hold now (doubles up to max), and sources */
  private cap: number;
  private srcCap: number;
  /** per flow, 8 words: R_HASH, R_SRC0, R_DST0, R_NEXT (handle + 1 in the chain; 0 = end), R_V6, R_SRC (source entry), R_DROP (first drop record + 1), R_WHERE (place in dense) */
  private row: Uint32Array;
  /** per flow, 8 doubles: packets, bytes, sent directly (packets, bytes), through a tunnel (packets, bytes), created, last (µs) */
  private cnt: Float64Array;
  /** per flow: when it was made (µs) */
  private created: Float64Array;
  /** per handle: how many flows it has held (a cached handle is still its flow while this is unchanged) */
  private gen: Uint32Array;
  /* the IPv6 words 1-3 of both addresses (touched only by IPv6 flows) */
  private srcHi: Uint32Array;
  private dstHi: Uint32Array;
  /** hash chains: bucket heads (handle + 1; 0 = end), sized for max at once */
  private buckets: Int32Array;
  private mask: number;
  /* the dense array of live flows (DERP's flow slice) */
  private dense: Int32Array;
  /** live flows */
  count = 0;
  private rr = 0;
  /* least recently active first (by rough last activity): a doubly-linked list */
  private lruPrev: Int32Array;
  private lruNext: Int32Array;
  private lruHead = NIL;
  private lruTail = NIL;
  /* free handles */
  private freeList: Int32Array;
  private freeTop = 0;
  private fresh = 0;
  /* per source: its flows, most recent destination first (a list through the flows), in a table by source */
  private srcPrev: Int32Array;
  private srcNext: Int32Array;
  private srcKey0: Uint32Array;
  private srcKeyHi: Uint32Array;
  private srcV6: Uint8Array;
  private srcHead: Int32Array;
  private srcTail: Int32Array;
  private srcCount: Int32Array;
  /** flows of the source (in its list or not: the entry lives while it has any) */
  private srcFlows: Int32Array;
  private srcBuckets: Int32Array;
  private srcMask: number;
  private srcNextInChain: Int32Array;
  private srcFree: Int32Array;
  private srcFreeTop = 0;
  private srcFresh = 0;
  /** drop records, chained per flow (R_DROP) */
  private readonly drops: DropPool;
  /* totals */
  evicted = 0;
  /** evicted because the table was full */
  evictedFull = 0;
  /** drops on no flow: the drop-record pool was full, or the packet got no flow (overload) */
  unattributed = 0;
  /** packets that got no flow: under overload, with none already (Engine.account) */
  unaccounted = 0;
  /** drops by reason over every flow (packets) */
  readonly dropTotals = new Map<string, number>();
  /** called with each flow as it is evicted */
  onEvict: ((f: number, why: 'idle' | 'full') => void) | null = null;

  constructor(cfg: FlowsConfig, seed = 1) {
    const n = cfg.max;
    this.max = n;
    this.idleUs = cfg.idle * 1e6;
    this.perSource = cfg.perSource;
    this.seed = (seed ^ 0x27d4eb2f) >>> 0;
    const c = Math.min(n, 4096);
    this.cap = c;
    this.srcCap = Math.min(n, 1024);
    // buckets: twice the room (grown with it, the chains rebuilt), so a new flow touches no page far away
    this.buckets = new Int32Array(pow2(2 * c));
    this.mask = this.buckets.length - 1;
    this.srcBuckets = new Int32Array(pow2(2 * this.srcCap));
    this.srcMask = this.srcBuckets.length - 1;
    this.row = new Uint32Array(c * 8);
    this.cnt = new Float64Array(c * 8);
    this.gen = new Uint32Array(c);
    this.created = new Float64Array(c);
    this.srcHi = new Uint32Array(c * 3);
    this.dstHi = new Uint32Array(c * 3);
    this.dense = new Int32Array(c);
    this.lruPrev = new Int32Array(c);
    this.lruNext = new Int32Array(c);
    this.freeList = new Int32Array(c);
    this.srcPrev = new Int32Array(c);
    this.srcNext = new Int32Array(c);
    this.srcKey0 = new Uint32Array(this.srcCap);
    this.srcKeyHi = new Uint32Array(this.srcCap * 3);
    this.srcV6 = new Uint8Array(this.srcCap);
    this.srcHead = new Int32Array(this.srcCap);
    this.srcTail = new Int32Array(this.srcCap);
    this.srcCount = new Int32Array(this.srcCap);
    this.srcFlows = new Int32Array(this.srcCap);
    this.srcNextInChain = new Int32Array(this.srcCap);
    this.srcFree = new Int32Array(this.srcCap);
    this.drops = new DropPool(n * 2);
  }

  /** twice the room (up to max): every per-flow and per-source array copied into a larger one */
  private grow(): void {
    const c = Math.min(this.max, this.cap * 2);
    const g = <T extends Row>(a: T, per: number): T => grown(a, c * per);
    this.row = g(this.row, 8);
    this.cnt = g(this.cnt, 8);
    this.gen = g(this.gen, 1);
    this.created = g(this.created, 1);
    this.srcHi = g(this.srcHi, 3);
    this.dstHi = g(this.dstHi, 3);
    this.dense = g(this.dense, 1);
    this.lruPrev = g(this.lruPrev, 1);
    this.lruNext = g(this.lruNext, 1);
    this.freeList = g(this.freeList, 1);
    this.srcPrev = g(this.srcPrev, 1);
    this.srcNext = g(this.srcNext, 1);
    this.cap = c;
    // the chains again, over buckets for the new room (a power of two: max may not be, the room is)
    const buckets = (this.buckets = new Int32Array(pow2(2 * c)));
    this.mask = buckets.length - 1;
    const row = this.row;
    for (let i = 0; i < this.count; i++) {
      const f = this.dense[i]!;
      const b = row[8 * f]! & this.mask;
      row[8 * f + R_NEXT] = buckets[b]!;
      buckets[b] = f + 1;
    }
  }

  /** twice the room for sources (there are at most as many as flows, usually far fewer) */
  private growSources(): void {
    const c = Math.min(this.max, this.srcCap * 2);
    const g = <T extends Row>(a: T, per: number): T => grown(a, c * per);
    this.srcKey0 = g(this.srcKey0, 1);
    this.srcKeyHi = g(this.srcKeyHi, 3);
    this.srcV6 = g(this.srcV6, 1);
    this.srcHead = g(this.srcHead, 1);
    this.srcTail = g(this.srcTail, 1);
    this.srcCount = g(this.srcCount, 1);
    this.srcFlows = g(this.srcFlows, 1);
    this.srcNextInChain = g(this.srcNextInChain, 1);
    this.srcFree = g(this.srcFree, 1);
    this.srcCap = c;
    const buckets = (this.srcBuckets = new Int32Array(pow2(2 * c)));
    this.srcMask = buckets.length - 1;
    // every source entry in use (a free one has no flows)
    const free = new Uint8Array(this.srcFresh);
    for (let i = 0; i < this.srcFreeTop; i++) free[this.srcFree[i]!] = 1;
    for (let s = 0; s < this.srcFresh; s++) {
      if (free[s]) continue;
      const b = this.srcHash(this.srcKey0[s]!, this.srcV6[s] ? this.srcKeyHi : null, 3 * s);
      this.srcNextInChain[s] = buckets[b]!;
      buckets[b] = s + 1;
    }
  }

  /* ---------------- the key ---------------- */

  private static hashWords(seed: number, a: Uint32Array, b: Uint32Array, v6: boolean): number {
    let h = Math.imul(seed ^ a[0]!, 0xcc9e2d51);
    h = Math.imul((h << 15) | (h >>> 17), 0x1b873593) ^ Math.imul(b[0]! ^ 0x9e3779b9, 0x85ebca6b);
    if (v6) {
      for (let i = 1; i < 4; i++) {
        h = Math.imul(h ^ a[i]!, 0xcc9e2d51);
        h = Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64;
        h = Math.imul(h ^ b[i]!, 0x85ebca6b);
      }
    }
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  }

  /** the flow of (src, dst) with hash h, or -1 */
  private lookup(h: number, src: Uint32Array, dst: Uint32Array, v6: boolean): number {
    const row = this.row;
    for (let f = this.buckets[h & this.mask]! - 1; f >= 0; f = row[8 * f + R_NEXT]! - 1) {
      if (row[8 * f] === h && this.has(f, src, dst, v6)) return f;
    }
    return -1;
  }

  /* ---------------- per packet ---------------- */

  /**
   * The flow of a packet from `src` to `dst` (4 words each; IPv4 in word 0) at `nowUs` with `ipBytes` IP
   * bytes: counted, created when new (after evicting what must go). Returns its handle, or -1 when none can be
   * made (max 0).
   */
  packet(src: Uint32Array, dst: Uint32Array, v6: boolean, ipBytes: number, nowUs: number): number {
    const h = Flows.hashWords(this.seed, src, dst, v6);
    let f = this.lookup(h, src, dst, v6);
    if (f < 0) {
      f = this.create(src, dst, v6, h, nowUs);
      if (f < 0) return -1;
    }
    this.again(f, ipBytes, nowUs);
    return f;
  }

  /** packet() for a flow that exists; none is made (NO_FLOW: the packet is counted unaccounted, and its drop unattributed) */
  existing(src: Uint32Array, dst: Uint32Array, v6: boolean, ipBytes: number, nowUs: number): number {
    const f = this.lookup(Flows.hashWords(this.seed, src, dst, v6), src, dst, v6);
    if (f >= 0) this.again(f, ipBytes, nowUs);
    else this.unaccounted++;
    return f >= 0 ? f : NO_FLOW;
  }

  /** the generation of handle f: a caller that kept f (the engine, per connection) may use it while this holds */
  genOf(f: number): number {
    return this.gen[f]!;
  }

  /** flow f is (src, dst) */
  has(f: number, src: Uint32Array, dst: Uint32Array, v6: boolean): boolean {
    const o = 8 * f;
    const row = this.row;
    if (row[o + R_SRC0] !== src[0] || row[o + R_DST0] !== dst[0] || row[o + R_V6] !== (v6 ? 1 : 0)) return false;
    if (!v6) return true;
    const q = 3 * f;
    return this.srcHi[q] === src[1] && this.srcHi[q + 1] === src[2] && this.srcHi[q + 2] === src[3] && this.dstHi[q] === dst[1] && this.dstHi[q + 1] === dst[2] && this.dstHi[q + 2] === dst[3];
  }

  /** one more packet of flow f (known: looked up before, and genOf unchanged since) */
  again(f: number, ipBytes: number, nowUs: number): void {
    const cnt = this.cnt;
    const o = 8 * f;
    cnt[o + C_PKTS]!++;
    cnt[o + C_BYTES]! += ipBytes;
    // (rare: the rough last activity is a minute old, or another destination of the source was more recent)
    if (nowUs - cnt[o + C_LAST]! > ROUGH_US || cnt[o + C_HEAD] === 0) this.againRare(f, nowUs);
  }

  private againRare(f: number, nowUs: number): void {
    if (nowUs - this.cnt[8 * f + C_LAST]! > ROUGH_US) this.touch(f, nowUs);
    if (this.perSource > 0 && this.cnt[8 * f + C_HEAD] === 0) this.recentDestination(f);
  }

  /** the LB sent a packet of flow f on: directly (nat, fnat, dr, snat) or through a tunnel */
  sent(f: number, bytes: number, tunnel: boolean): void {
    if (f < 0) return;
    const o = 8 * f + (tunnel ? C_TUN : C_FWD);
    this.cnt[o]!++;
    this.cnt[o + 1]! += bytes;
  }

  /** a packet of flow f (-1: of no flow, not counted) was dropped for `reason` */
  drop(f: number, reason: string, bytes: number): void {
    if (f < 0) {
      // (a packet with addresses that got no flow: under overload; see Engine.account)
      if (f === NO_FLOW) {
        this.dropTotals.set(reason, (this.dropTotals.get(reason) ?? 0) + 1);
        this.unattributed++;
      }
      return;
    }
    this.dropTotals.set(reason, (this.dropTotals.get(reason) ?? 0) + 1);
    const ro = 8 * f + R_DROP;
    const head = this.drops.add(this.row[ro]!, reason, bytes);
    if (head < 0) this.unattributed++;
    else this.row[ro] = head;
  }

  /* ---------------- creation, eviction ---------------- */

  private create(src: Uint32Array, dst: Uint32Array, v6: boolean, h: number, nowUs: number): number {
    // DERP (maybeCleanOldFlowLocked): before it is added, a new flow checks two old ones, the cursor moving
    // round the dense array first, and removes one idle too long (the last flow takes its place)
    for (let i = 0; i < 2 && this.count > 0; i++) {
      if (++this.rr >= this.count) this.rr = 0;
      const old = this.dense[this.rr]!;
      if (nowUs - this.cnt[8 * old + C_LAST]! > this.idleUs) this.evict(old, 'idle');
    }
    if (this.count >= this.max) {
      if (this.lruHead === NIL) return -1;
      this.evictedFull++;
      this.evict(this.lruHead, 'full');
    }
    if (this.freeTop === 0 && this.fresh >= this.cap) this.grow();
    const f = this.freeTop > 0 ? this.freeList[--this.freeTop]! : this.fresh++;
    const row = this.row;
    const o = 8 * f;
    row[o] = h;
    row[o + R_SRC0] = src[0]!;
    row[o + R_DST0] = dst[0]!;
    row[o + R_V6] = v6 ? 1 : 0;
    if (v6) {
      const q = 3 * f;
      this.srcHi[q] = src[1]!;
      this.srcHi[q + 1] = src[2]!;
      this.srcHi[q + 2] = src[3]!;
      this.dstHi[q] = dst[1]!;
      this.dstHi[q + 1] = dst[2]!;
      this.dstHi[q + 2] = dst[3]!;
    }
    const b = h & this.mask;
    row[o + R_NEXT] = this.buckets[b]!;
    this.buckets[b] = f + 1;
    row[o + R_DROP] = 0;
    this.cnt.fill(0, o, o + 8);
    this.created[f] = nowUs;
    this.cnt[o + C_LAST] = nowUs;
    row[o + R_WHERE] = this.count;
    this.dense[this.count++] = f;
    // the most recently active end of the list
    this.lruNext[f] = NIL;
    this.lruPrev[f] = this.lruTail;
    if (this.lruTail !== NIL) this.lruNext[this.lruTail] = f;
    else this.lruHead = f;
    this.lruTail = f;
    this.joinSource(f, src, v6);
    return f;
  }

  /** rough last activity: written now (at most once a minute), and to the recent end of the list */
  private touch(f: number, nowUs: number): void {
    this.cnt[8 * f + C_LAST] = nowUs;
    if (this.lruTail === f) return;
    this.unlinkLru(f);
    this.lruNext[f] = NIL;
    this.lruPrev[f] = this.lruTail;
    this.lruNext[this.lruTail] = f;
    this.lruTail = f;
  }

  private unlinkLru(f: number): void {
    const p = this.lruPrev[f]!;
    const n = this.lruNext[f]!;
    if (p !== NIL) this.lruNext[p] = n;
    else this.lruHead = n;
    if (n !== NIL) this.lruPrev[n] = p;
    else this.lruTail = p;
  }

  /** remove flow f (reported first), its drop records, its place in its source's list */
  private evict(f: number, why: 'idle' | 'full'): void {
    this.evicted++;
    if (this.onEvict) this.onEvict(f, why);
    this.gen[f]!++;
    const row = this.row;
    const o = 8 * f;
    // out of its hash chain
    const b = row[o]! & this.mask;
    let p = this.buckets[b]! - 1;
    if (p === f) this.buckets[b] = row[o + R_NEXT]!;
    else {
      while (row[8 * p + R_NEXT]! - 1 !== f) p = row[8 * p + R_NEXT]! - 1;
      row[8 * p + R_NEXT] = row[o + R_NEXT]!;
    }
    // swap-remove from the dense array
    const at = row[o + R_WHERE]!;
    const lastF = this.dense[--this.count]!;
    this.dense[at] = lastF;
    row[8 * lastF + R_WHERE] = at;
    this.unlinkLru(f);
    this.drops.release(row[o + R_DROP]!);
    row[o + R_DROP] = 0;
    this.leaveSource(f);
    this.freeList[this.freeTop++] = f;
  }

  /* ---------------- per source: the last destinations ---------------- */

  private srcHash(k0: number, hi: Uint32Array | null, o: number): number {
    let h = Math.imul(k0 ^ this.seed, 0x9e3779b1);
    if (hi) h = Math.imul(h ^ hi[o]! ^ Math.imul(hi[o + 1]!, 0x85ebca6b) ^ hi[o + 2]!, 0xc2b2ae35);
    return (h ^ (h >>> 15)) & this.srcMask;
  }

  private findSource(src: Uint32Array, v6: boolean, create: boolean): number {
    const b = this.srcHash(src[0]!, v6 ? src : null, 1);
    for (let s = this.srcBuckets[b]! - 1; s >= 0; s = this.srcNextInChain[s]! - 1) {
      if (this.srcKey0[s] !== src[0] || (this.srcV6[s] === 1) !== v6) continue;
      if (v6) {
        const o = 3 * s;
        if (this.srcKeyHi[o] !== src[1] || this.srcKeyHi[o + 1] !== src[2] || this.srcKeyHi[o + 2] !== src[3]) continue;
      }
      return s;
    }
    if (!create) return -1;
    let bb = b;
    if (this.srcFreeTop === 0 && this.srcFresh >= this.srcCap) {
      this.growSources();
      bb = this.srcHash(src[0]!, v6 ? src : null, 1); // (the buckets changed)
    }
    const s = this.srcFreeTop > 0 ? this.srcFree[--this.srcFreeTop]! : this.srcFresh++;
    this.srcKey0[s] = src[0]!;
    this.srcV6[s] = v6 ? 1 : 0;
    if (v6) this.srcKeyHi.set(src.subarray(1, 4), 3 * s);
    this.srcHead[s] = NIL;
    this.srcTail[s] = NIL;
    this.srcCount[s] = 0;
    this.srcFlows[s] = 0;
    this.srcNextInChain[s] = this.srcBuckets[bb]!;
    this.srcBuckets[bb] = s + 1;
    return s;
  }

  private joinSource(f: number, src: Uint32Array, v6: boolean): void {
    const s = this.findSource(src, v6, true);
    this.row[8 * f + R_SRC] = s;
    this.srcFlows[s]!++;
    this.srcPrev[f] = NIL;
    this.srcNext[f] = NIL;
    if (this.perSource > 0) this.pushFront(s, f);
  }

  /** flow f had a packet and is not its source's most recent: now it is */
  private recentDestination(f: number): void {
    const s = this.row[8 * f + R_SRC]!;
    const inList = this.srcPrev[f] !== NIL || this.srcTail[s] === f;
    if (inList) this.unlinkSrc(s, f);
    this.pushFront(s, f);
  }

  private pushFront(s: number, f: number): void {
    const h = this.srcHead[s]!;
    this.srcPrev[f] = NIL;
    this.srcNext[f] = h;
    if (h !== NIL) {
      this.srcPrev[h] = f;
      this.cnt[8 * h + C_HEAD] = 0;
    } else this.srcTail[s] = f;
    this.srcHead[s] = f;
    this.cnt[8 * f + C_HEAD] = 1;
    if (++this.srcCount[s]! > this.perSource) this.unlinkSrc(s, this.srcTail[s]!); // the oldest leaves the list (not the table)
  }

  private unlinkSrc(s: number, f: number): void {
    const p = this.srcPrev[f]!;
    const n = this.srcNext[f]!;
    if (p !== NIL) this.srcNext[p] = n;
    else {
      this.srcHead[s] = n;
      this.cnt[8 * f + C_HEAD] = 0;
      if (n !== NIL) this.cnt[8 * n + C_HEAD] = 1;
    }
    if (n !== NIL) this.srcPrev[n] = p;
    else this.srcTail[s] = p;
    this.srcPrev[f] = NIL;
    this.srcNext[f] = NIL;
    this.srcCount[s]!--;
  }

  private leaveSource(f: number): void {
    const s = this.row[8 * f + R_SRC]!;
    if (this.srcHead[s] === f || this.srcPrev[f] !== NIL) this.unlinkSrc(s, f);
    if (--this.srcFlows[s]! > 0) return;
    // the source's last flow: the entry goes
    const b = this.srcHash(this.srcKey0[s]!, this.srcV6[s] ? this.srcKeyHi : null, 3 * s);
    let p = this.srcBuckets[b]! - 1;
    if (p === s) this.srcBuckets[b] = this.srcNextInChain[s]!;
    else {
      while (this.srcNextInChain[p]! - 1 !== s) p = this.srcNextInChain[p]! - 1;
      this.srcNextInChain[p] = this.srcNextInChain[s]!;
    }
    this.srcFree[this.srcFreeTop++] = s;
  }

  /** the last destinations of a source (most recent first), as flow handles */
  recentOf(src: Uint32Array, v6: boolean): number[] {
    const s = this.findSource(src, v6, false);
    const out: number[] = [];
    if (s < 0) return out;
    for (let f = this.srcHead[s]!; f !== NIL; f = this.srcNext[f]!) out.push(f);
    return out;
  }

  /* ---------------- reading ---------------- */

  /** handles are below this (a listing pages over handles: they stay put while the dense order moves) */
  get handleEnd(): number {
    return this.fresh;
  }

  /** f is a flow now (not free) */
  isLive(f: number): boolean {
    if (f < 0 || f >= this.fresh) return false;
    const w = this.row[8 * f + R_WHERE]!;
    return w < this.count && this.dense[w] === f;
  }

  /** live flow handles (dense order) */
  *handles(): Generator<number> {
    for (let i = 0; i < this.count; i++) yield this.dense[i]!;
  }

  /** the flow of (src, dst), or -1 */
  find(src: Uint32Array, dst: Uint32Array, v6: boolean): number {
    return this.lookup(Flows.hashWords(this.seed, src, dst, v6), src, dst, v6);
  }

  addrOf(f: number, which: 'src' | 'dst', out: Uint32Array): boolean {
    out[0] = this.row[8 * f + (which === 'src' ? R_SRC0 : R_DST0)]!;
    const v6 = this.row[8 * f + R_V6] === 1;
    const hi = which === 'src' ? this.srcHi : this.dstHi;
    for (let i = 1; i < 4; i++) out[i] = v6 ? hi[3 * f + i - 1]! : 0;
    return v6;
  }

  /** counts of flow f: packets and bytes seen, sent directly and through a tunnel, first and rough last activity (µs) */
  countsOf(f: number): { pkts: number; bytes: number; fwdPkts: number; fwdBytes: number; tunPkts: number; tunBytes: number; createdUs: number; lastUs: number } {
    const c = this.cnt;
    const o = 8 * f;
    return { pkts: c[o + C_PKTS]!, bytes: c[o + C_BYTES]!, fwdPkts: c[o + C_FWD]!, fwdBytes: c[o + C_FWD + 1]!, tunPkts: c[o + C_TUN]!, tunBytes: c[o + C_TUN + 1]!, createdUs: this.created[f]!, lastUs: c[o + C_LAST]! };
  }

  /** packets and IP bytes seen on flow f (a scan's sort key: no object per flow) */
  pktsOf(f: number): number {
    return this.cnt[8 * f + C_PKTS]!;
  }

  bytesOf(f: number): number {
    return this.cnt[8 * f + C_BYTES]!;
  }

  /** drops of flow f by reason: packets and bytes */
  dropsOf(f: number): { pkts: Record<string, number>; bytes: Record<string, number> } {
    return this.drops.of(this.row[8 * f + R_DROP]!);
  }

  /** total drops of flow f (packets) */
  dropCountOf(f: number): number {
    return this.drops.count(this.row[8 * f + R_DROP]!);
  }
}
