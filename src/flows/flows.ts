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
 */

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

export interface FlowRecord {
  src: string;
  dst: string;
  created: string;
  last: string;
  pkts: number;
  bytes: number;
  fwd_pkts: number;
  fwd_bytes: number;
  tun_pkts: number;
  tun_bytes: number;
  drops: Record<string, number>;
  drop_bytes?: Record<string, number>;
  /** written at eviction: the time, and why */
  evicted?: string;
  eviction?: 'idle' | 'full';
}

export class Flows {
  readonly max: number;
  private readonly idleUs: number;
  private readonly perSource: number;
  private readonly seed: number;
  /* the key: word 0 of both addresses, then the IPv6 words 1-3 (touched only by IPv6 flows) */
  private readonly src0: Uint32Array;
  private readonly dst0: Uint32Array;
  private readonly srcHi: Uint32Array;
  private readonly dstHi: Uint32Array;
  private readonly v6: Uint8Array;
  private readonly hash: Int32Array;
  /** hash chains: bucket heads and next links (handle + 1; 0 = end) */
  private readonly buckets: Int32Array;
  private readonly mask: number;
  private readonly nextInChain: Int32Array;
  /* counts */
  private readonly created: Float64Array;
  private readonly last: Float64Array;
  private readonly pkts: Float64Array;
  private readonly bytes: Float64Array;
  private readonly fwdPkts: Float64Array;
  private readonly fwdBytes: Float64Array;
  private readonly tunPkts: Float64Array;
  private readonly tunBytes: Float64Array;
  /** first drop record of each flow (NIL: none) */
  private readonly dropHead: Int32Array;
  /* the dense array of live flows (DERP's flow slice) and each flow's place in it */
  private readonly dense: Int32Array;
  private readonly where: Int32Array;
  /** live flows */
  count = 0;
  private rr = 0;
  /* least recently active first (by rough last activity): a doubly-linked list */
  private readonly lruPrev: Int32Array;
  private readonly lruNext: Int32Array;
  private lruHead = NIL;
  private lruTail = NIL;
  /* free handles */
  private readonly freeList: Int32Array;
  private freeTop = 0;
  private fresh = 0;
  /* per source: its flows, most recent destination first (a list through the flows), in a table by source */
  private readonly srcPrev: Int32Array;
  private readonly srcNext: Int32Array;
  /** the source entry a flow belongs to */
  private readonly srcOf: Int32Array;
  private readonly srcKey0: Uint32Array;
  private readonly srcKeyHi: Uint32Array;
  private readonly srcV6: Uint8Array;
  private readonly srcHead: Int32Array;
  private readonly srcTail: Int32Array;
  private readonly srcCount: Int32Array;
  /** flows of the source (in its list or not: the entry lives while it has any) */
  private readonly srcFlows: Int32Array;
  private readonly srcBuckets: Int32Array;
  private readonly srcNextInChain: Int32Array;
  private readonly srcFree: Int32Array;
  private srcFreeTop = 0;
  private srcFresh = 0;
  /* drop records */
  private dropReason: Int32Array;
  private dropNext: Int32Array;
  private dropPkts: Float64Array;
  private dropBytes: Float64Array;
  private dropFree = NIL;
  private dropFresh = 0;
  private readonly dropMax: number;
  /** drop reasons by index (the engine's names), and their indexes */
  readonly reasons: string[] = [];
  private readonly reasonIndex = new Map<string, number>();
  /* totals */
  evicted = 0;
  /** evicted because the table was full */
  evictedFull = 0;
  /** drops that found the drop-record pool full */
  unattributed = 0;
  /** drops by reason over every flow (packets) */
  readonly dropTotals = new Map<string, number>();
  /** called with each flow as it is evicted */
  onEvict: ((f: number, why: 'idle' | 'full') => void) | null = null;
  private readonly kSrc = new Uint32Array(4);
  private readonly kDst = new Uint32Array(4);

