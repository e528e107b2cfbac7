/**
 * Connection table: struct of arrays addressed by integer handle, and one hash index holding every
 * connection twice — entry 2h for its original tuple, 2h+1 for its reply tuple — so one probe with a
 * packet's tuple yields the connection and the packet's direction (nf_conntrack's tuplehash[2] layout).
 *
 * - Tuples: 4 words per connection side by side in `tup` (word 0 of each address, both ports in one word, L4
 *   protocol and flags), so a match reads one cache line; words 1-3 of IPv6 addresses in `srcHi`/`dstHi`
 *   (indexed by handle, touched only by IPv6 connections, so an IPv4 table never commits those pages). The
 *   reply tuple is the inverse of the original (ports swapped; ICMP: same id, inverted query type), or for a
 *   NAT connection stored in `rtup` (same layout).
 * - Hash: seeded, mixes 32-bit words with Math.imul (murmur3 fmix32 finaliser). No string keys.
 * - Index: chained (bucket heads in an Int32Array; one `next` link and the hash per entry, beside the tuple in `tup`; stored +1 so zero = end).
 *   By default the bucket array is sized for the capacity at start (at most one entry per bucket when
 *   full), like nf_conntrack's and DPVS's fixed hash; its pages are committed only as entries land in them.
 *   A table created with fewer buckets doubles them when chains average 2 entries, migrating a few old
 *   buckets per insert (incremental rehash: no pause proportional to the table size).
 * - Rows are allocated for `capacity` connections up front; untouched pages are never committed, so memory
 *   grows with the connections actually tracked. Freed handles go on a free list threaded through the
 *   (then unused) `next` link of their first entry.
 */

import { icmpInverse } from '../proto/icmp.js';

export const F_V6 = 0x01;
export const F_USED = 0x02;
/** the reply tuple is stored (load balancing: the server answers, not the original destination) */
export const F_NAT = 0x04;

/**
 * ConnTable.tup: 8 words per connection (32 bytes, two connections per cache line), the index links of its
 * two entries beside its original tuple, so one line serves a chain step and the tuple compare:
 * [8c + 0] next entry + 1 of entry 2c (0 = end), [8c + 1] hash of entry 2c, T_SRC, T_DST,
 * [8c + 4] next of entry 2c + 1, [8c + 5] its hash, T_PORTS, T_META; entry e's link is at 4e, its hash at 4e + 1.
 */
export const T_STRIDE = 8;
export const T_SRC = 2;
export const T_DST = 3;
export const T_PORTS = 6;
export const T_META = 7;

/** reply-direction "dport" for ICMP keys (type << 8 | code): the inverted query type (`v6`: ICMPv6 types) */
export function icmpReplyKey(v6: boolean, typeCode: number): number {
  const inv = icmpInverse(v6, typeCode >>> 8);
  return inv < 0 ? typeCode : (inv << 8) | (typeCode & 0xff);
}

/** both ports of a tuple in one word, as T_PORTS holds them */
function portsWord(sport: number, dport: number): number {
  return ((sport << 16) | dport) >>> 0;
}

function isIcmp(p: number): boolean {
  return p === 1 || p === 58;
}

/** A lookup key, filled by the caller from a packet (reused, no allocation). */
export class TupleKey {
  v6 = false;
  readonly src = new Uint32Array(4);
  readonly dst = new Uint32Array(4);
  /** ports; ICMP: sport = id, dport = type << 8 | code */
  sport = 0;
  dport = 0;
  proto = 0;
  /**
   * set by hashKey: the 32 bits as an int32 (a number above 2^31 stored in a field is a new heap number per
   * store: measured 8 bytes allocated per packet, half the hashes, when this was a uint32)
   */
  hash = 0;
}

