/**
 * Prometheus metrics of a running daemon (prom-client): read from the engine's own counters at each scrape,
 * so the packet path does no extra work. Served on GET /metrics.
 */
import * as http from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Daemon, MetricsData } from './daemon.js';
import { DROP_REASONS } from '../packet/status.js';
import { NOT_EMITTED_REASONS } from '../xmit/xmit.js';

export class Metrics {
  readonly registry = new Registry();
  private server: http.Server | null = null;

  /** what the scrape in progress reads (taken at its start) */
  private m: MetricsData | null = null;

  constructor(
    private readonly d: Daemon,
    /** the engines' counters (live workers: every engine's, summed) */
    private readonly data: () => MetricsData | Promise<MetricsData> = () => d.metricsData(),
  ) {
    const r = this.registry;
    const m = () => this.m!;
    const total = (name: string, help: string, labelNames: string[], fill: (set: (labels: Record<string, string>, v: number) => void) => void) =>
      new Counter({
        name,
        help,
        labelNames,
        registers: [r],
        collect() {
          this.reset();
          // (zero too: every series is there from the start, each server's included)
          fill((l, v) => this.inc(l, v));
        },
      });
    const gauge = (name: string, help: string, labelNames: string[], fill: (set: (labels: Record<string, string>, v: number) => void) => void) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers: [r],
        collect() {
          this.reset();
          fill((l, v) => this.set(l, v));
        },
      });
    total('tsvs_packets_total', 'packets captured', [], (set) => set({}, m().packets));
    // packet I/O (issue 19): batches in and out, packets the capture lost (the ring full, or libpcap's drops), sends that failed
    total('tsvs_io_batches_total', 'calls into the engine with captured packets (rx) and sendmmsg batches (tx): batched I/O only', ['direction'], (set) => {
      const io = m().io;
      set({ direction: 'rx' }, io.rx_batches);
      set({ direction: 'tx' }, io.tx_batches);
    });
    total('tsvs_capture_drops_total', 'packets the capture lost before the engine saw them (ring full; libpcap: ps_drop)', [], (set) => set({}, m().io.ring_drops));
    total('tsvs_tx_errors_total', 'packets whose send failed (socket buffer full, no route...)', [], (set) => set({}, m().io.tx_errors));
    total('tsvs_emitted_total', 'packets the load balancer sent', [], (set) => set({}, m().emitted));
    total('tsvs_not_emitted_total', 'packets not sent, by reason', ['reason'], (set) => {
      // every reason from the start, zero-valued
      const ne = m().not_emitted;
      for (const k of NOT_EMITTED_REASONS) set({ reason: k }, ne[k] ?? 0);
    });
    total('tsvs_decode_drops_total', 'packets that did not decode, by reason', ['reason'], (set) => {
      // every reason from the start, zero-valued
      const by = m().decode_by_status;
      DROP_REASONS.forEach((r, i) => {
        if (r !== 'ok' && r !== 'not_ip') set({ reason: r }, by[i]!);
      });
    });
    total('tsvs_conntrack_total', 'connection tracking counters', ['counter'], (set) => {
      for (const [k, v] of Object.entries(m().counters)) set({ counter: k }, v);
    });
    total('tsvs_synproxy_total', 'synproxy counters (DPVS names)', ['counter'], (set) => {
      for (const [k, v] of Object.entries(m().synproxy)) set({ counter: k }, v);
    });
    // flow accounting (when on): flows now, evictions by why, and drops by reason summed over every flow
    gauge('tsvs_flows', 'flows per (source, destination) in the table', [], (set) => set({}, m().flows?.count ?? 0));
    total('tsvs_flow_evictions_total', 'flows evicted: idle too long, or the least recently active when the table was full', ['why'], (set) => {
      const f = m().flows;
      if (!f) return;
      set({ why: 'idle' }, f.evicted - f.evicted_full);
      set({ why: 'full' }, f.evicted_full);
    });
    total('tsvs_flow_drops_total', 'packets dropped on a flow, by reason (summed over flows, evicted ones included)', ['reason'], (set) => {
      for (const [k, v] of Object.entries(m().flows?.drops ?? {})) set({ reason: k }, v);
    });
    total('tsvs_flow_drops_unattributed_total', 'of those, drops on no flow (under overload a packet without a connection makes none; or the drop-record pool was full)', [], (set) => set({}, m().flows?.unattributed ?? 0));
    total('tsvs_flow_packets_unaccounted_total', 'packets that made no flow: without a connection while the LB dropped for want of transmit room', [], (set) => set({}, m().flows?.unaccounted ?? 0));
    // region_select: each service's home, each region's last latency, the changes of home
    const regional = () => m().services.filter((x) => x.region);
    gauge('tsvs_region_home', '1 for the home region of each service with region_select, 0 for its other regions', ['service', 'region'], (set) => {
      for (const x of regional()) for (const r of Object.keys(x.region!.latency)) set({ service: x.service, region: r }, x.region!.home === r ? 1 : 0);
    });
    gauge('tsvs_region_latency_ms', "each region's latency in the last probe report (its fastest answer; 0 with tsvs_region_answered 0)", ['service', 'region'], (set) => {
      for (const x of regional()) for (const [r, ms] of Object.entries(x.region!.latency)) set({ service: x.service, region: r }, ms ?? 0);
    });
    gauge('tsvs_region_answered', '1 when the region answered in the last probe report', ['service', 'region'], (set) => {
      for (const x of regional()) for (const [r, ms] of Object.entries(x.region!.latency)) set({ service: x.service, region: r }, ms === null ? 0 : 1);
    });
    total('tsvs_region_home_changes_total', 'changes of home region, by service (the first choice included)', ['service'], (set) => {
      for (const x of regional()) set({ service: x.service }, x.region!.changes.length);
    });
    // agents (issue 18): each agent's state, heartbeats, moves; refused datagrams by reason (every reason from the start)
    const agentList = () => d.hub?.list() ?? [];
    gauge('tsvs_agent_up', '1 while the agent sends fresh authenticated heartbeats', ['agent'], (set) => {
      for (const a of agentList()) set({ agent: a.id }, a.up ? 1 : 0);
    });
    total('tsvs_agent_heartbeats_total', 'authenticated fresh heartbeats, by agent', ['agent'], (set) => {
      for (const a of agentList()) set({ agent: a.id }, a.heartbeats);
    });
    total('tsvs_agent_moves_total', "changes of an agent's endpoint (NAT rebindings, moves)", ['agent'], (set) => {
      for (const a of agentList()) set({ agent: a.id }, a.moves);
    });
    gauge('tsvs_agent_rtt_seconds', "the agent's heartbeat round trip, as it reports it on the control channel", ['agent'], (set) => {
      for (const a of agentList()) if (typeof a.reported?.rtt_ms === 'number' && a.reported.rtt_ms >= 0) set({ agent: a.id }, a.reported.rtt_ms / 1000);
    });
    total('tsvs_agent_packets_total', 'client packets an agent handed to its host (delivered) and replies it sent back (returned), as it reports them', ['agent', 'direction'], (set) => {
      for (const a of agentList()) for (const k of ['delivered', 'returned'] as const) if (typeof a.reported?.[k] === 'number') set({ agent: a.id, direction: k }, a.reported[k]);
    });
    gauge('tsvs_agent_control_up', "1 while the agent's control channel (KCP) is open", ['agent'], (set) => {
      for (const a of agentList()) set({ agent: a.id }, a.control ? 1 : 0);
    });
    total('tsvs_agent_drops_total', 'datagrams on the agents socket refused, by reason', ['reason'], (set) => {
      if (d.hub) for (const [k, v] of Object.entries(d.hub.registry.drops)) set({ reason: k }, v);
    });
    gauge('tsvs_connections', 'connections in the table, by protocol and state', ['proto', 'state'], (set) => {
      // (kept on transitions: a scrape reads 64 counters, not the table; every state from the start)
      for (const [k, v] of Object.entries(m().open_by_state)) {
        const [proto, state] = k.split('/');
        set({ proto: proto ?? k, state: state ?? '' }, v);
      }
    });
    const perServer = (field: 'conns' | 'in_pkts' | 'out_pkts' | 'in_bytes' | 'out_bytes') => (set: (l: Record<string, string>, v: number) => void) => {
      for (const s of m().services) for (const x of s.servers) set({ service: s.service, server: x.server }, x[field] ?? 0);
    };
    total('tsvs_server_connections_total', 'connections scheduled to each real server', ['service', 'server'], perServer('conns'));
    total('tsvs_server_in_packets_total', 'packets toward each real server', ['service', 'server'], perServer('in_pkts'));
    total('tsvs_server_out_packets_total', 'packets from each real server', ['service', 'server'], perServer('out_pkts'));
    total('tsvs_server_in_bytes_total', 'bytes toward each real server', ['service', 'server'], perServer('in_bytes'));
    total('tsvs_server_out_bytes_total', 'bytes from each real server', ['service', 'server'], perServer('out_bytes'));
    gauge('tsvs_server_active_connections', 'ESTABLISHED connections per real server', ['service', 'server'], (set) => {
      for (const s of m().services) for (const x of s.servers) set({ service: s.service, server: x.server }, x.active);
    });
    gauge('tsvs_server_up', '1 when the health checks say up', ['service', 'server'], (set) => {
      for (const s of m().services) for (const x of s.servers) set({ service: s.service, server: x.server }, x.health === 'down' ? 0 : 1);
    });
    gauge('tsvs_server_weight', 'weight of each real server', ['service', 'server'], (set) => {
      for (const s of m().services) for (const x of s.servers) set({ service: s.service, server: x.server }, x.weight);
    });
  }

  listen(hostPort: string): Promise<void> {
    const i = hostPort.lastIndexOf(':');
    const host = hostPort.slice(0, i).replace(/^\[|\]$/g, '');
    const port = Number(hostPort.slice(i + 1));
    return new Promise((resolve, reject) => {
      const srv = http.createServer((req, res) => {
        if (req.method !== 'GET' || req.url !== '/metrics') {
          res.writeHead(404).end('not found: GET /metrics\n');
          return;
        }
        Promise.resolve()
          .then(async () => {
            this.m = await this.data();
            return this.registry.metrics();
          })
          .then(
          (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
          (e: Error) => res.writeHead(500).end(`${e.message}\n`),
        );
      });
      srv.once('error', reject);
      srv.listen(port, host, () => {
        this.server = srv;
        resolve();
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server) return resolve();
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }
}
