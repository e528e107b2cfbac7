/**
 * Virtual services and their real servers (IPVS struct ip_vs_service / ip_vs_dest): lookup by
 * (protocol, VIP, port) without building a string per packet, the scheduler of each service, and per
 * service / per server counters.
 */
import type { ServiceConfig } from '../config.js';
import { createScheduler, Dests, type SchedKey, type Scheduler } from '../sched/index.js';

export const FWD_NAT = 0;
export const FWD_DR = 1;
export const FWD_TUNNEL = 2;
export const FWD_FNAT = 3;
const FWD_CODE: Record<string, number> = { nat: FWD_NAT, dr: FWD_DR, tunnel: FWD_TUNNEL, fnat: FWD_FNAT };

/** FNAT local ports: 1025-65535 by default (DPVS sa_pool) */
export const LPORT_MIN = 1025;
export const LPORT_MAX = 65535;

/**
 * Local address/port pool of an FNAT service (DPVS sa_pool): a stack of free ports per local address, so
 * taking and giving back a port is O(1). A port is unique per local address across the service's servers.
 */
export class LocalPool {
  readonly addrs: Uint32Array[];
  private readonly free: Uint16Array[];
  private readonly top: Int32Array;
  private next = 0;

  constructor(laddrs: Uint32Array[]) {
    this.addrs = laddrs;
    const n = LPORT_MAX - LPORT_MIN + 1;
    this.free = laddrs.map(() => {
      const a = new Uint16Array(n);
      // popped from the end: the lowest port first
      for (let i = 0; i < n; i++) a[i] = LPORT_MAX - i;
      return a;
    });
    this.top = new Int32Array(laddrs.length).fill(n);
  }

  /** take a port: returns laddr index << 16 | port, or -1 when every pool is empty */
  take(): number {
    for (let k = 0; k < this.addrs.length; k++) {
      const i = (this.next + k) % this.addrs.length;
      if (this.top[i]! > 0) {
        this.next = (i + 1) % this.addrs.length; // spread connections over the local addresses
        const port = this.free[i]![--this.top[i]!]!;
        return (i << 16) | port;
      }
    }
    return -1;
  }

  give(laddr: number, port: number): void {
    this.free[laddr]![this.top[laddr]!++] = port;
  }
}

function macBytes(s: string | undefined): Uint8Array {
  return s ? Uint8Array.from(s.split(':').map((h) => parseInt(h, 16))) : new Uint8Array(6);
}

/** address text → 4 words (IPv4 in word 0) */
export function addrToWords(s: string): { v6: boolean; words: Uint32Array } {
  const w = new Uint32Array(4);
  if (!s.includes(':')) {
    const p = s.split('.').map(Number);
    w[0] = ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
    return { v6: false, words: w };
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t].map((g) => parseInt(g || '0', 16));
  for (let i = 0; i < 4; i++) w[i] = ((groups[2 * i]! << 16) | groups[2 * i + 1]!) >>> 0;
  return { v6: true, words: w };
}

/** counters of a service or a server: conns, in/out packets, in/out bytes */
export const ST_CONNS = 0;
export const ST_INPKTS = 1;
export const ST_OUTPKTS = 2;
export const ST_INBYTES = 3;
export const ST_OUTBYTES = 4;
export const ST_N = 5;

export class Service {
  readonly proto: number;
  readonly v6: boolean;
  readonly vip: Uint32Array;
  readonly port: number;
  readonly sched: Scheduler;
  readonly dests: Dests;
  /** server addresses (4 words each) and ports, by server index */
  readonly serverAddr: Uint32Array[];
  readonly serverPort: Int32Array;
  /** forwarding method by server (FWD_*), DR next-hop MAC by server */
  readonly fwd: Uint8Array;
  readonly mac: Uint8Array[];
  /** connection thresholds by server (0 = none) */
  readonly upper: Int32Array;
  readonly lower: Int32Array;
  /** FNAT local addresses and ports (null when no server of the service uses FNAT) */
  readonly pool: LocalPool | null;
  /** tunnel: GUE instead of IP-in-IP, and its UDP port */
  readonly gue: boolean;
  readonly guePort: number;
  readonly stats = new Float64Array(ST_N);
  readonly destStats: Float64Array;

