/**
 * `tsvs run`: the engine on live traffic. libpcap captures what is addressed to the VIPs and local addresses
 * (and the servers' replies) on the configured interfaces, inbound only; every packet is decoded, tracked,
 * balanced and sent by the live sink. Time comes from the monotonic clock (anchored to the wall clock at
 * start for display), and one unref'd interval drives the timer wheel between packets.
 */
import { PacketRecord } from '../capture/record.js';
import { LiveCapture } from '../capture/live.js';
import { RingCapture, txHandle } from '../capture/ring.js';
import { clearKernelDrop, setKernelDrop } from './tc-drop.js';
import { loadNative } from '../native.js';
import type { Profile } from '../conntrack/conntrack.js';
import { Engine } from '../engine.js';
import { counterObject, deleteConns, EventFeed, gauges, pageConns, type ConnFilter, type SnapshotService } from '../report/records.js';
import { flowPage, recentFlows, type FlowFilter, type FlowSort } from '../report/flows.js';
import { lbSummary, withRegion } from '../report/summary.js';
import type { CtlTarget, IpvsTimeouts, TemplateEntry } from '../ctl/server.js';
import { formatAddr } from '../packet/bytes.js';
import { LiveSink, macKey } from '../xmit/sink-live.js';
import { FWD_DR, MODES } from '../xmit/modes.js';
import { serverLabel, Services } from '../service/services.js';
import { parseMac } from '../packet/addr.js';
import { MonotonicClock } from '../timer/clock.js';
import { WheelDriver } from '../timer/driver.js';
import { ConfigError, loadConfig, parseConfig, splitTimeouts, type Config, type ServiceConfig } from '../config.js';
import { Logger } from '../log.js';
import { ifaceMac, localAddresses, neighbours4, neighbours6, pokeNeighbour, readSysctl, receiveOffloads } from './host.js';
import { randomBytes } from 'node:crypto';
import { HealthChecker } from '../service/health.js';
import { closeProbes, LiveRegionProber, rtt } from './region-probe.js';
import { LINKTYPE_RAW } from '../packet/decode.js';
import { fromOwnVip, Hub, membershipOf } from './hub.js';
import { Dispatcher } from '../workers/dispatch.js';
import { fanoutProgram } from '../workers/fanout.js';
import { setPortPartition } from '../xmit/pool.js';
import type { Flows } from '../flows/flows.js';

/**
 * A daemon's place among live workers: engine `me` of `n` (0: the main thread, which also runs the health
 * checks, region probes, the agents' hub, the control socket and metrics; the others only their engines)
 */
export interface DaemonRole {
  me: number;
  n: number;
  /** the PACKET_FANOUT group of the first interface (the next ones: +1, ...: a group is one device's) */
  group: number;
  /** which worker each of the SLOTS hash slots and local ports (% SLOTS) belongs to */
  slots: Uint8Array;
  /** a worker thread's way to the main thread: passive health outcomes; packets for an agent (through the hub) */
  up?: { passive(si: number, d: number, ok: boolean): void; agent(id: string, buf: Uint8Array, off: number, len: number): 'agent_down' | null };
}

/** passive health ignores failures for this long after the engine last dropped a packet for want of room */
const OVERLOAD_BLIND_US = 10e6;

export class Daemon implements CtlTarget {
  readonly services: Services;
  readonly engine: Engine;
  readonly sink: LiveSink;
  readonly captures: Array<LiveCapture | RingCapture> = [];
  /** how packets move: batched (the native module's ring and sendmmsg) or pcap (libpcap and raw-socket) */
  readonly io: 'batched' | 'pcap';
  /** why not batched (when io is pcap) */
  readonly ioWhy: string;
  /** the services as configured now (changed by reloads and the control socket) */
  serviceCfgs: ServiceConfig[];
  readonly startedAt = new Date();
  private readonly rec = new PacketRecord();
  private readonly clock = new MonotonicClock();
  private readonly wallUs = Date.now() * 1000;
  private readonly driver: WheelDriver;
  private neighTimer: NodeJS.Timeout | null = null;
  readonly health: HealthChecker;
  readonly regionProber: LiveRegionProber | null;
  /** the synproxy's cookie secret (live workers share it) */
  readonly secret: Buffer;
  /** not the main thread: another worker's engine, its control-plane state sent by the main thread */
  readonly follower: boolean;
  readonly hub: Hub | null;
  /** changes of home region (every service) */
  homeChanges = 0;
  packets = 0;
  /** passive-health failures not counted against servers (seen during or shortly after an overload) */
  passiveIgnored = 0;

