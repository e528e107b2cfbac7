/**
 * Virtual services and their real servers (IPVS struct ip_vs_service / ip_vs_dest): lookup by
 * (protocol, VIP, port) without building a string per packet, the scheduler of each service, and per
 * service / per server counters.
 */
import { REGION_DEFAULTS, RegionSelector, type RegionsConfig } from '../lb/regions.js';
import type { ServiceConfig } from '../config.js';
import { CONHASH_REPLICAS } from '../sched/conhash.js';
import { createScheduler, Dests, type SchedKey, type Scheduler } from '../sched/index.js';
import { Estimator, EstimatorClock } from '../stats/estimator.js';
import { addrToWords, inPrefix, parseMac, parsePrefix, type Prefix } from '../packet/addr.js';
import { FWD_FNAT, modeCode } from '../xmit/modes.js';
import { PoolRegistry, type LocalPool } from '../xmit/pool.js';

/** "10.0.0.1:80", "[2001:db8::1]:80" (a SNAT address shows port 0, as ipvsadm does) */
export function serverLabel(x: { addr: string; port?: number | undefined; agent?: string | undefined }): string {
  if (x.agent !== undefined) return `agent:${x.agent}:${x.port ?? 0}`;
  return x.addr.includes(':') ? `[${x.addr}]:${x.port ?? 0}` : `${x.addr}:${x.port ?? 0}`;
}