export class ConnTable {
  readonly capacity: number;
  /**
   * The original tuple and the index links (layout at T_STRIDE): T_SRC word 0 of the source address, T_DST of
   * the destination, T_PORTS sport << 16 | dport (ICMP: id << 16 | type << 8 | code), T_META L4 protocol |
   * flags (F_*) << 8.
   */
  readonly tup: Uint32Array;
  /** the stored reply tuple of F_NAT connections (touched only by them), same offsets; the other words unused */
  readonly rtup: Uint32Array;
  /** words 1-3 of IPv6 addresses, [3c .. 3c+2] */
  readonly srcHi: Uint32Array;
  readonly dstHi: Uint32Array;
  readonly rsrcHi: Uint32Array;
  readonly rdstHi: Uint32Array;
  private buckets: Int32Array;
  private mask: number;
  private old: Int32Array | null = null;
  private oldMask = 0;
  private migratePos = 0;
  private readonly maxBuckets: number;
  private freeHead = 0; // handle + 1
  private fresh = 0; // next never-used handle
  count = 0;
  /** bucket rehash migrations performed (for the stats) */
  rehashes = 0;

  constructor(
    capacity: number,
    readonly seed: number,
    /** default: sized up front for at most one entry per bucket when full (as nf_conntrack and DPVS size their hash at start-up: no rehash) */
    initialBuckets = capacity * 2,
  ) {
    this.capacity = capacity;
    this.tup = new Uint32Array(capacity * T_STRIDE);
    this.rtup = new Uint32Array(capacity * T_STRIDE);
    this.srcHi = new Uint32Array(capacity * 3);
    this.dstHi = new Uint32Array(capacity * 3);
    this.rsrcHi = new Uint32Array(capacity * 3);
    this.rdstHi = new Uint32Array(capacity * 3);
    let nb = 16;
    while (nb < initialBuckets) nb *= 2;
    let maxB = 16;
    while (maxB < capacity * 2) maxB *= 2;
    this.maxBuckets = maxB;
    this.buckets = new Int32Array(nb);
    this.mask = nb - 1;
  }

  get bucketCount(): number {
    return this.buckets.length;
  }

  /* ---------------- fields of a connection ---------------- */

  protoOf(c: number): number {
    return this.tup[T_STRIDE * c + T_META]! & 0xff;
  }

  flagsOf(c: number): number {
    return this.tup[T_STRIDE * c + T_META]! >>> 8;
  }

  isV6(c: number): boolean {
    return (this.tup[T_STRIDE * c + T_META]! & (F_V6 << 8)) !== 0;
  }

  /** original source port (ICMP: id) */
  sportOf(c: number): number {
    return this.tup[T_STRIDE * c + T_PORTS]! >>> 16;
  }

  /** original destination port (ICMP: type << 8 | code) */
  dportOf(c: number): number {
    return this.tup[T_STRIDE * c + T_PORTS]! & 0xffff;
  }

  /** stored reply tuple (F_NAT): source port (the server's) */
  rsportOf(c: number): number {
    return this.rtup[T_STRIDE * c + T_PORTS]! >>> 16;
  }

  /** stored reply tuple (F_NAT): destination port */
  rdportOf(c: number): number {
    return this.rtup[T_STRIDE * c + T_PORTS]! & 0xffff;
  }

  /* ---------------- hashing ---------------- */

  static mix(h: number, k: number): number {
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    return (Math.imul(h, 5) + 0xe6546b64) | 0;
  }

  static fmix(h: number): number {
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return h ^ (h >>> 16);
  }

  /**
   * Hash the key (stored in key.hash). The hash is symmetric: the two endpoints are put in a fixed order
   * (and an ICMP query type and its reply type count as one) before mixing, so a tuple and its inverse hash
   * alike. Both index entries of a connection therefore share one bucket (one cache line to touch on
   * insert), while matching stays directional, so a probe still yields the packet's direction.
   */
  hashKey(k: TupleKey): number {
    if (isIcmp(k.proto) || k.v6) return this.hashKeyWords(k);
    // IPv4 TCP/UDP: order the endpoints (address, then port) so that (s, sp, d, dp) and (d, dp, s, sp) agree
    const mix = ConnTable.mix;
    const s = k.src[0]!;
    const d = k.dst[0]!;
    const sp = k.sport;
    const dp = k.dport;
    const swap = s !== d ? s > d : sp > dp;
    let h = mix(this.seed ^ k.proto, swap ? d : s);
    h = mix(h, swap ? s : d);
    h = mix(h, swap ? (dp << 16) | sp : (sp << 16) | dp);
    return (k.hash = ConnTable.fmix(h));
  }

