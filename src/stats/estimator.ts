/**
 * Rate estimator of IPVS (net/netfilter/ipvs/ip_vs_est.c): every 2 seconds the counters of each service and
 * server are sampled, and each rate follows an exponentially weighted moving average with weight 1/4:
 *
 *   rate = (count - last) << 9        connections and packets: per second, scaled by 2^10 (2 s samples)
 *   rate = (bytes - last) << 4        bytes: per second, scaled by 2^5
 *   avg += (rate - avg) >> 2
 *
 * read back as (avg + 0x1FF) >> 10 (cps, pps) and (avg + 0xF) >> 5 (bps), in integer arithmetic as IPVS
 * does (arithmetic shift = floor). Values are kept in doubles: exact integers up to 2^53.
 */

/** counters per entity, in the order of the services' ST_* indexes: conns, in/out packets, in/out bytes */
const ST_N = 5;
/** the IPVS sampling period */
const EST_PERIOD_US = 2_000_000;
/** after this many idle periods every average is zero or close to it: jump instead of looping */
const MAX_CATCH_UP = 256;

/** rates in IPVS order: connections, packets in/out, bytes in/out per second */
export interface Rates {
  cps: number;
  inpps: number;
  outpps: number;
  inbps: number;
  outbps: number;
}

const SHIFT = [9, 9, 9, 4, 4]; // by counter index: connections and packets << 9, bytes << 4

export class Estimator {
  /** per entity: last sampled counters (ST_N) and averages (ST_N), scaled */
  private readonly last: Float64Array;
  private readonly avg: Float64Array;

  /** `stats`: the counters of `n` entities, ST_N each (a service's or its servers') */
  constructor(
    private readonly stats: Float64Array,
    private readonly n: number,
  ) {
    this.last = new Float64Array(n * ST_N);
    this.avg = new Float64Array(n * ST_N);
  }

  /** start (again) from the current counters with zero rates: at start, and after a long silence */
  restart(): void {
    this.avg.fill(0);
    this.last.set(this.stats);
  }

  /** continue from another estimator's state (a service replaced at run time; its first entities) */
  copyFrom(o: Estimator): void {
    const k = Math.min(this.last.length, o.last.length);
    this.last.set(o.last.subarray(0, k));
    this.avg.set(o.avg.subarray(0, k));
  }

  /** one 2-second sample */
  sample(): void {
    const s = this.stats;
    const last = this.last;
    const avg = this.avg;
    for (let i = 0; i < this.n * ST_N; i++) {
      const rate = (s[i]! - last[i]!) * 2 ** SHIFT[i % ST_N]!;
      last[i] = s[i]!;
      avg[i]! += Math.floor((rate - avg[i]!) / 4);
    }
  }

  /** the rates of entity `i` (ipvsadm --rate) */
  rates(i: number): Rates {
    const a = this.avg;
    const o = i * ST_N;
    const r = (k: number) => (k < 3 ? Math.floor((a[o + k]! + 0x1ff) / 1024) : Math.floor((a[o + k]! + 0xf) / 32));
    return { cps: r(0), inpps: r(1), outpps: r(2), inbps: r(3), outbps: r(4) };
  }
}

/**
 * The one 2-second clock of a set of estimators (IPVS runs all of them from one timer): `advance` with each
 * packet's time samples every estimator once per period that ended.
 */
export class EstimatorClock {
  private next = -1;

  /** `after`: the clock this one replaces (its schedule is kept) */
  constructor(
    private readonly ests: Estimator[],
    after?: EstimatorClock,
  ) {
    if (after) this.next = after.next;
  }

  advance(us: number): void {
    if (us < this.next) return;
    if (this.next < 0) {
      for (const e of this.ests) e.restart();
      this.next = us + EST_PERIOD_US;
      return;
    }
    const periods = Math.floor((us - this.next) / EST_PERIOD_US) + 1;
    if (periods > MAX_CATCH_UP) {
      // a long silence (a gap in the capture): the averages have long decayed to nothing
      for (const e of this.ests) e.restart();
    } else for (let k = 0; k < periods; k++) for (const e of this.ests) e.sample();
    this.next += periods * EST_PERIOD_US;
  }
}