  constructor(
    readonly cfg: Config,
    readonly log: Logger,
    readonly configFile?: string,
    readonly role: DaemonRole = { me: 0, n: 1, group: 0, slots: new Uint8Array(0) },
  ) {
    this.follower = role.me > 0;
    // each worker lends only its own local ports (FNAT, SNAT): the servers' replies name the worker that made the connection
    if (role.n > 1) setPortPartition(role.slots, role.me);
    const live = cfg.live!;
    const profile: Profile = cfg.profile ?? 'dpvs';
    const t = splitTimeouts(cfg.timeouts);
    this.serviceCfgs = cfg.services;
    this.services = new Services(cfg.services, cfg.regions);
    this.sink = new LiveSink(live.tx_queue);
    const io = ioChoice(cfg);
    this.io = io.io;
    this.ioWhy = io.why;
    if (this.io === 'batched') this.sink.openBatched(txHandle(live.tx_threads), loadNative().mod!);
    if (role.n > 1 && this.io !== 'batched') throw new ConfigError(`live.workers: ${role.n} workers need the batched path (${io.why})`);
    // the cookie secret: configured, or fresh random bytes at every start
    const secret = cfg.synproxy.secret ? Buffer.from(cfg.synproxy.secret, 'hex') : randomBytes(16);
    this.secret = secret;
    const reserve = live.tx_reserve ?? Math.floor(live.tx_queue / 2);
    this.engine = new Engine({
      conntrack: { profile, seed: cfg.seed, maxConns: cfg.max_conns, tcpTimeouts: t.tcp, udpTimeouts: t.udp, icmpTimeout: t.icmp },
      lb: { services: this.services, decrementTtl: cfg.decrement_ttl, mtu: cfg.mtu, synproxy: { cfg: cfg.synproxy, secret }, reserve },
      sink: this.sink,
      // flow accounting per (source, destination): on unless `flows: { enabled: false }`
      flows: cfg.flows.enabled === false ? undefined : { idle: cfg.flows.idle, max: cfg.flows.max, perSource: cfg.flows.per_source },
    });
    this.driver = new WheelDriver(this.clock, () => this.setTime(), 10);
    // remote servers as agents: their heartbeats on agents.listen
    this.hub = cfg.agents && !this.follower ? new Hub(cfg.agents, this.log) : null;
    // (a worker thread's packets for an agent go through the main thread's hub)
    if (role.up) this.sink.agent = role.up.agent;
    if (this.hub) {
      const hub = this.hub;
      this.sink.agent = (id, buf, off, len) => hub.sendData(id, buf, off, len);
      // an agent's reply goes on only from a VIP of a service the agent is a server of (no open relay)
      hub.onData = (b, id) => {
        if (!fromOwnVip(b, id, this.services.list)) {
          hub.dataRefused++;
          return;
        }
        // (with live workers: the worker whose engine holds its connection)
        const w = this.dispatcher && this.toWorker ? this.dispatcher.workerOf(b, 0, b.length, b.length, LINKTYPE_RAW) : 0;
        if (w !== 0) this.toWorker!(w, id, b);
        else this.agentPacket(b, id);
      };
      // each heartbeat's answer tells the agent the VIPs it serves (the services of the moment: reloads change them)
      hub.membership = (id) => membershipOf(id, this.services.list.filter((s) => !this.services.deleted.has(s.index)));
      // an agent's servers take new connections while it is up
      hub.onAgent = (id, up) => {
        for (const s of this.services.list) s.agentOf.forEach((a, i) => a === id && (s.dests.healthy[i] = up ? 1 : 0));
        this.onState?.();
      };
    }
    // region_select: probe plans on the engine's timeline (the services of the moment: a reload may add some)
    this.regionProber = this.follower ? null : new LiveRegionProber(
      () => this.services.list.filter((s) => s.regions !== null && !this.services.deleted.has(s.index)),
      cfg.regions,
      this.engine.time,
      (s, c) => {
        this.homeChanges++;
        this.log.info('home region', { service: s.label, from: c.from, to: c.to, why: c.why });
        this.onState?.();
      },
      rtt,
      (id) => this.hub?.rttOf(id) ?? null,
    );
    this.health = new HealthChecker(() => this.services, live.health, (service, server, up, why) => {
      this.log[up ? 'info' : 'warn'](up ? 'server up' : 'server down', { service, server, why });
      this.onState?.();
    });
    // passive signals from the state machine feed the same rise/fall counts as the probes; a failure seen while
    // the LB itself was dropping packets for want of transmit room (or shortly after) says nothing of the server
    if (live.health.enabled && live.health.passive) {
      const up = role.up;
      this.engine.lb!.onOutcome = (si, d, ok) => {
        // (not for an agent's server: no probe reaches it to bring it back; its agent's heartbeats say if it is up)
        if (this.services.list[si]?.agentOf[d] != null) return;
        const o = this.engine.x!.overloadAtUs;
        if (!ok && o >= 0 && this.engine.time.nowUs - o < OVERLOAD_BLIND_US) this.passiveIgnored++;
        else if (up) up.passive(si, d, ok);
        else this.health.passive(si, d, ok);
      };
    }
  }