/** counters of a service or a server: conns, in/out packets, in/out bytes */
export const ST_CONNS = 0;
export const ST_INPKTS = 1;
export const ST_OUTPKTS = 2; // = ST_INPKTS + 1, and ST_OUTBYTES = ST_INBYTES + 1: the tracker adds the direction
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
  /** FNAT local addresses and ports, SNAT addresses (the servers) and ports; null for other modes */
  readonly pool: LocalPool | null;
  /** SNAT: the source prefix, and the destination prefix and port (0 = any) a connection must match */
  readonly snat: { src: Prefix; dst: Prefix; dport: number } | null;
  /** tunnel: GUE instead of IP-in-IP, and its UDP port */
  readonly gue: boolean;
  readonly guePort: number;
  /** tunnel: the outer source address (null: the VIP) */
  readonly tunnelSrc: Uint32Array | null;
  /** FNAT: add the TOA option (client address and port) */
  readonly toa: boolean;
  /** PROXY protocol version (1, 2), 0 without */
  readonly pp: number;
  /** TCP: answer SYNs with SYN cookies and open the server connection after the client's ACK */
  readonly synproxy: boolean;
  /** the agent id of each server (null: an ordinary server) */
  readonly agentOf: Array<string | null>;
  /** region_select: the home region's choice (null without); the servers outside the home are not scheduled */
  readonly regions: RegionSelector | null;
  readonly stats = new Float64Array(ST_N);
  readonly destStats: Float64Array;
  /** EWMA rates of the service and of its servers (IPVS estimator, 2 s samples) */
  readonly est: Estimator;
  readonly destEst: Estimator;

  constructor(
    readonly index: number,
    readonly cfg: ServiceConfig,
    prev?: Service,
    /** where its pools are registered (a connection gives its port back to the pool that lent it) */
    readonly pools: PoolRegistry = prev?.pools ?? new PoolRegistry(),
    regionsCfg: RegionsConfig = REGION_DEFAULTS,
  ) {
    this.proto = cfg.proto === 'tcp' ? 6 : 17;
    const m = cfg.match;
    // a SNAT service has no VIP (its connections keep their destination): its family is its match's
    this.snat = m ? { src: parsePrefix(m.src), dst: m.dst ? parsePrefix(m.dst) : { words: new Uint32Array(4), len: 0 }, dport: m.dport ?? 0 } : null;
    const a = m ? null : addrToWords(cfg.vip!); // the schema requires a VIP for every other mode
    this.v6 = a ? a.v6 : m!.src.includes(':');
    this.vip = a ? a.words : new Uint32Array(4);
    this.port = cfg.port ?? 0;
    this.dests = Dests.of(cfg.servers.map((s) => ({ id: serverKey(s), weight: s.weight })));
    // an agent's server takes connections once its agent is up (the hub says so)
    cfg.servers.forEach((s, i) => {
      if (s.agent !== undefined) this.dests.healthy[i] = 0;
    });
    this.agentOf = cfg.servers.map((s) => s.agent ?? null);
    this.serverAddr = cfg.servers.map((s) => addrToWords(s.addr).words);
    this.serverPort = Int32Array.from(cfg.servers.map((s) => s.port ?? 0));
    this.fwd = Uint8Array.from(cfg.servers.map((s) => modeCode(s.forward ?? cfg.forward)));
    this.mac = cfg.servers.map((s) => parseMac(s.mac));
    this.upper = Int32Array.from(cfg.servers.map((s) => s.upper_threshold));
    this.lower = Int32Array.from(cfg.servers.map((s) => s.lower_threshold));
    // SNAT: the servers are the SNAT addresses, each with its own port pool (a kept pool: carryOver)
    const keep = prev?.pool && JSON.stringify(prev.cfg.laddrs) === JSON.stringify(cfg.laddrs) && !m && this.fwd.includes(FWD_FNAT) ? prev.pool : null;
    this.pool = keep ?? (m ? this.pools.make(this.serverAddr) : this.fwd.includes(FWD_FNAT) ? this.pools.make(cfg.laddrs.map((a) => addrToWords(a).words)) : null);
    this.gue = cfg.tunnel.type === 'gue';
    this.toa = cfg.toa;
    this.pp = cfg.proxy_protocol === 'v1' ? 1 : cfg.proxy_protocol === 'v2' ? 2 : 0;
    this.synproxy = cfg.synproxy && this.proto === 6;
    this.guePort = cfg.tunnel.port;
    this.tunnelSrc = cfg.tunnel.src !== undefined ? addrToWords(cfg.tunnel.src).words : null;
    this.destStats = new Float64Array(cfg.servers.length * ST_N);
    this.est = new Estimator(this.stats, 1);
    this.destEst = new Estimator(this.destStats, cfg.servers.length);
    if (prev) this.carryOver(prev);
    // (with region_select, the hashing schedulers look past the servers outside the home region)
    this.sched = createScheduler(cfg.scheduler, { tableSize: cfg.mh?.table_size, port: cfg.mh?.port, fallback: cfg.mh?.fallback ?? (cfg.region_select ? true : undefined), replicas: CONHASH_REPLICAS });
    this.sched.update(this.dests);
    this.regions = null;
    if (cfg.region_select) {
      const names = [...new Set(cfg.servers.map((x) => x.region!))];
      const usable = (r: string) => cfg.servers.some((x, i) => x.region === r && this.dests.usableAnywhere(i));
      // a reload keeps the history and the home (the new servers' health and weights decide what is usable)
      const keep = prev?.regions && JSON.stringify(prev.regions.regions) === JSON.stringify(names) ? prev.regions : null;
      this.regions = keep ?? new RegionSelector(regionsCfg, names, usable);
      this.regions.usable = usable;
      this.regions.onHome = (home) => this.setHome(home);
      this.setHome(this.regions.home);
    }
  }

  /** region_select: only the home region's servers take new connections (none chosen yet: every server) */
  setHome(home: string | null): void {
    this.cfg.servers.forEach((x, i) => (this.dests.inRegion[i] = home === null || x.region === home ? 1 : 0));
  }

  /** a changed service takes over its predecessor's state: counters, connection counts, health, ports */
  private carryOver(prev: Service): void {
    this.stats.set(prev.stats);
    this.est.copyFrom(prev.est);
    const n = prev.cfg.servers.length;
    for (let i = 0; i < n && i < this.cfg.servers.length; i++) {
      this.dests.active[i] = prev.dests.active[i]!;
      this.dests.inactive[i] = prev.dests.inactive[i]!;
      this.dests.available[i] = prev.dests.available[i]!;
      this.dests.healthy[i] = prev.dests.healthy[i]!;
      this.mac[i] = prev.mac[i]!;
      for (let k = 0; k < ST_N; k++) this.destStats[i * ST_N + k] = prev.destStats[i * ST_N + k]!;
    }
    this.destEst.copyFrom(prev.destEst);
  }

  /** servers removed at run time (kept in place with weight 0 while connections use them) */
  isRemoved(i: number): boolean {
    return (this.cfg.servers[i] as { removed?: boolean }).removed === true;
  }

  /**
   * May a persistence template keep sending its client to server i (IPVS ip_vs_check_template)? A server
   * that may take new connections; or a quiescent one (weight 0, still configured, healthy, not overloaded),
   * whose persistent clients stay with it unless the service has `expire_quiescent` (IPVS's
   * expire_quiescent_template): that is how a server is drained gracefully.
   */
  keepsTemplate(i: number): boolean {
    const d = this.dests;
    if (d.usable(i)) return true;
    return !this.cfg.expire_quiescent && d.weight[i] === 0 && d.available[i] === 1 && d.healthy[i] === 1 && !this.isRemoved(i);
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

  /** "tcp 10.0.0.1:80", "udp [2001:db8::1]:53", or for SNAT "tcp snat 10.0.0.0/8" */
  get label(): string {
    if (this.cfg.match) return `${this.cfg.proto} snat ${this.cfg.match.src}${this.cfg.match.dst ? ` -> ${this.cfg.match.dst}` : ''}${this.cfg.match.dport ? `:${this.cfg.match.dport}` : ''}`;
    return `${this.cfg.proto} ${this.v6 ? `[${this.cfg.vip}]` : this.cfg.vip}:${this.port}`;
  }
}

