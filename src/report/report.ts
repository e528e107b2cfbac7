/**
 * What the replay report (`tsvs replay --report OUT.html`) shows, collected while the engine runs: counters
 * sampled in virtual time (src/report/sampler.ts), the longest and largest connections, and at the end the
 * services' shares, the top flows and the summary. The page itself is src/report/html.ts.
 */
import { SYNPROXY_COUNTERS } from '../synproxy/synproxy.js';
import type { Engine } from '../engine.js';
import { DROP_REASONS } from '../packet/status.js';
import { ST_CONNS, ST_INPKTS, ST_N, ST_OUTPKTS, serverLabel } from '../service/services.js';
import { flowRecord, topFlows, type FlowRecord } from './flows.js';
import { Sampler, type Samples } from './sampler.js';
import { lbSummaryOf } from './summary.js';
import { TopConns, type TopConn } from './top.js';
import { COUNTER_NAMES } from '../conntrack/bits.js';
import type { SnapshotService } from './records.js';
import { STATE_STRIDE } from '../conntrack/conntrack.js';

const PROTO_ROWS = ['tcp', 'udp', 'icmp', 'icmpv6'];

/** conntrack counters that mean a packet was not tracked or was dropped */
const CT_DROPS = ['invalid', 'insert_failed', 'drop', 'early_drop'];

export interface ServerShare {
  server: string;
  weight: number;
  /** the server's part of the service's weights and of its connections (0-1) */
  weight_share: number;
  conn_share: number;
  conns: number;
  pkts: number;
  bytes: number;
}

export interface ReportData {
  tool: string;
  file: string;
  first_ts: string | null;
  last_ts: string | null;
  samples: Samples;
  services: Array<{ service: string; scheduler: string; forward: string; conns: number; servers: ServerShare[]; region?: SnapshotService['region'] }>;
  /** open at the end, by bytes and by packets (null: flow accounting was off) */
  flows: { bytes: FlowRecord[]; pkts: FlowRecord[] } | null;
  conns: { duration: TopConn[]; bytes: TopConn[] };
  /** filled in by the command: the text summary, the command line, the configuration */
  summary: string;
  command: string;
  config: string | null;
}

export class ReportCollector {
  readonly sampler: Sampler;
  private readonly top: TopConns;
  /** packets and bytes on the wire that entered the engine (the replay counts them) */
  packets = 0;
  bytes = 0;