  /** live workers (main thread): the dispatch rule, for the agents' packets; how one reaches another worker */
  private dispatcher: Dispatcher | null = null;
  toWorker: ((w: number, agent: string, b: Buffer) => void) | null = null;
  /** live workers (main thread): told each change of a server's health or a service's home region, at once */
  onState: (() => void) | null = null;
  /** live workers (main thread): told the services after each change (the workers apply the same) */
  onServices: ((cfgs: ServiceConfig[]) => void) | null = null;

  /** a packet from an agent (its reply to a client), into this engine */
  agentPacket(b: Buffer, id: string): void {
    // through the engine like a captured packet: the reply direction of its connection is tracked (states,
    // counters, flows), and it goes on to the client only as a reply of a connection scheduled to this agent
    const x = this.engine.x!;
    x.agentFrom = id;
    try {
      this.packet(b, b.length, b.length, LINKTYPE_RAW);
    } finally {
      x.agentFrom = null;
    }
  }

  /** the fanout program of the services of the moment (live workers: the kernel's choice of worker per packet) */
  private fanoutProg(): Int32Array {
    this.dispatcher = new Dispatcher(this.role.slots, this.services, 'service');
    return fanoutOf(this.dispatcher);
  }

  /** µs since the epoch, advancing with the monotonic clock */
  nowUs(): number {
    return this.wallUs + this.clock.now();
  }

  private setTime(): void {
    const us = this.nowUs();
    const sec = Math.floor(us / 1e6);
    this.rec.tsSec = sec;
    this.rec.tsFrac = us - sec * 1e6;
    this.engine.time.set(sec, this.rec.tsFrac, 6);
  }

  /** the BPF filter: traffic to the VIPs and local addresses, and servers' replies, received (not sent) */
  filter(): string {
    const own = localAddresses();
    const dst = new Set<string>();
    const src = new Set<string>();
    // every server still known, also those removed at run time whose connections are still running: what
    // its forwarding mode needs (NAT: the servers' replies; FNAT: the local addresses; SNAT: the inside sources)
    for (const s of this.services.list) {
      s.cfg.servers.forEach((x, i) => {
        const want = MODES[s.fwd[i]!]!.capture(s.cfg, x);
        for (const a of want.dst) dst.add(a);
        for (const a of want.src) src.add(a);
      });
    }
    const host = (a: string) => (a.startsWith('net ') ? a : `host ${a}`);
    const parts = [...[...dst].map((a) => `dst ${host(a)}`), ...[...src].map((a) => `(src ${host(a)} and not dst host ${[...own].filter((x) => !x.includes('%')).join(' and not dst host ')})`)];
    return parts.length ? `inbound and (${parts.join(' or ')})` : 'inbound and not ip and not ip6';
  }

