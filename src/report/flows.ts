/** Flow records for people and tools: one JSON object per flow, the replay's flow summary, top-N and filters. */
import { keepTop } from './top.js';
import type { Flows } from '../flows/flows.js';
import { formatAddr } from '../packet/bytes.js';
import { addrToWords, inPrefix, userPrefix, type Prefix } from '../packet/addr.js';
import type { Timeline } from '../timer/timeline.js';


/** one flow as --flows, snapshots and the control socket give it (times as the capture's "sec.frac") */
export interface FlowRecord {
  src: string;
  dst: string;
  created: string;
  last: string;
  pkts: number;
  bytes: number;
  fwd_pkts: number;
  fwd_bytes: number;
  tun_pkts: number;
  tun_bytes: number;
  drops: Record<string, number>;
  drop_bytes?: Record<string, number>;
  /** written at eviction: the time, and why */
  evicted?: string;
  eviction?: 'idle' | 'full';
}

const w = [new Uint32Array(4), new Uint32Array(4)] as const;

/** flow f as a record (times as the capture's "sec.frac"; drops by reason in packets, and their bytes) */
export function flowRecord(flows: Flows, f: number, time: Timeline, evicted?: 'idle' | 'full'): FlowRecord {
  const v6 = flows.addrOf(f, 'src', w[0]);
  flows.addrOf(f, 'dst', w[1]);
  const n = flows.countsOf(f);
  const d = flows.dropsOf(f);
  return {
    src: formatAddr(w[0], v6 ? 6 : 4),
    dst: formatAddr(w[1], v6 ? 6 : 4),
    created: time.formatUs(n.createdUs),
    last: time.formatUs(n.lastUs),
    pkts: n.pkts,
    bytes: n.bytes,
    fwd_pkts: n.fwdPkts,
    fwd_bytes: n.fwdBytes,
    tun_pkts: n.tunPkts,
    tun_bytes: n.tunBytes,
    drops: d.pkts,
    ...(Object.keys(d.bytes).length ? { drop_bytes: d.bytes } : {}),
    // a flow written when evicted: when, and why (idle too long, or the oldest when the table was full)
    ...(evicted ? { evicted: time.formatUs(time.nowUs), eviction: evicted } : {}),
  };
}

export type FlowSort = 'bytes' | 'pkts' | 'drops';

/** what a flow listing can be narrowed to: source and destination as an address or a CIDR prefix */
export interface FlowFilter {
  src?: string;
  dst?: string;
}


/** a filter checked (one-line errors naming the field) and turned into a test of a flow handle */
export function flowMatcher(flows: Flows, f: FlowFilter): (h: number) => boolean {
  const src = f.src !== undefined ? userPrefix('src', f.src) : null;
  const dst = f.dst !== undefined ? userPrefix('dst', f.dst) : null;
  return (h) => {
    if (src) {
      const v6 = flows.addrOf(h, 'src', w[0]);
      if (v6 !== src.v6 || !inPrefix(w[0], src.p, v6)) return false;
    }
    if (dst) {
      const v6 = flows.addrOf(h, 'dst', w[1]);
      if (v6 !== dst.v6 || !inPrefix(w[1], dst.p, v6)) return false;
    }
    return true;
  };
}

/** a filter over flow records (a snapshot's): the same test as flowMatcher, on their address text */
export function recordMatcher(f: FlowFilter): (r: FlowRecord) => boolean {
  const src = f.src !== undefined ? userPrefix('src', f.src) : null;
  const dst = f.dst !== undefined ? userPrefix('dst', f.dst) : null;
  const test = (p: { p: Prefix; v6: boolean } | null, a: string) => {
    if (!p) return true;
    const w = addrToWords(a);
    return w.v6 === p.v6 && inPrefix(w.words, p.p, w.v6);
  };
  return (r) => test(src, r.src) && test(dst, r.dst);
}

/** the `n` flows matching `filter` with the most bytes / packets / drops (one pass, no copy of the table) */
export function topFlows(flows: Flows, n: number, sort: FlowSort, filter: FlowFilter = {}): number[] {
  const match = flowMatcher(flows, filter);
  const key = sortKey(flows, sort);
  const top: Array<[number, number]> = [];
  for (const h of flows.handles()) if (match(h)) keepTop(top, n, key(h), h);
  return top.map((x) => x[1]);
}

function sortKey(flows: Flows, sort: FlowSort | undefined): (h: number) => number {
  return sort === 'drops' ? (h) => flows.dropCountOf(h) : sort === 'pkts' ? (h) => flows.pktsOf(h) : (h) => flows.bytesOf(h);
}

/**
 * A page of flows for the control socket, by handle from `from`, looking at no more than `budget` flows:
 * without `sort`, the first `limit` matching; with it, the `limit` largest of those looked at (the client
 * merges pages into its top N). `next`: the handle to go on from (null at the end).
 */
export function flowPage(flows: Flows, time: Timeline, from: number, limit: number, budget: number, filter: FlowFilter, sort?: FlowSort): { flows: FlowRecord[]; next: number | null; total: number } {
  const match = flowMatcher(flows, filter);
  const key = sortKey(flows, sort);
  const end = flows.handleEnd;
  const top: Array<[number, number]> = [];
  let h = Math.max(0, from);
  for (let looked = 0; h < end && looked < budget; h++) {
    if (!flows.isLive(h)) continue;
    looked++;
    if (!match(h)) continue;
    if (sort === undefined) {
      top.push([0, h]);
      if (top.length === limit) {
        h++;
        break;
      }
      continue;
    }
    keepTop(top, limit, key(h), h);
  }
  return { flows: top.map((x) => flowRecord(flows, x[1], time)), next: h < end ? h : null, total: flows.count };
}

/** the last destinations of a source as flow records, most recent first (no scan) */
export function recentFlows(flows: Flows, time: Timeline, src: string): FlowRecord[] {
  const { p, v6 } = userPrefix('recent', src);
  if (p.len !== (v6 ? 128 : 32)) throw new Error(`recent: expected an address, got ${JSON.stringify(src)}`);
  return flows.recentOf(p.words, v6).map((f) => flowRecord(flows, f, time));
}

export interface FlowsSummary {
  /** flows open at the end, evicted (idle or to make room), and evicted because the table was full */
  count: number;
  evicted: number;
  evicted_full: number;
  /** drops that found the drop-record pool full */
  unattributed_drops: number;
  /** packets that made no flow (overload: without a connection, while the LB dropped for want of room) */
  unaccounted_packets: number;
  /** drops by reason over every flow (packets) */
  drops: Record<string, number>;
  top: FlowRecord[];
}

export function flowsSummary(flows: Flows, time: Timeline): FlowsSummary {
  return {
    count: flows.count,
    evicted: flows.evicted,
    evicted_full: flows.evictedFull,
    unattributed_drops: flows.unattributed,
    unaccounted_packets: flows.unaccounted,
    drops: Object.fromEntries(flows.dropTotals),
    top: topFlows(flows, 10, 'bytes').map((f) => flowRecord(flows, f, time)),
  };
}
