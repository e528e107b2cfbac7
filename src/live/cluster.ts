/**
 * Live workers (issue 20, `live.workers: N`): N engines, each with its own connection table, timer wheel,
 * counters, flows, receive ring and transmit sockets. The main thread's daemon is worker 0; worker threads
 * 1..N-1 each run a daemon of their own (live-worker.ts). The kernel hands each packet to one of them: every
 * ring is a member of one PACKET_FANOUT group per interface whose program is the replay's dispatch rule
 * (workers/fanout.ts: a client's packets and its servers' replies meet on one worker; a local port names its
 * worker, and each worker lends only its own). A member's index is its order of joining, so the workers join
 * one after the other (0 first) and keep their rings for the daemon's life: a reload replaces the filters and
 * the group's program in place.
 *
 * The main thread decides what every engine must agree on and sends it: the services (each change), each
 * server's health and each service's home region (as they change), the timeouts. It also owns what
 * exists once: the health checks, region probes, the agents' hub (packets for an agent come to it from the
 * workers; an agent's packets go to the worker the rule names), the control socket and metrics. Requests that
 * read or change the tables are asked of every worker and merged here (counters summed, listings concatenated,
 * a cursor naming the worker and its position).
 */
import { Worker } from 'node:worker_threads';
import type { Daemon, MetricsData, ServiceState } from './daemon.js';
import { ConfigError, type Config, type ServiceConfig } from '../config.js';
import type { Logger } from '../log.js';
import type { CtlTarget, IpvsTimeouts, TemplateEntry } from '../ctl/server.js';
import type { ConnFilter, SnapshotConn, SnapshotService } from '../report/records.js';
import type { FlowFilter, FlowRecord, FlowSort } from '../report/flows.js';
import { sumInto } from '../report/sum.js';

/** what a worker thread is made from (structured-cloneable) */
export interface LiveWorkerInit {
  cfg: Config;
  me: number;
  n: number;
  group: number;
  slots: Uint8Array;
  /** the synproxy's cookie secret, hex: every worker's cookies are the same */
  secret: string;
  level: 'debug' | 'info' | 'warn' | 'error';
  json: boolean;
}

/** main thread → worker */
export type ToWorker =
  | { t: 'req'; id: number; m: string; a: unknown[] }
  | { t: 'services'; cfgs: ServiceConfig[] }
  | { t: 'state'; st: ServiceState[] }
  | { t: 'timeouts'; v: Partial<IpvsTimeouts> }
  | { t: 'sub'; sid: number; filter: ConnFilter; types: string[] }
  | { t: 'unsub'; sid: number }
  | { t: 'agent'; id: string; b: Uint8Array }
  | { t: 'stop' };

/** worker → main thread */
export type FromWorker =
  | { t: 'ready' }
  | { t: 'res'; id: number; ok: true; v: unknown }
  | { t: 'res'; id: number; ok: false; err: string }
  | { t: 'passive'; si: number; d: number; ok: boolean }
  | { t: 'agent'; id: string; b: Uint8Array }
  | { t: 'ev'; sid: number; ev: string }
  | { t: 'log'; line: string };

/** how long a request may wait for a worker's answer */
const ASK_MS = 5000;
/** how often the main thread looks for changes of health and home regions to send */
const STATE_MS = 100;

/** fields not summed when merging the workers' answers (the main thread's value stands) */
const KEEP = new Set(['version', 'weight', 'health', 'region', 'per_batch', 'rx_per_batch', 'tx_per_batch', 'started', 'time', 'source']);

/** a + b as sumInto merges them, with packets per batch again from the summed packets and batches */
export function sumAnswers(a: unknown, b: unknown): unknown {
  return perBatch(sumInto(a, b, KEEP));
}

