/**
 * Probe plans on the engine's timeline (one driver for every timer): a full plan at the first packet and
 * every `full_interval`, incremental ones every `incremental_interval` between; each plan's report goes to
 * every service with region_select. In replay the answers come from a latency model (`tsvs replay
 * --latency FILE`), read at each try's time, so a replay shows when the home would have moved.
 */
import type { Timeline } from '../timer/timeline.js';
import type { Service } from '../service/services.js';
import { planFor, type RegionsConfig, type Report } from './regions.js';

/** a probe's answer: round trip in ms, or null (no answer); `t`: seconds since the first packet */
export type Answer = (region: string, t: number) => number | null;

export class RegionDriver {
  private t0 = -1;
  private nextUs = 0;
  private lastFullUs = -Infinity;
  private last: Report | null = null;
  readonly regions: string[];
  plans = 0;

  constructor(
    private readonly services: Service[],
    private readonly cfg: RegionsConfig,
    private readonly answer: Answer,
    time: Timeline,
  ) {
    this.regions = [...new Set(services.flatMap((s) => s.regions!.regions))];
    time.every(this.tick);
  }

  private readonly tick = (_tick: number, nowUs: number): void => {
    if (this.t0 < 0) this.t0 = this.nextUs = nowUs;
    // a home that lost its last usable server is left at once, not at the next plan
    for (const s of this.services) s.regions!.recheck(nowUs / 1e6);
    if (nowUs < this.nextUs) return;
    const full = nowUs - this.lastFullUs >= this.cfg.full_interval * 1e6;
    if (full) this.lastFullUs = nowUs;
    this.nextUs = nowUs + this.cfg.incremental_interval * 1e6;
    this.run(nowUs, full);
  };

  private run(nowUs: number, full: boolean): void {
    const byRegion = planFor(this.cfg, this.regions, full, this.last, this.services.map((s) => s.regions!.home));
    const t = (nowUs - this.t0) / 1e6;
    const rep: Report = new Map();
    for (const [r, probes] of byRegion) {
      let best: number | null = null;
      for (const p of probes) {
        const a = this.answer(r, t + p.delayMs / 1000);
        if (a !== null && (best === null || a < best)) best = a;
      }
      rep.set(r, best);
    }
    this.plans++;
    this.last = rep;
    for (const s of this.services) s.regions!.report(nowUs / 1e6, rep);
  }
}

/**
 * What each region's probes answer over time, for replay: JSON lines {"t": SECONDS_SINCE_FIRST_PACKET,
 * "region": "eu", "rtt_ms": 42.5} (rtt_ms null: no answer from then on); a region answers its latest value
 * at or before the time asked, and nothing before its first line.
 */
export class LatencyModel {
  private readonly series = new Map<string, Array<[number, number | null]>>();

  static parse(text: string, file: string): LatencyModel {
    const m = new LatencyModel();
    text.split('\n').forEach((raw, i) => {
      const line = raw.trim();
      if (!line || line.startsWith('#')) return;
      const where = `${file}: line ${i + 1}`;
      let o: unknown;
      try {
        o = JSON.parse(line);
      } catch (e) {
        throw new Error(`${where}: not JSON (${(e as Error).message})`);
      }
      const { t, region, rtt_ms: rtt } = (o ?? {}) as { t?: unknown; region?: unknown; rtt_ms?: unknown };
      if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) throw new Error(`${where}: "t" must be seconds since the first packet (a number >= 0)`);
      if (typeof region !== 'string' || !region) throw new Error(`${where}: "region" must be a region name`);
      if (rtt !== null && (typeof rtt !== 'number' || !Number.isFinite(rtt) || rtt < 0)) throw new Error(`${where}: "rtt_ms" must be milliseconds >= 0, or null (no answer)`);
      const s = m.series.get(region) ?? [];
      s.push([t, rtt as number | null]);
      m.series.set(region, s);
    });
    for (const s of m.series.values()) s.sort((a, b) => a[0] - b[0]);
    return m;
  }

  get regions(): string[] {
    return [...this.series.keys()];
  }

  at(region: string, t: number): number | null {
    const s = this.series.get(region);
    if (!s) return null;
    let v: number | null = null;
    for (const [ti, x] of s) {
      if (ti > t) break;
      v = x;
    }
    return v;
  }
}
