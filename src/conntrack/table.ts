/**
 * Connection table: struct of arrays addressed by integer handle, and one hash index holding every
 * connection twice — entry 2h for its original tuple, 2h+1 for its reply tuple — so one probe with a
 * packet's tuple yields the connection and the packet's direction (nf_conntrack's tuplehash[2] layout).
 *
 * - Tuples: addresses as 32-bit words (IPv4 in word 0, IPv6 in words 0-3), ports, L4 protocol. The reply
 *   tuple is the inverse of the original (ports swapped; ICMP: same id, inverted query type).
 * - Hash: seeded, mixes 32-bit words with Math.imul (murmur3 fmix32 finaliser). No string keys.
 * - Index: chained (bucket heads + one `next` link per entry, all Int32Array, stored +1 so zero = end).
 *   When chains average 2 entries the bucket array doubles, migrating a few old buckets per insert
 *   (incremental rehash: no pause proportional to the table size).
 * - Rows are allocated for `capacity` connections up front; untouched pages are never committed, so memory
 *   grows with the connections actually tracked. Freed handles go on a free list threaded through the
 *   (then unused) `next` link of their first entry.
 */

import { icmpInverse } from '../proto/icmp.js';

export const F_V6 = 0x01;
export const F_USED = 0x02;

/** reply-direction "dport" for ICMP keys (type << 8 | code): the inverted query type (`v6`: ICMPv6 types) */
export function icmpReplyKey(v6: boolean, typeCode: number): number {
  const inv = icmpInverse(v6, typeCode >>> 8);
  return inv < 0 ? typeCode : (inv << 8) | (typeCode & 0xff);
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
  hash = 0;
}