/** a service's identity across configuration changes */
export function serviceKey(c: ServiceConfig): string {
  return c.match ? `${c.proto} snat ${c.match.src} ${c.match.dst ?? ''} ${c.match.dport ?? 0}` : `${c.proto} ${c.vip} ${c.port}`;
}

/** a server's identity within its service */
export function serverKey(x: { addr: string; port?: number; agent?: string }): string {
  return x.agent !== undefined ? `agent:${x.agent}:${x.port ?? 0}` : `${x.addr}:${x.port ?? 0}`;
}

export class Services {
  readonly list: Service[];
  /** every local address/port pool the services have had */
  readonly pools = new PoolRegistry();
  /** services deleted at run time: kept (out of lookups) while their connections live, so indices stay valid */
  readonly deleted = new Set<number>();
  /** virtual services by (address, port): open addressing, service index + 1 (0 = empty) */
  private slots = new Int32Array(0);
  private slotMask = 0;
  /** SNAT services, matched in configuration order when no virtual service matches */
  private snats: Service[] = [];

  constructor(
    cfgs: ServiceConfig[],
    readonly regionsCfg: RegionsConfig = REGION_DEFAULTS,
  ) {
    this.list = cfgs.map((c, i) => new Service(i, c, undefined, this.pools, regionsCfg));
    this.estClock = new EstimatorClock([]);
    this.index();
  }

  /** (re)build the lookup structures over the services not deleted */
  private index(): void {
    const live = this.list.filter((s) => !this.deleted.has(s.index));
    this.snats = live.filter((s) => s.snat !== null);
    this.estClock = new EstimatorClock(this.list.flatMap((s) => [s.est, s.destEst]), this.estClock);
    let n = 8;
    while (n < live.length * 4) n *= 2;
    this.slots = new Int32Array(n);
    this.slotMask = n - 1;
    for (const s of live) {
      if (s.snat) continue;
      let i = Services.slot(s.v6, s.vip, s.port) & this.slotMask;
      while (this.slots[i] !== 0) i = (i + 1) & this.slotMask;
      this.slots[i] = s.index + 1;
    }
  }