  /** hashKey() for ICMP and IPv6 keys */
  private hashKeyWords(k: TupleKey): number {
    const mix = ConnTable.mix;
    const s = k.src;
    const d = k.dst;
    let sp = k.sport;
    let dp = k.dport;
    let h = this.seed ^ k.proto;
    if (isIcmp(k.proto)) {
      // sport is the id on both sides; dport is type << 8 | code: use the lower of the type and its inverse
      const inv = icmpReplyKey(k.proto === 58, dp);
      if (inv < dp) dp = inv;
      h = mix(h, s[0]! ^ d[0]!);
      h = mix(h, (s[0]! + d[0]!) | 0);
      if (k.v6) {
        for (let i = 1; i < 4; i++) {
          h = mix(h, s[i]! ^ d[i]!);
          h = mix(h, (s[i]! + d[i]!) | 0);
        }
      }
      h = mix(h, (sp << 16) | dp);
      return (k.hash = ConnTable.fmix(h));
    }
    // order the endpoints (address words, then port) so that (s, sp, d, dp) and (d, dp, s, sp) agree
    let swap = false;
    if (s[0] !== d[0]) swap = s[0]! > d[0]!;
    else if (s[1] !== d[1]) swap = s[1]! > d[1]!;
    else if (s[2] !== d[2]) swap = s[2]! > d[2]!;
    else if (s[3] !== d[3]) swap = s[3]! > d[3]!;
    else swap = sp > dp;
    const a = swap ? d : s;
    const b = swap ? s : d;
    if (swap) {
      const t = sp;
      sp = dp;
      dp = t;
    }
    h = mix(h, a[0]!);
    h = mix(h, b[0]!);
    h = mix(h, a[1]!);
    h = mix(h, a[2]!);
    h = mix(h, a[3]!);
    h = mix(h, b[1]!);
    h = mix(h, b[2]!);
    h = mix(h, b[3]!);
    h = mix(h, (sp << 16) | dp);
    return (k.hash = ConnTable.fmix(h));
  }

  /** Copy the stored reply tuple's address (source = the server, destination = the client) into `out`. */
  replyAddrWords(c: number, which: 'src' | 'dst', out: Uint32Array): void {
    this.copyAddr(this.rtup, which === 'src' ? T_SRC : T_DST, which === 'src' ? this.rsrcHi : this.rdstHi, c, out);
  }

  private copyAddr(t: Uint32Array, word: number, hi: Uint32Array, c: number, out: Uint32Array): void {
    out[0] = t[T_STRIDE * c + word]!;
    const v6 = this.isV6(c);
    out[1] = v6 ? hi[c * 3]! : 0;
    out[2] = v6 ? hi[c * 3 + 1]! : 0;
    out[3] = v6 ? hi[c * 3 + 2]! : 0;
  }

  /**
   * Insert handle c with original tuple k and an explicit reply tuple r (hashed: r.hash), for connections
   * whose answers come from elsewhere than the original destination (NAT to a real server).
   */
  insertNat(c: number, k: TupleKey, r: TupleKey): void {
    const t = this.rtup;
    t[T_STRIDE * c + T_SRC] = r.src[0]!;
    t[T_STRIDE * c + T_DST] = r.dst[0]!;
    t[T_STRIDE * c + T_PORTS] = portsWord(r.sport, r.dport);
    if (r.v6) {
      const o = c * 3;
      for (let i = 0; i < 3; i++) {
        this.rsrcHi[o + i] = r.src[i + 1]!;
        this.rdstHi[o + i] = r.dst[i + 1]!;
      }
    }
    this.fill(c, k, F_NAT);
    this.index(c, k.hash, r.hash);
  }