  /** Warnings about host settings that make the kernel answer or forward what the engine owns. */
  hostChecks(): string[] {
    const out: string[] = [];
    if (readSysctl('/proc/sys/net/ipv4/ip_forward') === '1') {
      out.push('net.ipv4.ip_forward=1: the kernel forwards VIP traffic as well (every packet would leave twice); run: sysctl -w net.ipv4.ip_forward=0');
    }
    if (readSysctl('/proc/sys/net/ipv6/conf/all/forwarding') === '1') out.push('net.ipv6.conf.all.forwarding=1: the kernel forwards VIP traffic as well; run: sysctl -w net.ipv6.conf.all.forwarding=0');
    const own = localAddresses();
    for (const s of this.serviceCfgs) {
      for (const a of [s.vip, ...s.laddrs]) {
        if (a && own.has(a)) out.push(`${a} is bound on this host: the kernel answers its traffic itself (RSTs); route it to this host instead of binding it (ip addr del ${a}/... dev ...)`);
      }
    }
    for (const i of this.cfg.live!.interfaces) {
      const on = receiveOffloads(i);
      if (on.length) out.push(`${i}: receive offloads (${on.join(', ')}) hand the engine merged super-packets; run: ethtool -K ${i} ${on.map((x) => `${x} off`).join(' ')}`);
    }
    return out;
  }

  start(): void {
    if (!this.follower) {
      for (const w of this.hostChecks()) this.log.warn(w);
      this.log.info('packet i/o', { path: this.ioStats().path });
    }
    this.sink.open();
    this.openCaptures();
    this.resolveNeighbours();
    // the neighbours asked for just now answer within milliseconds: look again soon rather than in 5 s (DR
    // connections to a server not yet resolved are not sent)
    for (const ms of [200, 1000]) this.neighSoon.push(setTimeout(() => this.resolveNeighbours(), ms).unref());
    this.neighTimer = setInterval(() => this.resolveNeighbours(), 5000);
    this.neighTimer.unref();
    this.driver.start();
    if (!this.follower) this.health.start();
  }

  private currentFilter = '';
  /** the first looks at the neighbour table after start */
  private readonly neighSoon: NodeJS.Timeout[] = [];

  /**
   * (Re)open the captures with the filter of the current services. On a change the new sessions open before
   * the old ones close: a packet in between may be seen twice (harmless to TCP) rather than lost.
   */
  private openCaptures(): void {
    const filter = this.filter();
    const multi = this.role.n > 1;
    // live workers: the kernel's choice of worker follows the services (one member sets it for the group)
    const prog = multi ? this.fanoutProg() : null;
    if (multi && this.captures.length > 0 && !this.follower) for (const c of this.captures) (c as RingCapture).setFanout(prog!);
    if (filter === this.currentFilter) return;
    this.currentFilter = filter;
    if (!this.follower) this.log.info('capture filter', { filter });
    const first = this.captures.length === 0;
    if (multi && !first) {
      // (replaced in place: a member's place in the fanout group is its order of joining, which a new ring would lose)
      for (const c of this.captures) (c as RingCapture).setFilter(filter);
    } else {
      const old = this.captures.splice(0);
      this.cfg.live!.interfaces.forEach((iface, i) => {
        const cap =
          this.io === 'batched'
            ? new RingCapture(iface, filter, this.cfg.live!.ring_kb, this.cfg.live!.rx_coalesce_us, (buf, off, caplen, wirelen, lt) => this.packet(buf, caplen, wirelen, lt, off), this.batchEnd, multi ? { group: this.role.group + i, prog: prog! } : undefined)
            : new LiveCapture(iface, { filter, bufferTimeoutMs: this.cfg.live!.buffer_timeout_ms }, (buf, caplen, wirelen, lt) => this.packet(buf, caplen, wirelen, lt));
        this.captures.push(cap);
        if (first) this.log.info('capturing', { iface, linktype: cap.linktype, ...(multi ? { worker: this.role.me, fanout_group: this.role.group + i } : {}) });
      });
      for (const c of old) c.close();
      // (DR frames leave through a capture: the new ones)
      this.sink.l2Ports.clear();
    }
    // the kernel drop follows the filter (the main thread's: one per interface)
    if (this.follower || !this.cfg.live!.kernel_drop) return;
    for (const cap of this.captures) {
      const why = setKernelDrop(cap.iface, filter, cap.linktype);
      if (why === null) this.kernelDrop.add(cap.iface);
      else this.log.warn('kernel drop not set: the kernel also sees what tsvs captures (and drops it, with ip_forward off)', { iface: cap.iface, why });
    }
    if (first && this.kernelDrop.size) this.log.info('kernel drop', { interfaces: [...this.kernelDrop], tc: 'ingress clsact, pref 4953' });
  }

