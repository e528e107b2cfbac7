/**
 * Active health checks (keepalived's TCP_CHECK / HTTP_GET): every `interval` seconds each server of each
 * service gets a TCP connect (or an HTTP GET of `http`, healthy on 2xx/3xx) with `timeout`; `fall`
 * consecutive failures take it out of scheduling (Dests.healthy = 0, existing connections stay), `rise`
 * consecutive successes bring it back. Probes go from the LB's own address, which the capture filter
 * excludes, so the engine never sees them. Passive signals (`passive`: connections that reach ESTABLISHED or
 * end waiting for their server) feed the same streaks.
 */
import * as net from 'node:net';
import type { HealthConfig } from '../config.js';
import { serverKey, type Services } from './services.js';

export type HealthChange = (service: string, server: string, up: boolean, why: string) => void;

export function probe(addr: string, port: number, timeoutMs: number, httpPath?: string): Promise<string | null> {
  return new Promise((resolve) => {
    let done = false;
    const s = net.createConnection({ host: addr, port });
    const finish = (err: string | null) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      s.destroy();
      resolve(err);
    };
    const t = setTimeout(() => finish('timeout'), timeoutMs);
    s.on('error', (e) => finish((e as NodeJS.ErrnoException).code ?? e.message));
    s.on('connect', () => {
      if (!httpPath) return finish(null);
      s.write(`GET ${httpPath} HTTP/1.0\r\nHost: ${addr}\r\nUser-Agent: tsvs-health\r\n\r\n`);
      let head = '';
      s.setEncoding('latin1');
      s.on('data', (d: string) => {
        head += d;
        const m = /^HTTP\/\d\.\d (\d{3})/.exec(head);
        if (m) finish(m[1]!.startsWith('2') || m[1]!.startsWith('3') ? null : `HTTP ${m[1]}`);
        else if (head.length > 64 || head.includes('\n')) finish('not HTTP');
      });
      s.on('end', () => finish('closed before a status line'));
    });
  });
}

export class HealthChecker {
  private timer: NodeJS.Timeout | null = null;
  /** consecutive results per server (key: service index * 65536 + server index): > 0 successes, < 0 failures */
  private readonly streak = new Map<number, number>();
  private running = false;
  rounds = 0;

  constructor(
    private readonly services: () => Services,
    private readonly cfg: HealthConfig,
    private readonly onChange: HealthChange,
  ) {}

  start(): void {
    if (!this.cfg.enabled) return;
    this.timer = setInterval(() => void this.round(), this.cfg.interval * 1000);
    this.timer.unref();
    void this.round();
  }

  /** one probe of every server (a round still running is not overlapped) */
  async round(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const sv = this.services();
    const jobs: Array<Promise<void>> = [];
    sv.list.forEach((s, si) => {
      if (sv.deleted.has(si) || s.snat) return;
      s.cfg.servers.forEach((x, i) => {
        // (an agent's server: its agent's heartbeats say whether it is up)
        if (s.isRemoved(i) || x.agent !== undefined) return;
        const port = x.port && x.port > 0 ? x.port : s.port;
        jobs.push(
          probe(x.addr, port, this.cfg.timeout * 1000, this.cfg.http).then((err) => this.result(si, i, err)),
        );
      });
    });
    await Promise.all(jobs);
    this.rounds++;
    this.running = false;
  }

  /**
   * A passive signal from the state machine (Tracker.onOutcome): a connection to server i of service si
   * reached ESTABLISHED (ok), or ended waiting for the server. It counts toward the same rise/fall streak as
   * the probes, so a server refusing or ignoring new connections is taken out without waiting for a probe.
   */
  passive(si: number, i: number, ok: boolean): void {
    if (!this.cfg.enabled || !this.cfg.passive) return;
    this.result(si, i, ok ? null : 'passive: a connection ended waiting for the server');
  }

  /** one result (null = success) for server i of service si: its streak, and a change at rise/fall */
  private result(si: number, i: number, err: string | null): void {
    const sv = this.services();
    const s = sv.list[si];
    if (!s || sv.deleted.has(si) || s.isRemoved(i)) return;
    const k = si * 0x10000 + i;
    const prev = this.streak.get(k) ?? 0;
    const n = err === null ? (prev > 0 ? prev + 1 : 1) : prev < 0 ? prev - 1 : -1;
    this.streak.set(k, n);
    const up = s.dests.healthy[i] === 1;
    if (up && n <= -this.cfg.fall) this.set(s, i, false, err ?? '');
    else if (!up && n >= this.cfg.rise) this.set(s, i, true, 'ok');
  }

  private set(s: Services['list'][number], i: number, up: boolean, why: string): void {
    s.dests.healthy[i] = up ? 1 : 0;
    s.sched.update(s.dests);
    const x = s.cfg.servers[i]!;
    this.onChange(s.label, serverKey(x), up, why);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