  /** Index both entries of handle c (the original entry ahead of the reply when they share a chain). */
  private index(c: number, origHash: number, replyHash: number): void {
    this.tup[4 * (2 * c) + 1] = origHash; // entry e: link at 4e, hash at 4e + 1
    this.tup[4 * (2 * c + 1) + 1] = replyHash;
    this.link(c * 2 + 1, replyHash);
    this.link(c * 2, origHash);
    this.count++;
    this.grow();
  }

  /** Copy connection c's address (original source, or destination) into `out` (4 words). */
  addrWords(c: number, which: 'src' | 'dst', out: Uint32Array): void {
    this.copyAddr(this.tup, which === 'src' ? T_SRC : T_DST, which === 'src' ? this.srcHi : this.dstHi, c, out);
  }

  /* ---------------- lookup ---------------- */

  /** Is connection c's original tuple its own reverse (then both index entries carry the same tuple)? */
  private selfInverse(c: number): boolean {
    const t = this.tup;
    const o4 = T_STRIDE * c;
    if (t[o4 + T_SRC] !== t[o4 + T_DST] || this.sportOf(c) !== this.dportOf(c) || isIcmp(this.protoOf(c))) return false;
    if (!this.isV6(c)) return true;
    const o = c * 3;
    return this.srcHi[o] === this.dstHi[o] && this.srcHi[o + 1] === this.dstHi[o + 1] && this.srcHi[o + 2] === this.dstHi[o + 2];
  }

  /** Does entry e carry exactly the tuple of `k`? */
  private matches(e: number, k: TupleKey): boolean {
    const c = e >>> 1;
    const t = this.tup;
    const o4 = T_STRIDE * c;
    const meta = t[o4 + T_META]!;
    if ((meta & 0xff) !== k.proto || ((meta & (F_V6 << 8)) !== 0) !== k.v6) return false;
    const ks = k.src;
    const kd = k.dst;
    let a: number;
    let b: number;
    let ah: Uint32Array;
    let bh: Uint32Array;
    if ((e & 1) === 0) {
      if (t[o4 + T_PORTS] !== portsWord(k.sport, k.dport)) return false;
      a = t[o4 + T_SRC]!;
      b = t[o4 + T_DST]!;
      ah = this.srcHi;
      bh = this.dstHi;
    } else if (meta & (F_NAT << 8)) {
      const r = this.rtup;
      if (r[o4 + T_PORTS] !== portsWord(k.sport, k.dport)) return false;
      a = r[o4 + T_SRC]!;
      b = r[o4 + T_DST]!;
      ah = this.rsrcHi;
      bh = this.rdstHi;
    } else {
      // the reply tuple is the original inverted: for TCP/UDP exactly isReverse()
      if (!isIcmp(k.proto)) return this.isReverse(c, k);
      const ports = t[o4 + T_PORTS]!;
      if (ports >>> 16 !== k.sport || icmpReplyKey(k.proto === 58, ports & 0xffff) !== k.dport) return false;
      a = t[o4 + T_DST]!;
      b = t[o4 + T_SRC]!;
      ah = this.dstHi;
      bh = this.srcHi;
    }
    if (a !== ks[0] || b !== kd[0]) return false;
    if (k.v6) {
      const o = c * 3;
      if (ah[o] !== ks[1] || ah[o + 1] !== ks[2] || ah[o + 2] !== ks[3]) return false;
      if (bh[o] !== kd[1] || bh[o + 1] !== kd[2] || bh[o + 2] !== kd[3]) return false;
    }
    return true;
  }

  private wArr: Int32Array = new Int32Array(0);
  private wIdx = 0;

  /** set wArr/wIdx to the bucket array and index holding hash `h` now (old table while not yet migrated) */
  private where(h: number): void {
    const old = this.old;
    if (old !== null) {
      const ob = h & this.oldMask;
      if (ob >= this.migratePos) {
        this.wArr = old;
        this.wIdx = ob;
        return;
      }
    }
    this.wArr = this.buckets;
    this.wIdx = h & this.mask;
  }

