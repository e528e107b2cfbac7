/** What the load balancer did, for the replay summary, snapshots and the control socket. */
import type { Engine } from '../engine.js';
import { serverLabel, ST_CONNS, ST_INBYTES, ST_INPKTS, ST_N, ST_OUTBYTES, ST_OUTPKTS, type Service, type Services } from '../service/services.js';
import type { SnapshotService } from './records.js';

export interface LbSummary {
  /** ICMP errors the LB generated (fragmentation needed / packet too big, time exceeded) */
  icmp_sent?: { frag_needed: number; time_exceeded: number };
  /** FNAT packets that got a TOA option */
  toa_added?: number;
  /** FNAT packets that carried a PROXY protocol header (retransmissions of it included) */
  proxy_headers?: number;
  /** synproxy counters (DPVS names) */
  synproxy?: Record<string, number>;
  /** persistence templates */
  templates?: { created: number; expired: number; open_at_end: number };
  emitted: number;
  not_emitted: Record<string, number>;
  services: SnapshotService[];
}

/** What the engine's load balancer emitted and did not, and the per-service counters. */
export function lbSummaryOf(e: Engine): LbSummary {
  const x = e.x!;
  const out = lbSummary(e.services!, x.emitted, x.notEmitted);
  if (x.icmpSent.frag_needed + x.icmpSent.time_exceeded > 0) out.icmp_sent = x.icmpSent;
  if (x.toaOn) out.toa_added = x.toaAdded;
  if (e.services!.list.some((s) => s.pp !== 0)) out.proxy_headers = x.ppSent;
  if (e.sp) out.synproxy = e.sp.counterObject();
  // region_select: the home, the last latencies, every change (times as the capture's)
  e.services!.list.forEach((s, i) => withRegion(out.services[i], s, (at) => e.time.formatUs(Math.round(at * 1e6))));
  const tp = e.lb!.templates;
  if (tp) out.templates = { created: tp.created, expired: tp.expired, open_at_end: tp.count };
  return out;
}

export function lbSummary(sv: Services, emitted: number, notEmitted: Record<string, number>): LbSummary {
  return {
    emitted,
    not_emitted: notEmitted,
    services: sv.list.map((s) => ({
      service: s.label,
      scheduler: s.cfg.scheduler,
      forward: s.cfg.forward,
      conns: s.stats[ST_CONNS]!,
      in_pkts: s.stats[ST_INPKTS]!,
      out_pkts: s.stats[ST_OUTPKTS]!,
      in_bytes: s.stats[ST_INBYTES]!,
      out_bytes: s.stats[ST_OUTBYTES]!,
      rate: s.est.rates(0),
      servers: s.cfg.servers.map((x, i) => ({
        server: serverLabel(x),
        weight: s.dests.weight[i]!,
        conns: s.destStats[i * ST_N + ST_CONNS]!,
        in_pkts: s.destStats[i * ST_N + ST_INPKTS]!,
        out_pkts: s.destStats[i * ST_N + ST_OUTPKTS]!,
        in_bytes: s.destStats[i * ST_N + ST_INBYTES]!,
        out_bytes: s.destStats[i * ST_N + ST_OUTBYTES]!,
        active: s.dests.active[i]!,
        inactive: s.dests.inactive[i]!,
        rate: s.destEst.rates(i),
      })),
    })),
  };
}

/** a listed service with its region_select state: home, last latencies, changes (`ts`: how a time in engine seconds is written) */
export function withRegion(o: SnapshotService | undefined, s: Service, ts: (at: number) => string): void {
  const r = s.regions;
  if (!r || !o) return;
  o.region = {
    home: r.home,
    rule: r.cfg.rule,
    latency: Object.fromEntries(r.regions.map((n) => [n, r.latency.get(n) ?? null])),
    changes: r.changes.map((c) => ({ ts: ts(c.at), from: c.from, to: c.to, why: c.why })),
  };
  o.servers.forEach((x, j) => (x.region = s.cfg.servers[j]?.region));
}