function perBatch(o: unknown): unknown {
  if (Array.isArray(o)) o.forEach(perBatch);
  else if (o !== null && typeof o === 'object') {
    const x = o as Record<string, unknown>;
    for (const v of Object.values(x)) perBatch(v);
    if (typeof x.rx_packets === 'number' && typeof x.rx_batches === 'number') {
      x.rx_per_batch = x.rx_batches ? Math.round((x.rx_packets / x.rx_batches) * 10) / 10 : 0;
      x.tx_per_batch = x.tx_batches ? Math.round(((x.tx_packets as number) / (x.tx_batches as number)) * 10) / 10 : 0;
    }
  }
  return o;
}

function sumAll<T>(list: T[]): T {
  return list.reduce((a, b) => sumAnswers(a, b) as T);
}

export class Cluster implements CtlTarget {
  private readonly workers: Worker[] = [];
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private readonly subs = new Map<number, (ev: string) => void>();
  private nextSid = 1;
  private stateSig = '';
  private stateTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  readonly n: number;

  constructor(
    readonly d: Daemon,
    private readonly log: Logger,
    private readonly init: Omit<LiveWorkerInit, 'me'>,
    /** a worker thread failed (its packets would go nowhere): the daemon must stop */
    private readonly onFail: (why: string) => void,
  ) {
    this.n = init.n;
  }

  /** start the worker threads one after the other (each joins the fanout groups in its turn) */
  async start(): Promise<void> {
    for (let me = 1; me < this.n; me++) {
      const w = new Worker(new URL('./live-worker.js', import.meta.url), { workerData: { tsvsLiveWorker: { ...this.init, me } satisfies LiveWorkerInit } });
      this.workers.push(w);
      await new Promise<void>((resolve, reject) => {
        const fail = (e: Error) => reject(new Error(`worker ${me}: ${e.message}`));
        const exit = (code: number) => reject(new Error(`worker ${me} ended before it started (exit code ${code})`));
        w.once('error', fail);
        w.once('exit', exit);
        const first = (m: FromWorker) => {
          if (m.t === 'log') return void process.stderr.write(m.line);
          if (m.t !== 'ready') return;
          w.off('message', first);
          w.off('error', fail);
          w.off('exit', exit);
          resolve();
        };
        w.on('message', first);
      });
      w.on('message', (m: FromWorker) => this.message(m));
      w.on('error', (e) => this.failed(`worker ${me}: ${e.message}`));
      w.on('exit', (code) => this.failed(`worker ${me} ended (exit code ${code})`));
    }
    const d = this.d;
    d.toWorker = (w, id, b) => this.workers[w - 1]?.postMessage({ t: 'agent', id, b } satisfies ToWorker);
    d.onServices = (cfgs) => {
      this.tell({ t: 'services', cfgs });
      this.sync(true);
    };
    // (at once on a change of health or home region; every STATE_MS too, for what changes them otherwise)
    d.onState = () => this.sync(false);
    this.sync(true);
    this.stateTimer = setInterval(() => this.sync(false), STATE_MS);
    this.stateTimer.unref();
    this.log.info('workers', { workers: this.n, fanout_group: this.init.group });
  }

  private failed(why: string): void {
    if (this.stopping) return;
    this.stopping = true;
    this.log.error('worker thread failed: stopping', { error: why });
    this.onFail(why);
  }

  private message(m: FromWorker): void {
    switch (m.t) {
      case 'res': {
        const w = this.waiting.get(m.id);
        if (!w) return;
        this.waiting.delete(m.id);
        clearTimeout(w.timer);
        if (m.ok) w.resolve(m.v);
        else w.reject(new Error(m.err));
        return;
      }
      case 'passive':
        this.d.health.passive(m.si, m.d, m.ok);
        return;
      case 'agent':
        this.d.hub?.sendData(m.id, m.b, 0, m.b.length);
        return;
      case 'ev':
        this.subs.get(m.sid)?.(m.ev);
        return;
      case 'log':
        process.stderr.write(m.line);
        return;
    }
  }

  private tell(m: ToWorker): void {
    for (const w of this.workers) w.postMessage(m);
  }

  /** health and home regions to the workers when they changed (or now) */
  private sync(force: boolean): void {
    const st = this.d.serviceState();
    const sig = JSON.stringify(st);
    if (!force && sig === this.stateSig) return;
    this.stateSig = sig;
    this.tell({ t: 'state', st });
  }

