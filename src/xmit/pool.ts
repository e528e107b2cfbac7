/**
 * Local address/port pool of an FNAT service, and the port pools of a SNAT service's addresses (DPVS
 * sa_pool): a stack of free ports per local address, so taking and giving back a port is O(1). A port is
 * unique per local address across the service's servers. An address's stack is made the first time it
 * lends a port (a service may list 256 addresses). Pools live as long as a connection holds one of their
 * ports: each has an id in a registry, and a connection gives its port back to the pool that lent it, also
 * after a reload replaced its service's pool.
 */

/** local ports: 1025-65535 (DPVS sa_pool) */
export const LPORT_MIN = 1025;
export const LPORT_MAX = 65535;

/** a full stack of ports, copied for each address (a native copy, not a loop per port); popped from the end: lowest port first */
let fullPool: Uint16Array | null = null;
/** the ports of this thread's share (replay with workers: DPVS's per-lcore port masks): slots[port % slots.length] === part */
let slots: Uint8Array | null = null;
let part = 0;

/**
 * Lend only the ports p with slotsOf[p % slotsOf.length] === w from now on (lane w of a replay with workers):
 * a reply to a local address then names its lane by its destination port. null: every port again. Called
 * before any pool is made.
 */
export function setPortPartition(slotsOf: Uint8Array | null, w = 0): void {
  slots = slotsOf;
  part = w;
  fullPool = null;
}

function full(): Uint16Array {
  if (fullPool === null) {
    const ports: number[] = [];
    for (let p = LPORT_MAX; p >= LPORT_MIN; p--) if (slots === null || slots[p % slots.length] === part) ports.push(p);
    fullPool = Uint16Array.from(ports);
  }
  return fullPool;
}

export class LocalPool {
  private readonly free: Array<Uint16Array | null>;
  private readonly top: Int32Array;
  private next = 0;

  constructor(
    readonly addrs: Uint32Array[],
    /** this pool's place in its registry */
    readonly id: number,
  ) {
    this.free = addrs.map(() => null);
    this.top = new Int32Array(addrs.length).fill(full().length);
  }

  private stack(i: number): Uint16Array {
    let s = this.free[i];
    if (!s) s = this.free[i] = full().slice();
    return s;
  }

  /** take a port of local address i: returns i << 16 | port, or -1 when its pool is empty */
  takeFrom(i: number): number {
    return this.top[i]! > 0 ? (i << 16) | this.stack(i)[--this.top[i]!]! : -1;
  }

  /** take a port: returns laddr index << 16 | port, or -1 when every pool is empty */
  take(): number {
    for (let k = 0; k < this.addrs.length; k++) {
      const i = (this.next + k) % this.addrs.length;
      if (this.top[i]! > 0) {
        this.next = (i + 1) % this.addrs.length; // spread connections over the local addresses
        return this.takeFrom(i);
      }
    }
    return -1;
  }

  give(laddr: number, port: number): void {
    this.stack(laddr)[this.top[laddr]!++] = port;
  }

  /** ports lent, over every address */
  get inUse(): number {
    let n = 0;
    const all = full().length;
    for (let i = 0; i < this.addrs.length; i++) n += all - this.top[i]!;
    return n;
  }
}

/** Every pool made, by id: a connection's port goes back to the pool that lent it. */
export class PoolRegistry {
  readonly pools: LocalPool[] = [];

  make(addrs: Uint32Array[]): LocalPool {
    const p = new LocalPool(addrs, this.pools.length);
    this.pools.push(p);
    return p;
  }

  give(id: number, local: number): void {
    this.pools[id]!.give(local >>> 16, local & 0xffff);
  }
}