  /** interfaces whose tc ingress drops what tsvs captures (src/live/tc-drop.ts) */
  private readonly kernelDrop = new Set<string>();

  /** a capture batch ended: what it emitted leaves together */
  private readonly batchEnd = (): void => this.sink.flush();

  private packet(buf: Buffer, caplen: number, wirelen: number, linktype: number, off = 0): void {
    const r = this.rec;
    r.buf = buf;
    r.off = off;
    r.caplen = caplen;
    r.wirelen = wirelen;
    r.linktype = linktype;
    r.digits = 6;
    this.packets++;
    const us = this.nowUs();
    r.tsSec = Math.floor(us / 1e6);
    r.tsFrac = us - r.tsSec * 1e6;
    try {
      this.engine.frame(r);
    } catch (e) {
      // never let one packet stop the daemon: counted and logged
      this.log.error('packet processing failed', { error: (e as Error).message });
    }
  }

  /** DR servers without a configured MAC: from the neighbour table (asking the kernel to resolve missing ones) */
  resolveNeighbours(): void {
    const n4 = neighbours4();
    const n6 = this.services.list.some((s) => s.v6) ? neighbours6() : new Map<string, { mac: string; dev: string }>();
    for (const s of this.services.list) {
      s.cfg.servers.forEach((x, i) => {
        if (s.fwd[i] !== FWD_DR) return;
        const n = x.addr.includes(':') ? n6.get(x.addr) : n4.get(x.addr);
        const mac = x.mac?.toLowerCase() ?? n?.mac;
        if (!mac) {
          pokeNeighbour(x.addr);
          return;
        }
        const m = parseMac(mac);
        s.mac[i]!.set(m);
        const dev = n?.dev ?? this.cfg.live!.interfaces[0]!;
        const cap = this.captures.find((c) => c.iface === dev);
        const own = ifaceMac(dev);
        if (!cap || !own) {
          this.log.warn('dr server not reachable through a captured interface', { server: x.addr, dev });
          return;
        }
        if (!this.sink.l2Ports.has(macKey(m, 0))) this.log.info('dr server resolved', { server: x.addr, mac, dev });
        this.sink.l2Ports.set(macKey(m, 0), { mac: own, inject: (f) => cap.inject(f), ...(cap instanceof RingCapture ? { ifindex: cap.ifindex } : {}) });
      });
    }
  }

  /** Apply a new list of services (reload, control socket); existing connections keep their servers. */
  applyServices(cfgs: ServiceConfig[]): { added: number; changed: number; deleted: number } {
    // live workers: services whose fanout program the kernel would not take are refused before anything changes
    if (this.role.n > 1 && !this.follower) fanoutOf(new Dispatcher(this.role.slots, new Services(cfgs, this.cfg.regions), 'service'));
    const r = this.services.apply(cfgs);
    // an agent's new servers: up as their agent is
    const hub = this.hub;
    if (hub) for (const s of this.services.list) s.agentOf.forEach((a, i) => a !== null && (s.dests.healthy[i] = hub.registry.agents.get(a)?.up ? 1 : 0));
    this.serviceCfgs = cfgs;
    this.openCaptures();
    this.resolveNeighbours();
    this.onServices?.(cfgs);
    return r;
  }

