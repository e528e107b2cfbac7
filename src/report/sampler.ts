/**
 * Counters sampled in virtual time, for the replay report: a bounded number of points whatever the capture's
 * length. Sampling starts every 5 ms; when `limit` points are kept, the interval doubles and every
 * second point goes (the first of each new interval stays), so a capture of any length ends with between
 * limit/2 and limit points, evenly spaced where packets were. Cumulative counters become rates between kept
 * points (exact over any spacing: nothing is lost by thinning, only resolution); gauges are the value at the
 * point. A sample reads each series once, from the timeline's tick (never per packet).
 */

/** 'count': cumulative, reported per second between points; 'gauge': the value at the point */
export type SeriesKind = 'count' | 'gauge';

interface Series {
  group: string;
  name: string;
  kind: SeriesKind;
  col: Float64Array;
}

/** series whose names appear over time (a reason counted for the first time): points before it are 0 */
interface Many {
  group: string;
  kind: SeriesKind;
  many: () => Iterable<[string, number]>;
}

export interface SampledSeries {
  group: string;
  name: string;
  kind: SeriesKind;
  /** per point: the value (gauge) or the rate per second since the point before (count; 0 at the first) */
  values: number[];
  /** gauges: the largest value sampled; counts: the total over the capture */
  total: number;
}

export interface Samples {
  /** seconds since the epoch of each point (the packet time the sample was taken at) */
  t: number[];
  /** the sampling interval at the end, in seconds */
  interval: number;
  series: SampledSeries[];
}

/**
 * the first interval: 5 ms (a 10 s capture fills the points once; a sample reads every series, and at 1 ms a
 * dense 5 s capture took twice as many samples, about 5% of its replay)
 */
const START_INTERVAL_US = 5000;

export class Sampler {
  private readonly series: Series[] = [];
  private readonly byKey = new Map<string, Series>();
  /* fixed series read by a function, or straight from a counter array (arr[idx] + arr[idx2]): no call */
  private readonly fnCols: Float64Array[] = [];
  private readonly fns: Array<() => number> = [];
  private readonly refCols: Float64Array[] = [];
  private readonly refArrs: Array<ArrayLike<number>> = [];
  private readonly refIdx: number[] = [];
  private readonly refIdx2: number[] = [];
  private readonly manys: Many[] = [];
  /** the series the manys made (they hold 0, or their total, at a point that does not name them) */
  private readonly dyn: Series[] = [];
  private t: Float64Array;
  private n = 0;
  private t0 = -1;
  private intervalUs = START_INTERVAL_US;
  private nextUs = 0;

  /**
   * `limit`: the most points kept (even); `always`: groups whose series are kept when they never left 0 (the
   * others' all-zero series are left out of the result)
   */
  constructor(
    readonly limit = 1000,
    private readonly always = new Set<string>(),
  ) {
    if (limit < 4 || limit % 2 !== 0) throw new Error(`sampler: limit ${limit} must be even and at least 4`);
    this.t = new Float64Array(limit);
  }

  add(group: string, name: string, kind: SeriesKind, get: () => number): void {
    this.fnCols.push(this.make(group, name, kind).col);
    this.fns.push(get);
  }

  /** a series read as arr[idx] (+ arr[idx2]) */
  addRef(group: string, name: string, kind: SeriesKind, arr: ArrayLike<number>, idx: number, idx2 = -1): void {
    this.refCols.push(this.make(group, name, kind).col);
    this.refArrs.push(arr);
    this.refIdx.push(idx);
    this.refIdx2.push(idx2);
  }

  addMany(group: string, kind: SeriesKind, many: () => Iterable<[string, number]>): void {
    this.manys.push({ group, kind, many });
  }

  private make(group: string, name: string, kind: SeriesKind): Series {
    const x = { group, name, kind, col: new Float64Array(this.limit) };
    this.byKey.set(`${group}\0${name}`, x);
    this.series.push(x);
    return x;
  }

  /** the timeline's tick: a point when the interval has passed */
  readonly tick = (_tick: number, nowUs: number): void => {
    if (nowUs >= this.nextUs) this.sample(nowUs);
  };