  /**
   * Apply a new service configuration at run time (reload, control socket) without disturbing existing
   * connections: services and servers keep their indices (connections refer to them by index); a service
   * that is gone leaves the lookups, a server that is gone keeps its place with weight 0 (quiescent, as
   * IPVS keeps a deleted dest in its trash while connections use it); new ones are appended. Counters,
   * connection counts, health and FNAT port pools carry over. Returns what changed.
   */
  apply(cfgs: ServiceConfig[]): { added: number; changed: number; deleted: number } {
    const byKey = new Map<string, Service>();
    for (const s of this.list) if (!this.deleted.has(s.index)) byKey.set(serviceKey(s.cfg), s);
    let added = 0;
    let changed = 0;
    const seen = new Set<Service>();
    for (const cfg of cfgs) {
      const old = byKey.get(serviceKey(cfg));
      if (!old) {
        this.list.push(new Service(this.list.length, cfg, undefined, this.pools, this.regionsCfg));
        added++;
        continue;
      }
      seen.add(old);
      if (JSON.stringify(old.cfg) === JSON.stringify(cfg)) continue;
      // old servers keep their places (gone ones with weight 0); new ones follow
      const want = new Map(cfg.servers.map((x) => [serverKey(x), x]));
      const servers = old.cfg.servers.map((x) => want.get(serverKey(x)) ?? { ...x, weight: 0, removed: true });
      const known = new Set(old.cfg.servers.map(serverKey));
      for (const x of cfg.servers) if (!known.has(serverKey(x))) servers.push(x);
      const s = new Service(old.index, { ...cfg, servers }, old, old.pools, this.regionsCfg);
      this.list[old.index] = s;
      changed++;
    }
    let deleted = 0;
    for (const s of byKey.values()) {
      if (seen.has(s)) continue;
      this.deleted.add(s.index);
      deleted++;
    }
    this.index();
    return { added, changed, deleted };
  }

  /** a 32-bit hash of (address, port) */
  private static slot(v6: boolean, a: Uint32Array, port: number): number {
    let h = Math.imul(a[0]! ^ port, 0x9e3779b1);
    if (v6) h = Math.imul(h ^ a[1]! ^ a[2]! ^ a[3]!, 0x85ebca6b);
    return h ^ (h >>> 15);
  }

  /** The service for (protocol, address, port), or -1. */
  lookup(proto: number, v6: boolean, a: Uint32Array, port: number): number {
    const m = this.slotMask;
    for (let i = Services.slot(v6, a, port) & m; ; i = (i + 1) & m) {
      const x = this.slots[i]!;
      if (x === 0) return -1;
      const s = this.list[x - 1]!;
      if (s.port !== port || s.proto !== proto || s.v6 !== v6) continue;
      const vip = s.vip;
      if (vip[0] === a[0] && (!v6 || (vip[1] === a[1] && vip[2] === a[2] && vip[3] === a[3]))) return x - 1;
    }
  }

  /** the services' and servers' rate estimators, sampled together every 2 s */
  private estClock: EstimatorClock;

  /** Run the rate estimators up to time `us` (called with every packet's time; works once per 2 s). */
  estimate(us: number): void {
    this.estClock.advance(us);
  }

  /** The SNAT service for a new outbound connection (src -> dst:dport), or -1. */
  matchSnat(proto: number, v6: boolean, src: Uint32Array, dst: Uint32Array, dport: number): number {
    for (const s of this.snats) {
      const m = s.snat!;
      if (s.proto === proto && s.v6 === v6 && (m.dport === 0 || m.dport === dport) && inPrefix(src, m.src, v6) && inPrefix(dst, m.dst, v6)) return s.index;
    }
    return -1;
  }

  /** does any service run the synproxy */
  get hasSynproxy(): boolean {
    return this.list.some((s) => s.synproxy);
  }

  get hasSnat(): boolean {
    return this.snats.length > 0;
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