  /** Find the entry for key `k` (hash it first with hashKey). Returns entry (2h+dir) or -1. */
  lookup(k: TupleKey): number {
    const h = k.hash;
    let arr = this.buckets;
    let b = h & this.mask;
    const old = this.old;
    if (old !== null && (h & this.oldMask) >= this.migratePos) {
      arr = old;
      b = h & this.oldMask;
    }
    const ch = this.tup;
    const hs = h >>> 0;
    this.reverse = -1;
    for (let e = arr[b]! - 1; e >= 0; e = ch[4 * e]! - 1) {
      if (ch[4 * e + 1] !== hs) continue;
      if (this.matches(e, k)) {
        // a tuple equal to its own reverse (same address and port both ways) matches both entries: original
        if (e & 1 && !(this.flagsOf(e >>> 1) & F_NAT) && this.selfInverse(e >>> 1)) return e - 1;
        return e;
      }
      // the hash is symmetric: an original tuple that is k reversed sits in this chain too
      if ((e & 1) === 0 && this.isReverse(e >>> 1, k)) this.reverse = e;
    }
    return -1;
  }

  /**
   * Set by lookup() when it finds nothing: the original entry (2h) of a TCP/UDP connection whose original
   * tuple is the looked-up tuple reversed (a NAT connection's reply seen untranslated), else -1.
   */
  reverse = -1;

  /** Is `k` connection c's original TCP/UDP tuple reversed? */
  private isReverse(c: number, k: TupleKey): boolean {
    const t = this.tup;
    const o4 = T_STRIDE * c;
    const meta = t[o4 + T_META]!;
    if ((meta & 0xff) !== k.proto || isIcmp(k.proto) || t[o4 + T_PORTS] !== portsWord(k.dport, k.sport)) return false;
    if (t[o4 + T_DST] !== k.src[0] || t[o4 + T_SRC] !== k.dst[0] || ((meta & (F_V6 << 8)) !== 0) !== k.v6) return false;
    if (!k.v6) return true;
    const o = c * 3;
    const ks = k.src;
    const kd = k.dst;
    const dh = this.dstHi;
    const sh = this.srcHi;
    return dh[o] === ks[1] && dh[o + 1] === ks[2] && dh[o + 2] === ks[3] && sh[o] === kd[1] && sh[o + 1] === kd[2] && sh[o + 2] === kd[3];
  }

  /* ---------------- insert / remove ---------------- */

  /** true when the last alloc() returned a handle used before (its rows hold old values) */
  reused = false;

  /** Take a free handle, or -1 when the table is full. */
  alloc(): number {
    let c: number;
    if (this.freeHead !== 0) {
      c = this.freeHead - 1;
      this.freeHead = this.tup[4 * (2 * c)]!;
      this.tup[4 * (2 * c)] = 0;
      this.reused = true;
    } else if (this.fresh < this.capacity) {
      c = this.fresh++;
      this.reused = false; // never used: every row is still zero
    } else return -1;
    return c;
  }

  /** Write the original tuple of handle c. */
  private fill(c: number, k: TupleKey, extra: number): void {
    const t = this.tup;
    const o4 = T_STRIDE * c;
    t[o4 + T_SRC] = k.src[0]!;
    t[o4 + T_DST] = k.dst[0]!;
    if (k.v6) {
      const o = c * 3;
      this.srcHi[o] = k.src[1]!;
      this.srcHi[o + 1] = k.src[2]!;
      this.srcHi[o + 2] = k.src[3]!;
      this.dstHi[o] = k.dst[1]!;
      this.dstHi[o + 1] = k.dst[2]!;
      this.dstHi[o + 2] = k.dst[3]!;
    }
    t[o4 + T_PORTS] = portsWord(k.sport, k.dport);
    t[o4 + T_META] = k.proto | (((k.v6 ? F_V6 : 0) | F_USED | extra) << 8);
  }

  /** Fill the original tuple of handle c from key k and index both directions (reply = the inverse). */
  insert(c: number, k: TupleKey): void {
    this.fill(c, k, 0);
    // the reply tuple is the inverse of the original: the symmetric hash is the same
    this.index(c, k.hash, k.hash);
  }