  /** services and servers as listed by the control socket: deleted ones hidden, each server's health */
  serviceList(): SnapshotService[] {
    const out: SnapshotService[] = [];
    lbSummary(this.services, this.engine.x!.emitted, {}).services.forEach((x, si) => {
      const s = this.services.list[si]!;
      if (this.services.deleted.has(si)) return;
      // (region changes in wall-clock time: the engine's clock here is a monotonic one)
      withRegion(x, s, (at) => this.wallTime(at * 1e6));
      const servers = x.servers.map((y, i) => ({ ...y, health: s.dests.healthy[i] === 1 ? ('up' as const) : ('down' as const) })).filter((_, i) => !s.isRemoved(i));
      out.push({ ...x, servers });
    });
    return out;
  }

  /** what a scrape of the metrics reads of this engine (live workers: summed over them, cluster.ts) */
  metricsData(): MetricsData {
    const f: Flows | null = this.engine.flows;
    return {
      packets: this.packets,
      io: this.ioStats(),
      emitted: this.engine.x!.emitted,
      not_emitted: { ...this.engine.x!.notEmitted },
      decode_by_status: Array.from(this.engine.stats.byStatus),
      counters: counterObject(this.engine.ct, this.engine.lb),
      synproxy: this.engine.sp?.counterObject() ?? {},
      flows: f ? { count: f.count, evicted: f.evicted, evicted_full: f.evictedFull, drops: Object.fromEntries(f.dropTotals), unattributed: f.unattributed, unaccounted: f.unaccounted } : null,
      open_by_state: this.engine.ct.openByState(true),
      services: this.serviceList(),
    };
  }

  /** live workers: what the main thread decides for every engine, per service: each server's health, the home region */
  serviceState(): ServiceState[] {
    return this.services.list.map((s) => ({ healthy: Array.from(s.dests.healthy), home: s.regions?.home ?? null }));
  }

  /** a worker thread takes the main thread's serviceState() */
  applyServiceState(st: ServiceState[]): void {
    st.forEach((x, si) => {
      const s = this.services.list[si];
      if (!s || s.dests.healthy.length !== x.healthy.length) return; // (services changing: the next state fits)
      let changed = false;
      x.healthy.forEach((h, i) => {
        if (s.dests.healthy[i] !== h) {
          s.dests.healthy[i] = h;
          changed = true;
        }
      });
      if (changed) s.sched.update(s.dests);
      if (s.regions && s.regions.home !== x.home) {
        s.regions.home = x.home;
        s.setHome(x.home);
      }
    });
  }

  /* ---------------- the control socket's side (CtlTarget) ---------------- */

  status(): unknown {
    return {
      started: this.startedAt.toISOString(),
      packets: this.packets,
      conns: this.engine.ct.table.count,
      emitted: this.engine.x!.emitted,
      not_emitted: this.engine.x!.notEmitted,
      io: this.io,
      tx: { sent: this.sink.sent, errors: this.sink.errors, in_flight: this.sink.pending, ...(this.sink.batched ? { batches: this.sink.txBatches, packets: this.sink.txPackets } : {}) },
      passive_failures_ignored: this.passiveIgnored,
      capture: this.captures.map((x) => ({ iface: x.iface, ...x.stats() })),
    };
  }

  snapshot(): unknown {
    return {
      version: 1,
      source: `tsvs run (pid ${process.pid})`,
      profile: this.engine.ct.profile,
      time: this.engine.time.nowString(),
      counters: counterObject(this.engine.ct, this.engine.lb),
      gauges: gauges(this.engine.ct),
      services: this.serviceList(),
      ...(this.engine.sp ? { synproxy: this.engine.sp.counterObject() } : {}),
      io: this.ioStats(),
    };
  }

  /** how packets move, and the counts of the batched path (ctstat -S, metrics) */
  ioStats(): IoStats {
    let rxBatches = 0;
    let rxPackets = 0;
    let drops = 0;
    for (const c of this.captures) {
      const s = c.stats();
      drops += s.dropped;
      if (c instanceof RingCapture) {
        rxBatches += c.batches;
        rxPackets += c.packets;
      }
    }
    const per = (p: number, b: number) => (b ? Math.round((p / b) * 10) / 10 : 0);
    return {
      path: this.io === 'batched' ? 'batched (TPACKET_V2 ring, sendmmsg)' : `pcap (libpcap, raw-socket${this.ioWhy ? `: ${this.ioWhy}` : ''})`,
      rx_packets: rxPackets,
      rx_batches: rxBatches,
      rx_per_batch: per(rxPackets, rxBatches),
      ring_drops: drops,
      tx_packets: this.sink.txPackets,
      tx_batches: this.sink.txBatches,
      tx_per_batch: per(this.sink.txPackets, this.sink.txBatches),
      tx_errors: this.sink.errors,
      tx_last_error: this.sink.lastError,
    };
  }