  constructor(cfg: FlowsConfig, seed = 1) {
    const n = cfg.max;
    this.max = n;
    this.idleUs = cfg.idle * 1e6;
    this.perSource = cfg.perSource;
    this.seed = (seed ^ 0x27d4eb2f) >>> 0;
    this.src0 = new Uint32Array(n);
    this.dst0 = new Uint32Array(n);
    this.srcHi = new Uint32Array(n * 3);
    this.dstHi = new Uint32Array(n * 3);
    this.v6 = new Uint8Array(n);
    this.hash = new Int32Array(n);
    let nb = 16;
    while (nb < n * 2) nb *= 2;
    this.buckets = new Int32Array(nb);
    this.mask = nb - 1;
    this.nextInChain = new Int32Array(n);
    this.created = new Float64Array(n);
    this.last = new Float64Array(n);
    this.pkts = new Float64Array(n);
    this.bytes = new Float64Array(n);
    this.fwdPkts = new Float64Array(n);
    this.fwdBytes = new Float64Array(n);
    this.tunPkts = new Float64Array(n);
    this.tunBytes = new Float64Array(n);
    this.dropHead = new Int32Array(n);
    this.dense = new Int32Array(n);
    this.where = new Int32Array(n);
    this.lruPrev = new Int32Array(n);
    this.lruNext = new Int32Array(n);
    this.freeList = new Int32Array(n);
    this.srcPrev = new Int32Array(n);
    this.srcNext = new Int32Array(n);
    this.srcOf = new Int32Array(n);
    this.srcKey0 = new Uint32Array(n);
    this.srcKeyHi = new Uint32Array(n * 3);
    this.srcV6 = new Uint8Array(n);
    this.srcHead = new Int32Array(n);
    this.srcTail = new Int32Array(n);
    this.srcCount = new Int32Array(n);
    this.srcFlows = new Int32Array(n);
    this.srcBuckets = new Int32Array(nb);
    this.srcNextInChain = new Int32Array(n);
    this.srcFree = new Int32Array(n);
    this.dropMax = n * 2;
    const d0 = Math.min(1024, this.dropMax);
    this.dropReason = new Int32Array(d0);
    this.dropNext = new Int32Array(d0);
    this.dropPkts = new Float64Array(d0);
    this.dropBytes = new Float64Array(d0);
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
    return (h ^ (h >>> 16)) | 0;
  }

  private sameKey(f: number, src: Uint32Array, dst: Uint32Array, v6: boolean): boolean {
    if (this.src0[f] !== src[0] || this.dst0[f] !== dst[0] || (this.v6[f] === 1) !== v6) return false;
    if (!v6) return true;
    const o = 3 * f;
    return this.srcHi[o] === src[1] && this.srcHi[o + 1] === src[2] && this.srcHi[o + 2] === src[3] && this.dstHi[o] === dst[1] && this.dstHi[o + 1] === dst[2] && this.dstHi[o + 2] === dst[3];
  }

  /* ---------------- per packet ---------------- */

  /**
   * The flow of a packet from `src` to `dst` (4 words each; IPv4 in word 0) at `nowUs` with `ipBytes` IP
   * bytes: counted, created when new (after evicting what must go). Returns its handle, or -1 when none can be
   * made (max 0).
   */
  packet(src: Uint32Array, dst: Uint32Array, v6: boolean, ipBytes: number, nowUs: number): number {
    const h = Flows.hashWords(this.seed, src, dst, v6);
    let f = this.buckets[h & this.mask]! - 1;
    while (f >= 0 && !(this.hash[f] === h && this.sameKey(f, src, dst, v6))) f = this.nextInChain[f]! - 1;
    if (f < 0) {
      f = this.create(src, dst, v6, h, nowUs);
      if (f < 0) return -1;
    } else if (nowUs - this.last[f]! > ROUGH_US) this.touch(f, nowUs);
    this.pkts[f]!++;
    this.bytes[f]! += ipBytes;
    if (this.perSource > 0) this.recentDestination(f);
    return f;
  }