  /** one more point at `nowUs` (the end of the capture: whatever the interval) */
  sample(nowUs: number): void {
    if (this.t0 < 0) this.t0 = nowUs;
    if (this.n > 0 && nowUs <= this.t[this.n - 1]!) this.n--; // the same instant again: the later values win
    if (this.n === this.limit) this.thin();
    const i = this.n++;
    this.t[i] = nowUs;
    const fns = this.fns;
    const fnCols = this.fnCols;
    for (let k = 0; k < fns.length; k++) fnCols[k]![i] = fns[k]!();
    const arrs = this.refArrs;
    const cols = this.refCols;
    const idx = this.refIdx;
    const idx2 = this.refIdx2;
    for (let k = 0; k < arrs.length; k++) {
      const a = arrs[k]!;
      const j2 = idx2[k]!;
      cols[k]![i] = j2 < 0 ? a[idx[k]!]! : a[idx[k]!]! + a[j2]!;
    }
    if (this.manys.length > 0) {
      // a series not named this time (a gauge that went away) holds 0; a count keeps its total
      for (const x of this.dyn) x.col[i] = x.kind === 'count' && i > 0 ? x.col[i - 1]! : 0;
      for (const m of this.manys) for (const [name, v] of m.many()) this.put(m.group, name, m.kind, i, v);
    }
    this.nextUs = this.t0 + (Math.floor((nowUs - this.t0) / this.intervalUs) + 1) * this.intervalUs;
  }

  private put(group: string, name: string, kind: SeriesKind, i: number, v: number): Series {
    const key = `${group}\0${name}`;
    let x = this.byKey.get(key);
    if (x === undefined) {
      // points before it: 0 (nothing counted yet)
      x = this.make(group, name, kind);
      this.dyn.push(x);
    }
    x.col[i] = v;
    return x;
  }

  /** double the interval: keep the first point of each new interval (series by series: columns stay hot) */
  private thin(): void {
    this.intervalUs *= 2;
    const keep: number[] = [];
    let last = -1;
    for (let i = 0; i < this.n; i++) {
      const c = Math.floor((this.t[i]! - this.t0) / this.intervalUs);
      if (c !== last) keep.push(i);
      last = c;
    }
    for (let k = 0; k < keep.length; k++) this.t[k] = this.t[keep[k]!]!;
    for (const x of this.series) {
      const col = x.col;
      for (let k = 0; k < keep.length; k++) col[k] = col[keep[k]!]!;
    }
    this.n = keep.length;
    if (this.n === this.limit) this.thin(); // (cannot happen with evenly spaced points; kept as a bound)
  }

  result(): Samples {
    const n = this.n;
    const t: number[] = [];
    for (let i = 0; i < n; i++) t.push(this.t[i]! / 1e6);
    const series: SampledSeries[] = this.series.filter((x) => this.always.has(x.group) || hasAny(x.col, n)).map((x) => {
      const values: number[] = [];
      let total = 0;
      for (let i = 0; i < n; i++) {
        if (x.kind === 'gauge') {
          values.push(x.col[i]!);
          total = Math.max(total, x.col[i]!);
        } else {
          const dt = i === 0 ? 0 : t[i]! - t[i - 1]!;
          values.push(dt > 0 ? round4((x.col[i]! - x.col[i - 1]!) / dt) : 0);
        }
      }
      if (x.kind === 'count') total = n > 0 ? x.col[n - 1]! : 0;
      return { group: x.group, name: x.name, kind: x.kind, values, total };
    });
    return { t, interval: this.intervalUs / 1e6, series };
  }
}

/** four significant digits: enough for a chart, a third of the characters */
function round4(v: number): number {
  if (v === 0 || !Number.isFinite(v)) return v;
  const e = Math.floor(Math.log10(Math.abs(v))) - 3;
  return e >= 0 ? Math.round(v) : Number(v.toFixed(-e));
}

function hasAny(col: Float64Array, n: number): boolean {
  for (let i = 0; i < n; i++) if (col[i] !== 0) return true;
  return false;
}