  counters(): unknown {
    return {
      counters: counterObject(this.engine.ct, this.engine.lb),
      gauges: gauges(this.engine.ct),
      decoded: this.engine.stats.decoded(),
      drops: this.engine.stats.drops(),
      ...(this.engine.sp ? { synproxy: this.engine.sp.counterObject() } : {}),
    };
  }

  /** connections in this engine's table */
  connCount(): number {
    return this.engine.ct.table.count;
  }

  /** flows in this engine's table */
  flowCount(): number {
    return this.engine.flows?.count ?? 0;
  }

  connPage(from: number, limit: number, budget: number, filter: ConnFilter) {
    return pageConns(this.engine.ct, this.engine.lb, from, limit, budget, filter);
  }

  flowPage(from: number, limit: number, budget: number, filter: FlowFilter, sort?: FlowSort, recent?: string) {
    const flows = this.engine.flows;
    if (flows === null) return null;
    if (recent !== undefined) return { flows: recentFlows(flows, this.engine.time, recent), next: null, total: flows.count };
    return flowPage(flows, this.engine.time, from, limit, budget, filter, sort);
  }

  zero(): number {
    for (const s of this.services.list) {
      s.stats.fill(0);
      s.destStats.fill(0);
    }
    return this.services.list.length;
  }

  flush(): number {
    return this.engine.ct.flush();
  }

  deleteConns(filter: ConnFilter): number {
    return deleteConns(this.engine.ct, filter);
  }

  private feed: EventFeed | null = null;

  subscribe(filter: ConnFilter, types: ReadonlySet<string>, send: (event: string) => void): () => void {
    // (event times in wall-clock time: the engine's clock here is a monotonic one)
    this.feed ??= new EventFeed(this.engine.ct, (us) => this.wallTime(us));
    return this.feed.subscribe(filter, types, send);
  }

  serviceConfigs(): ServiceConfig[] {
    return this.serviceCfgs;
  }

  replaceServices(list: unknown[], why: string): { added: number; changed: number; deleted: number } {
    // the same validation as the configuration file
    const cfgs = parseConfig({ services: list, live: this.cfg.live }, 'request').services;
    const r = this.applyServices(cfgs);
    this.log.info('services changed', { by: 'ctl', cmd: why, ...r });
    return r;
  }

  /** an engine time (µs of the monotonic clock) as wall-clock ISO time */
  wallTime(us: number): string {
    return new Date(Date.now() - (this.engine.time.nowUs - us) / 1000).toISOString();
  }

  agents(): unknown {
    if (!this.hub) return null;
    return { agents: this.hub.list(), drops: this.hub.registry.drops, data: { to_agents: this.hub.dataOut, from_agents: this.hub.dataIn, refused: this.hub.dataRefused } };
  }

  timeouts(): IpvsTimeouts {
    const ct = this.engine.ct;
    const dpvs = ct.profile === 'dpvs';
    return { tcp: ct.tcpTimeouts[ct.stEstablished]!, tcpfin: ct.tcpTimeouts[ct.tcpNames.indexOf('FIN_WAIT')]!, udp: dpvs ? ct.udpT.normal : ct.udpT.replied };
  }

  setTimeouts(t: Partial<IpvsTimeouts>, log = true): IpvsTimeouts {
    const ct = this.engine.ct;
    if (t.tcp) ct.tcpTimeouts[ct.stEstablished] = t.tcp;
    if (t.tcpfin) ct.tcpTimeouts[ct.tcpNames.indexOf('FIN_WAIT')] = t.tcpfin;
    if (t.udp) {
      if (ct.profile === 'dpvs') ct.udpT.normal = t.udp;
      else ct.udpT.replied = t.udp;
    }
    const now = this.timeouts();
    if (log) this.log.info('timeouts set', { by: 'ctl', ...now });
    return now;
  }