  /** the LB sent a packet of flow f on: directly (nat, fnat, dr, snat) or through a tunnel */
  sent(f: number, bytes: number, tunnel: boolean): void {
    if (f < 0) return;
    if (tunnel) {
      this.tunPkts[f]!++;
      this.tunBytes[f]! += bytes;
    } else {
      this.fwdPkts[f]!++;
      this.fwdBytes[f]! += bytes;
    }
  }

  /** a packet of flow f (-1: of no flow, not counted) was dropped for `reason` */
  drop(f: number, reason: string, bytes: number): void {
    if (f < 0) return;
    this.dropTotals.set(reason, (this.dropTotals.get(reason) ?? 0) + 1);
    let ri = this.reasonIndex.get(reason);
    if (ri === undefined) {
      ri = this.reasons.length;
      this.reasons.push(reason);
      this.reasonIndex.set(reason, ri);
    }
    let d = this.dropHead[f]! - 1;
    while (d >= 0 && this.dropReason[d] !== ri) d = this.dropNext[d]! - 1;
    if (d < 0) {
      d = this.newDrop();
      if (d < 0) {
        this.unattributed++;
        return;
      }
      this.dropReason[d] = ri;
      this.dropPkts[d] = 0;
      this.dropBytes[d] = 0;
      this.dropNext[d] = this.dropHead[f]!;
      this.dropHead[f] = d + 1;
    }
    this.dropPkts[d]!++;
    this.dropBytes[d]! += bytes;
  }

  private newDrop(): number {
    if (this.dropFree !== NIL) {
      const d = this.dropFree;
      this.dropFree = this.dropNext[d]! - 1;
      return d;
    }
    if (this.dropFresh >= this.dropReason.length) {
      if (this.dropReason.length >= this.dropMax) return -1;
      const n = Math.min(this.dropMax, this.dropReason.length * 2);
      const grow = <T extends Int32Array | Float64Array>(a: T, make: (n: number) => T): T => {
        const b = make(n);
        b.set(a);
        return b;
      };
      this.dropReason = grow(this.dropReason, (k) => new Int32Array(k));
      this.dropNext = grow(this.dropNext, (k) => new Int32Array(k));
      this.dropPkts = grow(this.dropPkts, (k) => new Float64Array(k));
      this.dropBytes = grow(this.dropBytes, (k) => new Float64Array(k));
    }
    return this.dropFresh++;
  }

  /* ---------------- creation, eviction ---------------- */

  private create(src: Uint32Array, dst: Uint32Array, v6: boolean, h: number, nowUs: number): number {
    // DERP (maybeCleanOldFlowLocked): before it is added, a new flow checks two old ones, the cursor moving
    // round the dense array first, and removes one idle too long (the last flow takes its place)
    for (let i = 0; i < 2 && this.count > 0; i++) {
      if (++this.rr >= this.count) this.rr = 0;
      const old = this.dense[this.rr]!;
      if (nowUs - this.last[old]! > this.idleUs) this.evict(old, 'idle');
    }
    if (this.count >= this.max) {
      if (this.lruHead === NIL) return -1;
      this.evictedFull++;
      this.evict(this.lruHead, 'full');
    }
    const f = this.freeTop > 0 ? this.freeList[--this.freeTop]! : this.fresh++;
    this.src0[f] = src[0]!;
    this.dst0[f] = dst[0]!;
    this.v6[f] = v6 ? 1 : 0;
    if (v6) {
      const o = 3 * f;
      this.srcHi[o] = src[1]!;
      this.srcHi[o + 1] = src[2]!;
      this.srcHi[o + 2] = src[3]!;
      this.dstHi[o] = dst[1]!;
      this.dstHi[o + 1] = dst[2]!;
      this.dstHi[o + 2] = dst[3]!;
    }
    this.hash[f] = h;
    const b = h & this.mask;
    this.nextInChain[f] = this.buckets[b]!;
    this.buckets[b] = f + 1;
    this.created[f] = nowUs;
    this.last[f] = nowUs;
    this.pkts[f] = 0;
    this.bytes[f] = 0;
    this.fwdPkts[f] = 0;
    this.fwdBytes[f] = 0;
    this.tunPkts[f] = 0;
    this.tunBytes[f] = 0;
    this.dropHead[f] = 0;
    this.where[f] = this.count;
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
    this.last[f] = nowUs;
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
    // out of its hash chain
    const b = this.hash[f]! & this.mask;
    let p = this.buckets[b]! - 1;
    if (p === f) this.buckets[b] = this.nextInChain[f]!;
    else {
      while (this.nextInChain[p]! - 1 !== f) p = this.nextInChain[p]! - 1;
      this.nextInChain[p] = this.nextInChain[f]!;
    }
    // swap-remove from the dense array
    const at = this.where[f]!;
    const lastF = this.dense[--this.count]!;
    this.dense[at] = lastF;
    this.where[lastF] = at;
    this.unlinkLru(f);
    for (let d = this.dropHead[f]! - 1; d >= 0; ) {
      const n = this.dropNext[d]! - 1;
      this.dropNext[d] = this.dropFree + 1;
      this.dropFree = d;
      d = n;
    }
    this.leaveSource(f);
    this.freeList[this.freeTop++] = f;
  }