  constructor(
    readonly index: number,
    readonly cfg: ServiceConfig,
  ) {
    this.proto = cfg.proto === 'tcp' ? 6 : 17;
    const a = addrToWords(cfg.vip);
    this.v6 = a.v6;
    this.vip = a.words;
    this.port = cfg.port;
    this.dests = Dests.of(cfg.servers.map((s) => ({ id: `${s.addr}:${s.port}`, weight: s.weight })));
    this.serverAddr = cfg.servers.map((s) => addrToWords(s.addr).words);
    this.serverPort = Int32Array.from(cfg.servers.map((s) => s.port));
    this.fwd = Uint8Array.from(cfg.servers.map((s) => FWD_CODE[s.forward ?? cfg.forward] ?? FWD_NAT));
    this.mac = cfg.servers.map((s) => macBytes(s.mac));
    this.upper = Int32Array.from(cfg.servers.map((s) => s.upper_threshold));
    this.lower = Int32Array.from(cfg.servers.map((s) => s.lower_threshold));
    this.pool = this.fwd.includes(FWD_FNAT) ? new LocalPool(cfg.laddrs.map((a) => addrToWords(a).words)) : null;
    this.gue = cfg.tunnel.type === 'gue';
    this.guePort = cfg.tunnel.port;
    this.destStats = new Float64Array(cfg.servers.length * ST_N);
    this.sched = createScheduler(cfg.scheduler, { tableSize: cfg.mh?.table_size, port: cfg.mh?.port, fallback: cfg.mh?.fallback });
    this.sched.update(this.dests);
  }

  /**
   * Overload by connection thresholds (IPVS ip_vs_bind_dest / ip_vs_unbind_dest): a server with an upper
   * threshold stops taking new connections when its connections reach it, and takes them again below the
   * lower threshold (or, without one, below 3/4 of the upper).
   */
  checkOverload(i: number): void {
    const u = this.upper[i]!;
    if (u === 0) return;
    const total = this.dests.active[i]! + this.dests.inactive[i]!;
    if (this.dests.available[i] === 1) {
      if (total >= u) this.dests.available[i] = 0;
    } else {
      const l = this.lower[i]!;
      if (l > 0 ? total < l : total * 4 < u * 3) this.dests.available[i] = 1;
    }
  }

  get name(): string {
    return `${this.cfg.proto.toUpperCase()}  ${this.v6 ? `[${this.cfg.vip}]` : this.cfg.vip}:${this.port}`;
  }
}

export class Services {
  readonly list: Service[];
  private readonly index = new Map<number, number[]>();

  constructor(cfgs: ServiceConfig[]) {
    this.list = cfgs.map((c, i) => new Service(i, c));
    for (const s of this.list) {
      const k = Services.key(s.v6, s.vip, s.port);
      this.index.set(k, [...(this.index.get(k) ?? []), s.index]);
    }
  }

  /** a number key for (address, port): exact for IPv4, a hash for IPv6 (candidates are verified) */
  private static key(v6: boolean, a: Uint32Array, port: number): number {
    const w = v6 ? (a[0]! ^ a[1]! ^ a[2]! ^ a[3]!) >>> 0 : a[0]!;
    return w * 65536 + port;
  }

  /** The service for (protocol, address, port), or -1. */
  lookup(proto: number, v6: boolean, a: Uint32Array, port: number): number {
    const cands = this.index.get(Services.key(v6, a, port));
    if (!cands) return -1;
    for (const i of cands) {
      const s = this.list[i]!;
      if (s.proto !== proto || s.v6 !== v6) continue;
      const vip = s.vip;
      if (vip[0] === a[0] && (!v6 || (vip[1] === a[1] && vip[2] === a[2] && vip[3] === a[3]))) return i;
    }
    return -1;
  }

  /** Schedule a real server of service `svc` for a new connection; -1 when none may take it. */
  schedule(svc: number, key: SchedKey): number {
    const s = this.list[svc]!;
    return s.sched.pick(s.dests, key);
  }

  get size(): number {
    return this.list.length;
  }
}