  /** ask worker `w` (1..) to run its daemon's method `m` */
  private askOne<T>(w: number, m: string, a: unknown[]): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`worker ${w} did not answer ${m} within ${ASK_MS / 1000} s`));
      }, ASK_MS);
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.workers[w - 1]!.postMessage({ t: 'req', id, m, a } satisfies ToWorker);
    });
  }

  /** method `m` of every worker's daemon, the main thread's (run at once) first */
  private async all<T>(m: keyof Daemon & string, ...a: unknown[]): Promise<T[]> {
    const mine = (this.d[m] as (...x: unknown[]) => T).apply(this.d, a);
    const theirs = await Promise.all(this.workers.map((_, i) => this.askOne<T>(i + 1, m, a)));
    return [mine, ...theirs];
  }

  /** method `m` of worker w's daemon (0: the main thread's) */
  private one<T>(w: number, m: keyof Daemon & string, ...a: unknown[]): Promise<T> {
    if (w === 0) return Promise.resolve((this.d[m] as (...x: unknown[]) => T).apply(this.d, a));
    return this.askOne<T>(w, m, a);
  }

  /* ---------------- CtlTarget: the workers' answers merged ---------------- */

  async status(): Promise<unknown> {
    const list = await this.all<Record<string, unknown>>('status');
    return { ...(sumAll(list) as object), workers: list.map((x, i) => ({ worker: i, packets: x.packets, conns: x.conns })) };
  }

  async snapshot(): Promise<unknown> {
    return sumAll(await this.all('snapshot'));
  }

  async serviceList(): Promise<SnapshotService[]> {
    return sumAll(await this.all<SnapshotService[]>('serviceList'));
  }

  async counters(): Promise<unknown> {
    return sumAll(await this.all('counters'));
  }

  async metricsData(): Promise<MetricsData> {
    return sumAll(await this.all<MetricsData>('metricsData'));
  }

  /**
   * Pages of each worker's table in turn: a cursor is position × N + worker. A bad filter throws at once (the
   * main thread's table is asked first).
   */
  connPage(from: number, limit: number, budget: number, filter: ConnFilter): Promise<{ conns: SnapshotConn[]; next: number | null; total: number }> {
    this.d.connPage(0, 1, 0, filter); // (validates the filter: throws now, as one worker would)
    type Page = { conns: SnapshotConn[]; next: number | null; total: number };
    return this.paged<Page, SnapshotConn>(from, limit, (w, pos, left) => this.one<Page>(w, 'connPage', pos, left, budget, filter), 'connCount', (p) => p.conns);
  }

  flowPage(from: number, limit: number, budget: number, filter: FlowFilter, sort?: FlowSort, recent?: string): Promise<{ flows: FlowRecord[]; next: number | null; total: number } | null> | null {
    if (this.d.engine.flows === null) return null;
    this.d.flowPage(0, 1, 0, filter, sort, recent); // (validates: throws now)
    if (recent !== undefined) {
      return this.all<{ flows: FlowRecord[]; total: number }>('flowPage', 0, limit, budget, filter, sort, recent).then((list) => ({
        // most recent first, over every worker
        flows: list.flatMap((x) => x.flows).sort((a, b) => (a.last < b.last ? 1 : a.last > b.last ? -1 : 0)),
        next: null,
        total: list.reduce((t, x) => t + x.total, 0),
      }));
    }
    type Page = { flows: FlowRecord[]; next: number | null; total: number };
    return this.paged<Page, FlowRecord>(from, limit, (w, pos, left) => this.one<Page>(w, 'flowPage', pos, sort === undefined ? left : limit, budget, filter, sort), 'flowCount', (p) => p.flows, sort);
  }

  /** what connPage and flowPage share: walk the workers from the cursor's, filling the page */
  private async paged<P extends { next: number | null; total: number }, X>(
    from: number,
    limit: number,
    page: (w: number, pos: number, left: number) => Promise<P>,
    count: 'connCount' | 'flowCount',
    items: (p: P) => X[],
    sort?: FlowSort,
  ): Promise<P & { total: number }> {
    const n = this.n;
    let w = from % n;
    let pos = Math.floor(from / n);
    const out: X[] = [];
    let next: number | null = null;
    let last: P | null = null;
    while (w < n) {
      const p = await page(w, pos, limit - out.length);
      last = p;
      out.push(...items(p));
      // (a page that came back short with a cursor used its scan budget: this request ends there too)
      if (p.next !== null) {
        next = p.next * n + w;
        break;
      }
      w++;
      pos = 0;
      if (sort === undefined && out.length >= limit) {
        next = w < n ? w : null;
        break;
      }
    }
    const totals = await this.all<number>(count);
    const all = sort === undefined ? out : (out as FlowRecord[]).sort((a, b) => flowKey(b, sort) - flowKey(a, sort)).slice(0, limit);
    const key = count === 'connCount' ? 'conns' : 'flows';
    return { ...(last as P), [key]: all, next, total: totals.reduce((a, b) => a + b, 0) };
  }

  async zero(): Promise<number> {
    return (await this.all<number>('zero'))[0]!;
  }

  async flush(): Promise<number> {
    return (await this.all<number>('flush')).reduce((a, b) => a + b, 0);
  }

  deleteConns(filter: ConnFilter): Promise<number> {
    return this.all<number>('deleteConns', filter).then((l) => l.reduce((a, b) => a + b, 0));
  }

  subscribe(filter: ConnFilter, types: ReadonlySet<string>, send: (event: string) => void): () => void {
    const mine = this.d.subscribe(filter, types, send); // (throws for a bad filter, before any worker is told)
    const sid = this.nextSid++;
    this.subs.set(sid, send);
    this.tell({ t: 'sub', sid, filter, types: [...types] });
    return () => {
      mine();
      this.subs.delete(sid);
      this.tell({ t: 'unsub', sid });
    };
  }

  reload(): number {
    return this.d.reload();
  }

  serviceConfigs(): ServiceConfig[] {
    return this.d.serviceConfigs();
  }

  replaceServices(list: unknown[], why: string): { added: number; changed: number; deleted: number } {
    return this.d.replaceServices(list, why);
  }

  timeouts(): IpvsTimeouts {
    return this.d.timeouts();
  }

  setTimeouts(t: Partial<IpvsTimeouts>): IpvsTimeouts {
    const r = this.d.setTimeouts(t);
    this.tell({ t: 'timeouts', v: t });
    return r;
  }

  async templates(): Promise<TemplateEntry[]> {
    return (await this.all<TemplateEntry[]>('templates')).flat();
  }

  agents(): unknown {
    return this.d.agents();
  }

  /** stop the worker threads (each closes its rings and sockets), then the main thread's daemon */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.stateTimer) clearInterval(this.stateTimer);
    for (const w of this.waiting.values()) clearTimeout(w.timer);
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            const t = setTimeout(() => void w.terminate().then(() => resolve()), 1000);
            t.unref();
            w.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            w.postMessage({ t: 'stop' } satisfies ToWorker);
          }),
      ),
    );
    this.d.stop();
  }
}

function flowKey(f: FlowRecord, sort: FlowSort): number {
  return sort === 'bytes' ? f.bytes : sort === 'pkts' ? f.pkts : Object.values(f.drops).reduce((a, b) => a + b, 0);
}

/** the number of workers `live.workers` (or TSVS_LIVE_WORKERS) asks for */
export function workerCount(v: number | 'auto', cores: number): number {
  const e = process.env.TSVS_LIVE_WORKERS;
  const want = e !== undefined && e !== '' ? (e === 'auto' ? 'auto' : Number(e)) : v;
  if (want === 'auto') return Math.max(1, cores);
  if (!Number.isInteger(want) || want < 1 || want > 64) throw new ConfigError(`TSVS_LIVE_WORKERS: 1 to 64 or auto, not ${JSON.stringify(e)}`);
  return want;
}