  templates(): TemplateEntry[] {
    const out: TemplateEntry[] = [];
    const tm = this.engine.lb?.templates;
    if (!tm) return out;
    tm.each(this.engine.time.nowUs, (k, dest, expire) => {
      const si = this.services.lookup(k.proto, k.v6, k.vip, k.vport);
      const svc = si >= 0 ? this.services.list[si] : undefined;
      const srv = svc?.cfg.servers[dest];
      out.push({ proto: k.proto === 6 ? 'tcp' : 'udp', client: formatAddr(k.client, k.v6 ? 6 : 4), vip: formatAddr(k.vip, k.v6 ? 6 : 4), vport: k.vport, server: srv ? serverLabel(srv) : '?', expire: Math.round(expire) });
    });
    return out;
  }

  /** SIGHUP (and the control socket's reload): read the configuration file again and apply its services; returns how many there are */
  reload(): number {
    if (!this.configFile) return this.serviceCfgs.length;
    let cfg: Config;
    try {
      cfg = loadConfig(this.configFile);
    } catch (e) {
      this.log.error('reload failed, configuration kept', { error: (e as Error).message });
      return this.serviceCfgs.length;
    }
    let r;
    try {
      r = this.applyServices(cfg.services);
    } catch (e) {
      this.log.error('reload failed, configuration kept', { error: (e as Error).message });
      return this.serviceCfgs.length;
    }
    this.log.info('reloaded', { file: this.configFile, ...r });
    return this.serviceCfgs.length;
  }

  stop(): void {
    this.driver.stop();
    this.health.stop();
    if (this.neighTimer) clearInterval(this.neighTimer);
    for (const t of this.neighSoon) clearTimeout(t);
    for (const c of this.captures) c.close();
    this.captures.length = 0;
    for (const i of this.kernelDrop) clearKernelDrop(i);
    this.kernelDrop.clear();
    this.sink.close();
    closeProbes();
    this.hub?.close();
  }
}

/** the fanout program of a dispatcher's rule; one the kernel would not take (too long) is a ConfigError */
function fanoutOf(d: Dispatcher): Int32Array {
  try {
    return fanoutProgram(d.rule(), LINKTYPE_RAW);
  } catch (e) {
    throw new ConfigError(`live.workers: the services' ${(e as Error).message.replace(/^fanout: /, 'fanout program has ')}: fewer service addresses, or live.workers: 1`);
  }
}

/** how packets will move (batched or pcap), and why not batched; throws ConfigError for a bad setting */
export function ioChoice(cfg: Config): { io: 'batched' | 'pcap'; why: string } {
  const want = (process.env.TSVS_LIVE_IO ?? cfg.live!.io) as 'auto' | 'batched' | 'pcap';
  if (!['auto', 'batched', 'pcap'].includes(want)) throw new ConfigError(`TSVS_LIVE_IO: auto, batched or pcap, not "${want}"`);
  const native = loadNative();
  if (want === 'batched' && !native.mod) throw new ConfigError(`live.io: batched needs tsvs's native module: ${native.why}`);
  return { io: want !== 'pcap' && native.mod ? 'batched' : 'pcap', why: want === 'pcap' ? (process.env.TSVS_LIVE_IO ? 'TSVS_LIVE_IO=pcap' : 'live.io: pcap') : native.why };
}

export interface IoStats {
  path: string;
  rx_packets: number;
  tx_packets: number;
  rx_batches: number;
  rx_per_batch: number;
  ring_drops: number;
  tx_batches: number;
  tx_per_batch: number;
  tx_errors: number;
  tx_last_error: string;
}

/** per service: each server's health (1 up), the home region (region_select) */
export interface ServiceState {
  healthy: number[];
  home: string | null;
}

export interface MetricsData {
  packets: number;
  io: IoStats;
  emitted: number;
  not_emitted: Record<string, number>;
  decode_by_status: number[];
  counters: Record<string, number>;
  synproxy: Record<string, number>;
  flows: { count: number; evicted: number; evicted_full: number; drops: Record<string, number>; unattributed: number; unaccounted: number } | null;
  open_by_state: Record<string, number>;
  services: SnapshotService[];
}
