/**
 * Nearest-region selection (issue 17): a service whose servers sit in several regions sends new connections
 * to its home region, chosen from probed latencies. Pure logic, in the engine's time: probe plans (which
 * regions to probe, how many tries, when), reports (each region's fastest answer), and the choice of home.
 *
 * The anchor is Tailscale's home-DERP rule (net/netcheck/netcheck.go, facts not code): a full plan every
 * 5 min probes every region 3 times; incremental plans between probe the 3 fastest regions of the last report
 * and the home (2 tries for the fastest two, 4 for the home, 1 otherwise). The best latency a region had over
 * the last 5 min 5 s (times its score) wins among the regions that answered; the old home stays if it
 * answered and the winner is less than 10 ms faster than the home's *current* latency, or not below 2/3 of
 * it; a silent home stays while it was heard from in the last 120 s. Comparing a challenger's best with the
 * home's one current sample is what makes homes flap on jitter (tailscale issues #8603, #20929).
 *
 * The default rule compares like with like: the home's level against a challenger's, each the median of its
 * last 3 answers (two reports must agree: one lucky or unlucky sample moves nothing), with the same 10 ms
 * and 2/3; a home that misses one report is kept, two in a row and it is left. Both
 * rules leave a home with no usable server at once, and when nothing answers fall back to the first region
 * of the configuration that has a usable server (stable across restarts).
 */

export interface RegionsConfig {
  /** seconds between full plans, and between incremental plans */
  full_interval: number;
  incremental_interval: number;
  /** a full plan's tries per region, at these delays (ms) */
  full_delays_ms: number[];
  /** incremental tries: the two fastest regions, the home, the others */
  tries_fastest: number;
  tries_home: number;
  tries_other: number;
  /** seconds of reports a region's best (and typical) latency is taken over */
  history: number;
  /** a challenger must be this much faster (ms) and below this fraction of the home's latency */
  min_gain_ms: number;
  min_ratio: number;
  /** tailscale rule: a silent home is kept while heard from in the last this many seconds */
  keep_home: number;
  /** per region: latencies are multiplied by it before comparing (default 1) */
  score: Record<string, number>;
  probe: 'tcp' | 'http' | 'icmp';
  /** http probes: the path asked for */
  probe_path: string;
  rule: 'default' | 'tailscale';
}

export const REGION_DEFAULTS: RegionsConfig = {
  full_interval: 300,
  incremental_interval: 30,
  full_delays_ms: [0, 100, 200],
  tries_fastest: 2,
  tries_home: 4,
  tries_other: 1,
  history: 305,
  min_gain_ms: 10,
  min_ratio: 2 / 3,
  keep_home: 120,
  score: {},
  probe: 'tcp',
  probe_path: '/',
  rule: 'default',
};

/** one probe of a region: wait `delayMs` after the plan starts */
export interface Probe {
  region: string;
  delayMs: number;
}

/** a report: each probed region's fastest answer in ms, or null when none of its tries answered */
export type Report = Map<string, number | null>;

export interface HomeChange {
  /** seconds (the engine's time) */
  at: number;
  from: string | null;
  to: string;
  why: string;
}

/**
 * The probes of a plan. Full: every region, its tries at the configured delays. Incremental: the 3 fastest of
 * the last report and the home; try n (from 0) waits n × (1.2 × the region's last latency, or 200 ms), plus
 * n × 50 ms when n > 1.
 */
export function plan(cfg: RegionsConfig, regions: string[], full: boolean, last: Report | null, home: string | null): Probe[] {
  const out: Probe[] = [];
  if (full || last === null) {
    for (const r of regions) for (const d of cfg.full_delays_ms) out.push({ region: r, delayMs: d });
    return out;
  }
  const fastest = [...last.entries()]
    .filter((e): e is [string, number] => e[1] !== null)
    .sort((a, b) => a[1] - b[1] || regions.indexOf(a[0]) - regions.indexOf(b[0]))
    .slice(0, 3)
    .map((e) => e[0]);
  const chosen = [...fastest];
  if (home !== null && !chosen.includes(home)) chosen.push(home);
  for (const r of chosen) {
    const tries = r === home ? cfg.tries_home : fastest.indexOf(r) >= 0 && fastest.indexOf(r) < 2 ? cfg.tries_fastest : cfg.tries_other;
    const lat = last.get(r);
    const step = lat !== null && lat !== undefined ? 1.2 * lat : 200;
    for (let n = 0; n < tries; n++) out.push({ region: r, delayMs: n * step + (n > 1 ? n * 50 : 0) });
  }
  return out;
}

