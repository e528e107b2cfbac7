/**
 * Scheduler interface (IPVS struct ip_vs_scheduler): a scheduler picks a real server for a new connection
 * only. Heavy tables (Maglev, hash rings, source-hash buckets) are built in `update()` whenever the server
 * set or a weight changes; `pick()` only indexes them, with integer arithmetic.
 */

/** The real servers of one service, by index: weights, connection counts and availability in typed arrays. */
export class Dests {
  /** stable identity of each server (e.g. "10.0.0.1:80"), used by hashing schedulers to place it */
  readonly ids: string[] = [];
  weight = new Int32Array(0);
  /** ESTABLISHED connections */
  active = new Int32Array(0);
  /** other connections */
  inactive = new Int32Array(0);
  /** 1 = may take new connections (not overloaded by its connection thresholds) */
  available = new Uint8Array(0);
  /** 1 = up by its health checks (always 1 without them) */
  healthy = new Uint8Array(0);
  /** 1 = in the service's home region (always 1 without region_select) */
  inRegion = new Uint8Array(0);

  get count(): number {
    return this.ids.length;
  }

  /** Replace the set (weights and counts start as given, availability 1). */
  static of(servers: Array<{ id: string; weight: number; active?: number; inactive?: number; available?: boolean }>): Dests {
    const d = new Dests();
    const n = servers.length;
    d.weight = new Int32Array(n);
    d.active = new Int32Array(n);
    d.inactive = new Int32Array(n);
    d.available = new Uint8Array(n);
    d.healthy = new Uint8Array(n).fill(1);
    d.inRegion = new Uint8Array(n).fill(1);
    servers.forEach((s, i) => {
      d.ids.push(s.id);
      d.weight[i] = s.weight;
      d.active[i] = s.active ?? 0;
      d.inactive[i] = s.inactive ?? 0;
      d.available[i] = s.available === false ? 0 : 1;
    });
    return d;
  }

  /** a server that may take a new connection: weight > 0, available, healthy and in the home region (IPVS skips weight 0 = quiescent) */
  usable(i: number): boolean {
    return this.weight[i]! > 0 && this.available[i] === 1 && this.healthy[i] === 1 && this.inRegion[i] === 1;
  }
  /** usable() whatever its region (can the region take connections if it were home) */
  usableAnywhere(i: number): boolean {
    return this.weight[i]! > 0 && this.available[i] === 1 && this.healthy[i] === 1;
  }
  /** can any server take a new connection */
  anyUsable(): boolean {
    for (let i = 0; i < this.ids.length; i++) if (this.usable(i)) return true;
    return false;
  }
}

/** What hashing schedulers hash: the new connection's addresses (32-bit words) and ports. */
export interface SchedKey {
  v6: boolean;
  src: Uint32Array;
  dst: Uint32Array;
  sport: number;
  dport: number;
}

export interface SchedOptions {
  /** mh: lookup table size, a prime (default 65537) */
  tableSize?: number;
  /** mh, sh, dh: include the source port in the key */
  port?: boolean;
  /** mh, sh, dh: when the chosen server is unusable, look further instead of failing */
  fallback?: boolean;
  /** conhash: virtual nodes per unit of weight (default 160) */
  replicas?: number;
}

export interface Scheduler {
  readonly name: string;
  /** (re)build state for this server set; called when servers or weights change */
  update(d: Dests): void;
  /** index of the server for a new connection, or -1 when none may take it */
  pick(d: Dests, key: SchedKey): number;
}

/** 32-bit multiplicative hash of an address (IPVS ip_vs_*_hashkey: addr * 2654435761) */
export function addrHash(words: Uint32Array, v6: boolean): number {
  let h = words[0]!;
  if (v6) h = (h ^ words[1]! ^ words[2]! ^ words[3]!) >>> 0;
  return Math.imul(h, 2654435761) >>> 0;
}

/** FNV-1a over a string: stable placement of a server by its identity */
export function strHash(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}