  /* ---------------- per source: the last destinations ---------------- */

  private findSource(src: Uint32Array, v6: boolean, create: boolean): number {
    let h = Math.imul(src[0]! ^ this.seed, 0x9e3779b1);
    if (v6) h = Math.imul(h ^ src[1]! ^ Math.imul(src[2]!, 0x85ebca6b) ^ src[3]!, 0xc2b2ae35);
    const b = (h ^ (h >>> 15)) & this.mask;
    for (let s = this.srcBuckets[b]! - 1; s >= 0; s = this.srcNextInChain[s]! - 1) {
      if (this.srcKey0[s] !== src[0] || (this.srcV6[s] === 1) !== v6) continue;
      if (v6) {
        const o = 3 * s;
        if (this.srcKeyHi[o] !== src[1] || this.srcKeyHi[o + 1] !== src[2] || this.srcKeyHi[o + 2] !== src[3]) continue;
      }
      return s;
    }
    if (!create) return -1;
    const s = this.srcFreeTop > 0 ? this.srcFree[--this.srcFreeTop]! : this.srcFresh++;
    this.srcKey0[s] = src[0]!;
    this.srcV6[s] = v6 ? 1 : 0;
    if (v6) this.srcKeyHi.set(src.subarray(1, 4), 3 * s);
    this.srcHead[s] = NIL;
    this.srcTail[s] = NIL;
    this.srcCount[s] = 0;
    this.srcFlows[s] = 0;
    this.srcNextInChain[s] = this.srcBuckets[b]!;
    this.srcBuckets[b] = s + 1;
    return s;
  }

  private joinSource(f: number, src: Uint32Array, v6: boolean): void {
    const s = this.findSource(src, v6, true);
    this.srcOf[f] = s;
    this.srcFlows[s]!++;
    this.srcPrev[f] = NIL;
    this.srcNext[f] = NIL;
    if (this.perSource > 0) this.pushFront(s, f);
  }

  /** flow f had a packet: its destination is its source's most recent */
  private recentDestination(f: number): void {
    const s = this.srcOf[f]!;
    if (this.srcHead[s] === f) return;
    const inList = this.srcPrev[f] !== NIL || this.srcTail[s] === f;
    if (inList) this.unlinkSrc(s, f);
    this.pushFront(s, f);
  }

  private pushFront(s: number, f: number): void {
    this.srcPrev[f] = NIL;
    this.srcNext[f] = this.srcHead[s]!;
    if (this.srcHead[s] !== NIL) this.srcPrev[this.srcHead[s]!] = f;
    else this.srcTail[s] = f;
    this.srcHead[s] = f;
    if (++this.srcCount[s]! > this.perSource) this.unlinkSrc(s, this.srcTail[s]!); // the oldest leaves the list (not the table)
  }