/** one plan for several services: the union of what each one's home asks for (a region's tries merged by delay) */
export function planFor(cfg: RegionsConfig, regions: string[], full: boolean, last: Report | null, homes: Array<string | null>): Map<string, Probe[]> {
  const byRegion = new Map<string, Probe[]>();
  for (const home of homes) {
    for (const p of plan(cfg, regions, full, last, home)) {
      const l = byRegion.get(p.region) ?? [];
      if (!l.some((q) => q.delayMs === p.delayMs)) l.push(p);
      byRegion.set(p.region, l);
    }
  }
  return byRegion;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** the home region of one service, from reports */
export class RegionSelector {
  home: string | null = null;
  readonly changes: HomeChange[] = [];
  /** the last report's latency of each region (null: no answer) */
  readonly latency = new Map<string, number | null>();
  private readonly answers = new Map<string, Array<[number, number]>>();
  private readonly heard = new Map<string, number>();
  private readonly missed = new Map<string, number>();

  constructor(
    readonly cfg: RegionsConfig,
    /** the regions in configuration order */
    readonly regions: string[],
    /** can any server of the region take a new connection */
    public usable: (region: string) => boolean,
  ) {}

  /** told each new home (the service masks the other regions' servers) */
  onHome: ((home: string) => void) | null = null;

  private score(r: string): number {
    return this.cfg.score[r] ?? 1;
  }

  /** a region's answers of the history window (ms, unscaled), oldest first */
  private recent(r: string, at: number): number[] {
    const a = this.answers.get(r) ?? [];
    while (a.length && a[0]![0] < at - this.cfg.history) a.shift();
    return a.map((x) => x[1]);
  }

  private change(at: number, to: string, why: string): void {
    this.changes.push({ at, from: this.home, to, why });
    this.home = to;
    this.onHome?.(to);
  }

  /** the fallback: the first region of the configuration with a usable server (null: none) */
  private fallback(): string | null {
    return this.regions.find((r) => this.usable(r)) ?? null;
  }

  /** between reports: a home with no usable server left is left at once (the best by history, or the fallback) */
  recheck(at: number): void {
    const home = this.home;
    if (home === null || this.usable(home)) return;
    const cands = this.regions.filter((r) => r !== home && this.usable(r) && this.latency.get(r) != null);
    const to = this.best(cands, at) ?? this.fallback();
    if (to !== null && to !== home) this.change(at, to, `${home} has no usable server`);
  }

  /** a report at `at` (seconds): record it, and move the home if the rule says so */
  report(at: number, rep: Report): void {
    for (const [r, ms] of rep) {
      this.latency.set(r, ms);
      if (ms === null) {
        this.missed.set(r, (this.missed.get(r) ?? 0) + 1);
        continue;
      }
      this.missed.set(r, 0);
      this.heard.set(r, at);
      const a = this.answers.get(r) ?? [];
      a.push([at, ms]);
      this.answers.set(r, a);
    }
    const answered = [...rep.entries()].filter((e): e is [string, number] => e[1] !== null && this.usable(e[0])).map((e) => e[0]);
    const fmt = (x: number) => `${Math.round(x * 10) / 10} ms`;
    const home = this.home;
    if (home !== null && !this.usable(home)) {
      const to = this.best(answered, at) ?? this.fallback();
      if (to !== null && to !== home) this.change(at, to, `${home} has no usable server`);
      return;
    }
    if (answered.length === 0) {
      const keep = home !== null && (this.cfg.rule === 'tailscale' ? (this.heard.get(home) ?? -Infinity) >= at - this.cfg.keep_home : (this.missed.get(home) ?? 0) < 2);
      if (!keep) {
        const to = this.fallback();
        if (to !== null && to !== home) this.change(at, to, 'nothing answered: the first region of the configuration');
      }
      return;
    }
    const winner = this.best(answered, at)!;
    if (home === null) {
      this.change(at, winner, `first choice (${fmt(rep.get(winner)!)})`);
      return;
    }
    if (winner === home) return;
    if (this.cfg.rule === 'tailscale') {
      const cur = rep.get(home);
      const bestAny = Math.min(...this.recent(winner, at)) * this.score(winner);
      if (cur === null || cur === undefined) {
        if ((this.heard.get(home) ?? -Infinity) >= at - this.cfg.keep_home) return;
        this.change(at, winner, `${home} silent for ${this.cfg.keep_home} s`);
        return;
      }
      const c = cur * this.score(home);
      if (bestAny < c - this.cfg.min_gain_ms && bestAny < c * this.cfg.min_ratio) this.change(at, winner, `${winner} best ${fmt(bestAny)} vs ${home} now ${fmt(c)}`);
      return;
    }
    // default: a home silent for two reports in a row is gone; one miss is kept
    if ((this.missed.get(home) ?? 0) >= 2) {
      this.change(at, winner, `${home} silent for 2 reports`);
      return;
    }
    // like with like: the home's level too (so a home that became slow is seen after two reports, as a
    // challenger that became fast is)
    const homeLevel = this.level(home, at);
    const level = this.level(winner, at);
    if (homeLevel !== null && level !== null && level < homeLevel - this.cfg.min_gain_ms && level < homeLevel * this.cfg.min_ratio) this.change(at, winner, `${winner} ${fmt(level)} vs ${home} ${fmt(homeLevel)} (medians of the last 3 answers)`);
  }

  /** default rule: a challenger's level, the median of its last 3 answers (null with fewer than 2) */
  private level(r: string, at: number): number | null {
    const a = this.recent(r, at).slice(-3);
    return a.length < 2 ? null : median(a) * this.score(r);
  }

  /** the region that wins among `cands`: the lowest best-recent (tailscale) or level (default; best-recent until it has one), config order on ties */
  private best(cands: string[], at: number): string | null {
    let win: string | null = null;
    let winV = Infinity;
    for (const r of this.regions) {
      if (!cands.includes(r)) continue;
      const rec = this.recent(r, at);
      if (rec.length === 0) continue;
      const v = this.cfg.rule === 'default' ? (this.level(r, at) ?? Math.min(...rec) * this.score(r)) : Math.min(...rec) * this.score(r);
      if (v < winV) {
        winV = v;
        win = r;
      }
    }
    return win;
  }
}
