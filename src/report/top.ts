/** The largest N of a stream (flows, connections), without sorting the stream: for reports and listings. */
import type { Conntrack } from '../conntrack/conntrack.js';
import type { Balancer } from '../lb/balancer.js';
import { connRecord, lbServer, type ConnRecord } from './records.js';

/** `v` with key k into `top` ([key, value], largest first, at most n); ties keep the earlier */
export function keepTop<T>(top: Array<[number, T]>, n: number, k: number, v: T): void {
  if (top.length === n && k <= top[n - 1]![0]) return;
  let i = top.length;
  while (i > 0 && top[i - 1]![0] < k) i--;
  top.splice(i, 0, [k, v]);
  if (top.length > n) top.pop();
}

export type TopConn = ConnRecord & { duration: number; bytes: number; server?: string };

/**
 * The longest and the largest (bytes both ways) connections of a replay: each is weighed when it ends (and
 * those still open at the end), and only one that makes the top N becomes a record.
 */
export class TopConns {
  private readonly byDuration: Array<[number, TopConn]> = [];
  private readonly byBytes: Array<[number, TopConn]> = [];

  constructor(
    private readonly ct: Conntrack,
    private readonly lb: Balancer | null,
    readonly n = 20,
  ) {
    ct.extend({ destroyed: (c, _t, reason) => this.weigh(c, reason) });
  }

  private weigh(c: number, end: string): void {
    const a = this.ct.acct;
    const durUs = a.lastUs(c) - a.firstUs(c);
    const bytes = a.bytesOf(c, 0) + a.bytesOf(c, 1);
    const n = this.n;
    const d = this.byDuration;
    const b = this.byBytes;
    if ((d.length === n && durUs <= d[n - 1]![0]) && (b.length === n && bytes <= b[n - 1]![0])) return;
    const r: TopConn = { ...connRecord(this.ct, c, end), duration: durUs / 1e6, bytes };
    if (this.lb && this.lb.serviceOf(c) >= 0) r.server = lbServer(this.lb, c);
    keepTop(d, n, durUs, r);
    keepTop(b, n, bytes, r);
  }

  /** the tops, with the connections still open weighed as 'open' */
  result(): { duration: TopConn[]; bytes: TopConn[] } {
    for (const c of this.ct.handles()) this.weigh(c, 'open');
    return { duration: this.byDuration.map((x) => x[1]), bytes: this.byBytes.map((x) => x[1]) };
  }
}