  private unlinkSrc(s: number, f: number): void {
    const p = this.srcPrev[f]!;
    const n = this.srcNext[f]!;
    if (p !== NIL) this.srcNext[p] = n;
    else this.srcHead[s] = n;
    if (n !== NIL) this.srcPrev[n] = p;
    else this.srcTail[s] = p;
    this.srcPrev[f] = NIL;
    this.srcNext[f] = NIL;
    this.srcCount[s]!--;
  }

  private leaveSource(f: number): void {
    const s = this.srcOf[f]!;
    if (this.srcHead[s] === f || this.srcPrev[f] !== NIL) this.unlinkSrc(s, f);
    if (--this.srcFlows[s]! > 0) return;
    // the source's last flow: the entry goes
    const h0 = this.srcKey0[s]!;
    let h = Math.imul(h0 ^ this.seed, 0x9e3779b1);
    if (this.srcV6[s]) {
      const o = 3 * s;
      h = Math.imul(h ^ this.srcKeyHi[o]! ^ Math.imul(this.srcKeyHi[o + 1]!, 0x85ebca6b) ^ this.srcKeyHi[o + 2]!, 0xc2b2ae35);
    }
    const b = (h ^ (h >>> 15)) & this.mask;
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
    const w = this.where[f]!;
    return w < this.count && this.dense[w] === f;
  }

  /** live flow handles (dense order) */
  *handles(): Generator<number> {
    for (let i = 0; i < this.count; i++) yield this.dense[i]!;
  }

  /** the flow of (src, dst), or -1 */
  find(src: Uint32Array, dst: Uint32Array, v6: boolean): number {
    const h = Flows.hashWords(this.seed, src, dst, v6);
    let f = this.buckets[h & this.mask]! - 1;
    while (f >= 0 && !(this.hash[f] === h && this.sameKey(f, src, dst, v6))) f = this.nextInChain[f]! - 1;
    return f;
  }

  addrOf(f: number, which: 'src' | 'dst', out: Uint32Array): boolean {
    out[0] = which === 'src' ? this.src0[f]! : this.dst0[f]!;
    const v6 = this.v6[f] === 1;
    const hi = which === 'src' ? this.srcHi : this.dstHi;
    for (let i = 1; i < 4; i++) out[i] = v6 ? hi[3 * f + i - 1]! : 0;
    return v6;
  }

  isV6(f: number): boolean {
    return this.v6[f] === 1;
  }

  /** counts of flow f: [pkts, bytes, fwd_pkts, fwd_bytes, tun_pkts, tun_bytes], first and rough last activity (µs) */
  countsOf(f: number): { pkts: number; bytes: number; fwdPkts: number; fwdBytes: number; tunPkts: number; tunBytes: number; createdUs: number; lastUs: number } {
    return { pkts: this.pkts[f]!, bytes: this.bytes[f]!, fwdPkts: this.fwdPkts[f]!, fwdBytes: this.fwdBytes[f]!, tunPkts: this.tunPkts[f]!, tunBytes: this.tunBytes[f]!, createdUs: this.created[f]!, lastUs: this.last[f]! };
  }

  /** drops of flow f by reason: packets and bytes */
  dropsOf(f: number): { pkts: Record<string, number>; bytes: Record<string, number> } {
    const pkts: Record<string, number> = {};
    const bytes: Record<string, number> = {};
    for (let d = this.dropHead[f]! - 1; d >= 0; d = this.dropNext[d]! - 1) {
      const r = this.reasons[this.dropReason[d]!]!;
      pkts[r] = this.dropPkts[d]!;
      bytes[r] = this.dropBytes[d]!;
    }
    return { pkts, bytes };
  }

  /** total drops of flow f (packets) */
  dropCountOf(f: number): number {
    let n = 0;
    for (let d = this.dropHead[f]! - 1; d >= 0; d = this.dropNext[d]! - 1) n += this.dropPkts[d]!;
    return n;
  }

  /** temporary address words for callers that format (not kept) */
  get scratch(): [Uint32Array, Uint32Array] {
    return [this.kSrc, this.kDst];
  }
}