  private link(e: number, h: number): void {
    if (this.old === null) {
      const b = h & this.mask;
      this.tup[4 * e] = this.buckets[b]!;
      this.buckets[b] = e + 1;
      return;
    }
    this.where(h);
    const arr = this.wArr;
    const b = this.wIdx;
    this.tup[4 * e] = arr[b]!;
    arr[b] = e + 1;
  }

  private unlink(e: number): void {
    this.where(this.tup[4 * e + 1]! >>> 0);
    const arr = this.wArr;
    const b = this.wIdx;
    let p = arr[b]! - 1;
    if (p === e) {
      arr[b] = this.tup[4 * e]!;
      return;
    }
    while (p >= 0) {
      const n = this.tup[4 * p]! - 1;
      if (n === e) {
        this.tup[4 * p] = this.tup[4 * e]!;
        return;
      }
      p = n;
    }
    throw new Error(`conntrack table: entry ${e} not found in its chain`);
  }

  /** Give back a handle taken by alloc() that was never inserted. */
  release(c: number): void {
    this.tup[T_STRIDE * c + T_META] = 0;
    this.tup[4 * (2 * c)] = this.freeHead;
    this.freeHead = c + 1;
  }

  /** Remove handle c from the index and put it on the free list. */
  remove(c: number): void {
    this.unlink(c * 2);
    this.unlink(c * 2 + 1);
    this.tup[T_STRIDE * c + T_META] = 0;
    this.tup[4 * (2 * c)] = this.freeHead;
    this.tup[4 * (2 * c + 1)] = 0;
    this.freeHead = c + 1;
    this.count--;
  }

  isUsed(c: number): boolean {
    return (this.tup[T_STRIDE * c + T_META]! & (F_USED << 8)) !== 0;
  }

  /** handles ever allocated (iteration bound) */
  get highWater(): number {
    return this.fresh;
  }

  /* ---------------- incremental growth ---------------- */

  private grow(): void {
    if (this.old !== null) {
      this.migrate(8);
      return;
    }
    const nb = this.buckets.length;
    if (this.count * 2 > nb * 2 && nb < this.maxBuckets) {
      this.old = this.buckets;
      this.oldMask = this.mask;
      this.migratePos = 0;
      this.buckets = new Int32Array(nb * 2);
      this.mask = nb * 2 - 1;
      this.rehashes++;
      this.migrate(8);
    }
  }

  private migrate(n: number): void {
    const old = this.old!;
    for (let i = 0; i < n && this.migratePos < old.length; i++) {
      const b = this.migratePos;
      let e = old[b]! - 1;
      old[b] = 0;
      this.migratePos++; // entries of this bucket now belong to the new table
      while (e >= 0) {
        const nx = this.tup[4 * e]! - 1;
        const nbk = this.tup[4 * e + 1]! & this.mask;
        this.tup[4 * e] = this.buckets[nbk]!;
        this.buckets[nbk] = e + 1;
        e = nx;
      }
    }
    if (this.migratePos >= old.length) this.old = null;
  }

  /**
   * Early drop (nf_conntrack early_drop): look at the chains of up to `buckets` buckets from the one of
   * hash `h` for a connection `evictable` accepts. Returns the handle or -1.
   */
  findEvictable(h: number, buckets: number, evictable: (c: number) => boolean): number {
    for (let i = 0; i < buckets; i++) {
      this.where((h + i) >>> 0);
      const arr = this.wArr;
      for (let e = arr[this.wIdx]! - 1; e >= 0; e = this.tup[4 * e]! - 1) {
        const c = e >>> 1;
        if (evictable(c)) return c;
      }
    }
    return -1;
  }
}

/** a jitter in [0, 1 s) in µs from a hash and a time: the same for the same connection made at the same time */
export function jitterUs(hash: number, nowUs: number): number {
  const t = ConnTable.fmix((nowUs % 4294967296) ^ Math.floor(nowUs / 4294967296) ^ 0x2545f491);
  return (ConnTable.fmix(hash ^ t) >>> 0) % 1000000;
}