  constructor(
    private readonly e: Engine,
    points = 1000,
  ) {
    const s = (this.sampler = new Sampler(points, new Set(['traffic', 'bytes', 'new'])));
    const ct = e.ct;
    s.add('traffic', 'packets', 'count', () => this.packets);
    s.add('bytes', 'bytes', 'count', () => this.bytes);
    const x = e.x;
    if (x) s.add('traffic', 'emitted by the LB', 'count', () => x.emitted);
    s.add('new', 'tcp', 'count', () => ct.createdByProto.tcp);
    s.add('new', 'udp', 'count', () => ct.createdByProto.udp);
    s.add('new', 'icmp', 'count', () => ct.createdByProto.icmp);
    // open connections from Conntrack.byState: one series per state name (several rows may share one)
    const by = ct.byState;
    for (const [name, rows] of ct.stateRows()) {
      if (rows.length <= 2) s.addRef('open_state', name, 'gauge', by, rows[0]!, rows[1] ?? -1);
      else s.add('open_state', name, 'gauge', () => rows.reduce((a, r) => a + by[r]!, 0));
    }
    PROTO_ROWS.forEach((p, row) =>
      s.add('open_proto', p, 'gauge', () => {
        let n = 0;
        for (let i = row * STATE_STRIDE; i < (row + 1) * STATE_STRIDE; i++) n += by[i]!;
        return n;
      }),
    );
    const byStatus = e.stats.byStatus;
    DROP_REASONS.forEach((r, i) => {
      if (r !== 'ok' && r !== 'not_ip') s.addRef('drops', `decode: ${r}`, 'count', byStatus, i);
    });
    for (const n of CT_DROPS) s.addRef('drops', `conntrack: ${n}`, 'count', ct.counters, COUNTER_NAMES.indexOf(n as (typeof COUNTER_NAMES)[number]));
    if (x) s.addMany('drops', 'count', () => Object.entries(x.notEmitted).map(([k, v]) => [`not emitted: ${k}`, v]));
    const icmpErr = COUNTER_NAMES.indexOf('icmp_error');
    const related = COUNTER_NAMES.indexOf('related');
    s.addRef('icmp', 'ICMP errors seen', 'count', ct.counters, icmpErr);
    s.addRef('icmp', 'related to a connection', 'count', ct.counters, related);
    if (x) {
      s.add('icmp', 'sent by the LB: fragmentation needed', 'count', () => x.icmpSent.frag_needed);
      s.add('icmp', 'sent by the LB: time exceeded', 'count', () => x.icmpSent.time_exceeded);
    }
    const sp = e.sp;
    if (sp) SYNPROXY_COUNTERS.forEach((n, i) => s.addRef('synproxy', n, 'count', sp.counters, i));
    for (const svc of e.services?.list ?? []) {
      svc.cfg.servers.forEach((srv, i) => {
        const name = serverLabel(srv);
        s.addRef(`svc ${svc.label}: conns`, name, 'count', svc.destStats, i * ST_N + ST_CONNS);
        s.addRef(`svc ${svc.label}: pkts`, name, 'count', svc.destStats, i * ST_N + ST_INPKTS, i * ST_N + ST_OUTPKTS);
        s.addRef(`svc ${svc.label}: active`, name, 'gauge', svc.dests.active, i);
      });
    }
    // region_select: the home (1 while a region is it) and the last probed latency of each region
    for (const svc of e.services?.list ?? []) {
      const rs = svc.regions;
      if (!rs) continue;
      for (const r of rs.regions) {
        s.add(`svc ${svc.label}: home`, r, 'gauge', () => (rs.home === r ? 1 : 0));
        s.add(`svc ${svc.label}: latency`, r, 'gauge', () => rs.latency.get(r) ?? 0);
      }
    }
    const lb = e.lb;
    if (lb && e.services?.list.some((v) => v.cfg.persistence)) s.add('templates', 'persistence templates', 'gauge', () => lb.templates?.count ?? 0);
    const flows = e.flows;
    if (flows) s.add('flows', 'flows', 'gauge', () => flows.count);
    e.time.every(s.tick);
    this.top = new TopConns(ct, e.lb);
  }

  /** at the end of the capture (before any draining): the last point, and the rest of the data */
  finish(file: string, firstTs: string | null, lastTs: string | null): ReportData {
    const e = this.e;
    this.sampler.sample(e.time.nowUs);
    const flows = e.flows;
    return {
      tool: 'tsvs',
      file,
      first_ts: firstTs,
      last_ts: lastTs,
      samples: this.sampler.result(),
      services: e.x
        ? lbSummaryOf(e).services.map((v) => {
            const wsum = v.servers.reduce((a, x) => a + x.weight, 0);
            return {
              service: v.service,
              scheduler: v.scheduler,
              forward: v.forward ?? '',
              conns: v.conns,
              ...(v.region ? { region: v.region } : {}),
              servers: v.servers.map((x) => ({
                server: x.server,
                weight: x.weight,
                weight_share: wsum > 0 ? x.weight / wsum : 0,
                conn_share: v.conns > 0 ? x.conns / v.conns : 0,
                conns: x.conns,
                pkts: x.in_pkts + x.out_pkts,
                bytes: (x.in_bytes ?? 0) + (x.out_bytes ?? 0),
              })),
            };
          })
        : [],
      flows: flows ? { bytes: topFlows(flows, 20, 'bytes').map((f) => flowRecord(flows, f, e.time)), pkts: topFlows(flows, 20, 'pkts').map((f) => flowRecord(flows, f, e.time)) } : null,
      conns: this.top.result(),
      summary: '',
      command: '',
      config: null,
    };
  }
}