export class ConnTable {
  readonly capacity: number;
  readonly src: Uint32Array;
  readonly dst: Uint32Array;
  readonly sport: Uint16Array;
  readonly dport: Uint16Array;
  readonly proto: Uint8Array;
  readonly flags: Uint8Array;
  /** chain links, one per entry (2 per connection), +1 encoded */
  private readonly hnext: Int32Array;
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
    initialBuckets = 1024,
  ) {
    this.capacity = capacity;
    this.src = new Uint32Array(capacity * 4);
    this.dst = new Uint32Array(capacity * 4);
    this.sport = new Uint16Array(capacity);
    this.dport = new Uint16Array(capacity);
    this.proto = new Uint8Array(capacity);
    this.flags = new Uint8Array(capacity);
    this.hnext = new Int32Array(capacity * 2);
    let nb = 16;
    while (nb < initialBuckets) nb *= 2;
    let maxB = 16;
    while (maxB < capacity) maxB *= 2;
    this.maxBuckets = maxB;
    this.buckets = new Int32Array(nb);
    this.mask = nb - 1;
  }

  get bucketCount(): number {
    return this.buckets.length;
  }

  /* ---------------- hashing ---------------- */

  private static mix(h: number, k: number): number {
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    return (Math.imul(h, 5) + 0xe6546b64) | 0;
  }

  private static fmix(h: number): number {
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  }

  private hashWords(v6: boolean, s: Uint32Array, so: number, d: Uint32Array, dOff: number, sp: number, dp: number, proto: number): number {
    const mix = ConnTable.mix;
    let h = this.seed ^ proto;
    h = mix(h, s[so]!);
    h = mix(h, d[dOff]!);
    if (v6) {
      h = mix(h, s[so + 1]!);
      h = mix(h, s[so + 2]!);
      h = mix(h, s[so + 3]!);
      h = mix(h, d[dOff + 1]!);
      h = mix(h, d[dOff + 2]!);
      h = mix(h, d[dOff + 3]!);
    }
    h = mix(h, (sp << 16) | dp);
    return ConnTable.fmix(h);
  }

  /** Hash the key (stored in key.hash). */
  hashKey(k: TupleKey): number {
    return (k.hash = this.hashWords(k.v6, k.src, 0, k.dst, 0, k.sport, k.dport, k.proto));
  }

  /** Hash of index entry e (2h = original tuple, 2h+1 = reply tuple). */
  private entryHash(e: number): number {
    const c = e >>> 1;
    const v6 = (this.flags[c]! & F_V6) !== 0;
    const p = this.proto[c]!;
    if ((e & 1) === 0) return this.hashWords(v6, this.src, c * 4, this.dst, c * 4, this.sport[c]!, this.dport[c]!, p);
    if (isIcmp(p)) return this.hashWords(v6, this.dst, c * 4, this.src, c * 4, this.sport[c]!, icmpReplyKey(p === 58, this.dport[c]!), p);
    return this.hashWords(v6, this.dst, c * 4, this.src, c * 4, this.dport[c]!, this.sport[c]!, p);
  }

  /* ---------------- lookup ---------------- */

  /** Does entry e carry exactly the tuple of `k`? */
  private matches(e: number, k: TupleKey): boolean {
    const c = e >>> 1;
    if (this.proto[c] !== k.proto) return false;
    const v6 = (this.flags[c]! & F_V6) !== 0;
    if (v6 !== k.v6) return false;
    const o = c * 4;
    const ks = k.src;
    const kd = k.dst;
    let a: Uint32Array;
    let b: Uint32Array;
    if ((e & 1) === 0) {
      if (this.sport[c] !== k.sport || this.dport[c] !== k.dport) return false;
      a = this.src;
      b = this.dst;
    } else {
      if (isIcmp(k.proto)) {
        if (this.sport[c] !== k.sport || icmpReplyKey(k.proto === 58, this.dport[c]!) !== k.dport) return false;
      } else if (this.dport[c] !== k.sport || this.sport[c] !== k.dport) return false;
      a = this.dst;
      b = this.src;
    }
    if (a[o] !== ks[0] || b[o] !== kd[0]) return false;
    if (v6) {
      if (a[o + 1] !== ks[1] || a[o + 2] !== ks[2] || a[o + 3] !== ks[3]) return false;
      if (b[o + 1] !== kd[1] || b[o + 2] !== kd[2] || b[o + 3] !== kd[3]) return false;
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
    for (let e = arr[b]! - 1; e >= 0; e = this.hnext[e]! - 1) {
      if (this.matches(e, k)) return e;
    }
    return -1;
  }

  /* ---------------- insert / remove ---------------- */

  /** Take a free handle, or -1 when the table is full. */
  alloc(): number {
    let c: number;
    if (this.freeHead !== 0) {
      c = this.freeHead - 1;
      this.freeHead = this.hnext[c * 2]!;
      this.hnext[c * 2] = 0;
    } else if (this.fresh < this.capacity) {
      c = this.fresh++;
    } else return -1;
    return c;
  }

  /** Fill the original tuple of handle c from key k and index both directions. */
  insert(c: number, k: TupleKey): void {
    const o = c * 4;
    this.src[o] = k.src[0]!;
    this.dst[o] = k.dst[0]!;
    if (k.v6) {
      this.src[o + 1] = k.src[1]!;
      this.src[o + 2] = k.src[2]!;
      this.src[o + 3] = k.src[3]!;
      this.dst[o + 1] = k.dst[1]!;
      this.dst[o + 2] = k.dst[2]!;
      this.dst[o + 3] = k.dst[3]!;
    }
    this.sport[c] = k.sport;
    this.dport[c] = k.dport;
    this.proto[c] = k.proto;
    this.flags[c] = (k.v6 ? F_V6 : 0) | F_USED;
    this.link(c * 2, k.hash);
    this.link(c * 2 + 1, this.entryHash(c * 2 + 1));
    this.count++;
    this.grow();
  }

  private link(e: number, h: number): void {
    this.where(h);
    const arr = this.wArr;
    const b = this.wIdx;
    this.hnext[e] = arr[b]!;
    arr[b] = e + 1;
  }

  private unlink(e: number): void {
    this.where(this.entryHash(e));
    const arr = this.wArr;
    const b = this.wIdx;
    let p = arr[b]! - 1;
    if (p === e) {
      arr[b] = this.hnext[e]!;
      return;
    }
    while (p >= 0) {
      const n = this.hnext[p]! - 1;
      if (n === e) {
        this.hnext[p] = this.hnext[e]!;
        return;
      }
      p = n;
    }
    throw new Error(`conntrack table: entry ${e} not found in its chain`);
  }

  /** Remove handle c from the index and put it on the free list. */
  remove(c: number): void {
    this.unlink(c * 2);
    this.unlink(c * 2 + 1);
    this.flags[c] = 0;
    this.hnext[c * 2] = this.freeHead;
    this.hnext[c * 2 + 1] = 0;
    this.freeHead = c + 1;
    this.count--;
  }

  isUsed(c: number): boolean {
    return (this.flags[c]! & F_USED) !== 0;
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
        const nx = this.hnext[e]! - 1;
        const nbk = this.entryHash(e) & this.mask;
        this.hnext[e] = this.buckets[nbk]!;
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
      for (let e = arr[this.wIdx]! - 1; e >= 0; e = this.hnext[e]! - 1) {
        const c = e >>> 1;
        if (evictable(c)) return c;
      }
    }
    return -1;
  }
}
