/**
 * Nearest-region selection, live: the probe plans of src/lb/regions.ts on the engine's timeline (the daemon's
 * one timer), probes sent from the LB itself to each region's servers (rotating over them), never on the
 * packet path: a plan starts on a tick, its probes run as timers and sockets, and its report goes to every
 * service with region_select when the last try has answered or timed out. Kinds: `tcp` (connect time),
 * `http` (the time of a GET of `probe_path` on a connection already open, to its status line).
 */
import * as net from 'node:net';
import type { Timeline } from '../timer/timeline.js';
import type { Service } from '../service/services.js';
import { plan, type HomeChange, type Probe, type RegionsConfig, type Report } from '../lb/regions.js';

/** a try is a failure after this long */
export const PROBE_TIMEOUT_MS = 1000;

/** one round trip to addr:port in ms (null: no answer within the timeout) */
export function rtt(addr: string, port: number, kind: 'tcp' | 'http', path: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<number | null> {
  return new Promise((resolve) => {
    let done = false;
    let t0 = performance.now();
    const s = net.createConnection({ host: addr, port });
    const finish = (v: number | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    s.on('error', () => finish(null));
    s.on('connect', () => {
      if (kind === 'tcp') return finish(performance.now() - t0);
      t0 = performance.now();
      s.write(`GET ${path} HTTP/1.1\r\nHost: ${addr}\r\nUser-Agent: tsvs-region-probe\r\nConnection: close\r\n\r\n`);
      s.setEncoding('latin1');
      let head = '';
      s.on('data', (d: string) => {
        head += d;
        if (/^HTTP\/\d\.\d \d{3}/.test(head)) finish(performance.now() - t0);
        else if (head.length > 64) finish(null);
      });
    });
  });
}

export class LiveRegionProber {
  private nextUs = -1;
  private lastFullUs = -Infinity;
  private last: Report | null = null;
  private inFlight = false;
  private readonly rotate = new Map<string, number>();
  plans = 0;

  constructor(
    private readonly services: () => Service[],
    private readonly cfg: RegionsConfig,
    private readonly time: Timeline,
    /** told every change of home */
    private readonly onChange: (service: Service, c: HomeChange) => void,
    private readonly probe = rtt,
  ) {
    time.every(this.tick);
  }

  private readonly tick = (_tick: number, nowUs: number): void => {
    const list = this.services();
    for (const s of list) this.watch(s, () => s.regions!.recheck(nowUs / 1e6));
    if (this.nextUs < 0) this.nextUs = nowUs;
    if (nowUs < this.nextUs || this.inFlight || list.length === 0) return;
    const full = nowUs - this.lastFullUs >= this.cfg.full_interval * 1e6;
    if (full) this.lastFullUs = nowUs;
    this.nextUs = nowUs + this.cfg.incremental_interval * 1e6;
    this.inFlight = true;
    void this.run(list, full).finally(() => (this.inFlight = false));
  };

  /** run `f` and report the changes of home it made */
  private watch(s: Service, f: () => void): void {
    const n = s.regions!.changes.length;
    f();
    for (const c of s.regions!.changes.slice(n)) this.onChange(s, c);
  }

  private async run(list: Service[], full: boolean): Promise<void> {
    const regions = [...new Set(list.flatMap((s) => s.regions!.regions))];
    const byRegion = new Map<string, Probe[]>();
    for (const s of list) {
      for (const p of plan(this.cfg, regions, full, this.last, s.regions!.home)) {
        const l = byRegion.get(p.region) ?? [];
        if (!l.some((q) => q.delayMs === p.delayMs)) l.push(p);
        byRegion.set(p.region, l);
      }
    }
    // each region's servers (of every service that has it), probed in turn
    const targets = new Map<string, Array<{ addr: string; port: number }>>();
    for (const s of list) {
      s.cfg.servers.forEach((x) => {
        if (!x.region) return;
        const l = targets.get(x.region) ?? [];
        if (!l.some((y) => y.addr === x.addr && y.port === (x.port ?? s.port))) l.push({ addr: x.addr, port: x.port ?? s.port });
        targets.set(x.region, l);
      });
    }
    const rep: Report = new Map();
    await Promise.all(
      [...byRegion].map(async ([r, probes]) => {
        const tl = targets.get(r) ?? [];
        const answers = await Promise.all(
          probes.map(async (p) => {
            await new Promise((res) => setTimeout(res, p.delayMs));
            if (tl.length === 0) return null;
            const k = this.rotate.get(r) ?? 0;
            this.rotate.set(r, k + 1);
            const t = tl[k % tl.length]!;
            return this.probe(t.addr, t.port, this.cfg.probe === 'http' ? 'http' : 'tcp', this.cfg.probe_path);
          }),
        );
        const ok = answers.filter((a): a is number => a !== null);
        rep.set(r, ok.length ? Math.min(...ok) : null);
      }),
    );
    this.plans++;
    this.last = rep;
    // the services now (a reload may have replaced them while the probes ran)
    for (const s of this.services()) this.watch(s, () => s.regions!.report(this.time.nowUs / 1e6, rep));
  }
}
