/** The live process: the daemon, its control socket and metrics, signals. Resolves with the exit status. */
import { ConfigError, type Config } from '../config.js';
import type { Logger } from '../log.js';
import { Daemon, ioChoice, type DaemonRole } from './daemon.js';
import { NativeModuleError } from '../capture/live.js';
import { CtlServer, type CtlTarget } from '../ctl/server.js';
import { Metrics } from './metrics.js';
import { Cluster, workerCount } from './cluster.js';
import { SLOTS, slotTable } from '../workers/layout.js';
import { availableParallelism } from 'node:os';

export async function runDaemon(cfg: Config, log: Logger, configFile: string): Promise<number> {
  // the control socket first: a second daemon on the same socket must not capture and transmit at all
  try {
    await CtlServer.claim(cfg.live!.socket);
  } catch (e) {
    log.error('cannot start', { error: `live.socket ${(e as Error).message}` });
    return 2;
  }
  let d: Daemon;
  let role: DaemonRole | undefined;
  try {
    // live workers: engines on worker threads, the kernel's fanout handing each its packets (cluster.ts)
    let n = workerCount(cfg.live!.workers, availableParallelism());
    const io = ioChoice(cfg);
    if (n > 1 && io.io !== 'batched') {
      log.warn('live.workers needs the batched path: one worker', { workers: n, why: io.why });
      n = 1;
    }
    // (a fanout group id per interface, from the pid: unique among the daemons of this host)
    // (TSVS_TEST_LIVE_SLOTS=last, a test hook: every packet to the last worker thread, the main thread's engine
    // idle: the live tests then run every feature through a worker thread)
    const slots = process.env.TSVS_TEST_LIVE_SLOTS === 'last' ? new Uint8Array(SLOTS).fill(n - 1) : slotTable(n, 1 / n);
    if (n > 1) role = { me: 0, n, group: 1 + ((process.pid * 16) % 0xef00), slots };
    d = new Daemon(cfg, log, configFile, role);
    d.start();
  } catch (e) {
    if (e instanceof NativeModuleError || e instanceof ConfigError || (e as NodeJS.ErrnoException).code === 'EPERM' || /Operation not permitted|permission/i.test((e as Error).message)) {
      log.error('cannot start', { error: (e as Error).message });
      return 2;
    }
    throw e;
  }
  let failed: ((why: string) => void) | null = null;
  let cluster: Cluster | null = null;
  if (role) {
    cluster = new Cluster(d, log, { cfg, n: role.n, group: role.group, slots: role.slots, secret: d.secret.toString('hex'), level: log.level, json: log.json }, (why) => failed?.(why));
    try {
      await cluster.start();
    } catch (e) {
      log.error('cannot start', { error: `live.workers: ${(e as Error).message}` });
      await cluster.stop();
      return 2;
    }
  }
  const target: CtlTarget = cluster ?? d;
  const extras: Array<{ close(): Promise<void> | void }> = [];
  const ctl = new CtlServer(target, cfg.live!.socket);
  try {
    await ctl.listen();
    extras.push(ctl);
    log.info('control socket', { path: cfg.live!.socket });
  } catch (e) {
    log.error('cannot open the control socket', { path: cfg.live!.socket, error: (e as Error).message });
    await (cluster ? cluster.stop() : d.stop());
    return 2;
  }
  if (cfg.live!.metrics !== false) {
    const c = cluster;
    const m = new Metrics(d, c ? () => c.metricsData() : undefined);
    try {
      await m.listen(cfg.live!.metrics);
      extras.push(m);
      log.info('metrics', { url: `http://${cfg.live!.metrics}/metrics` });
    } catch (e) {
      log.error('cannot serve metrics (continuing without)', { address: cfg.live!.metrics, error: (e as Error).message });
    }
  }
  log.info('running', { services: d.services.list.length, interfaces: cfg.live!.interfaces });
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (sig: string, rc = 0) => {
      if (stopping) return;
      stopping = true;
      log.info('stopping', { signal: sig, packets: d.packets, conns: d.engine.ct.table.count });
      // never hang on the way out: whatever has not closed in 1.5 s (2.5 s with workers) is left behind
      const force = setTimeout(() => resolve(rc), cluster ? 2500 : 1500);
      force.unref();
      void Promise.allSettled([cluster ? cluster.stop() : d.stop(), ...extras.map((x) => x.close())]).then(() => {
        clearTimeout(force);
        resolve(rc);
      });
    };
    // a worker thread gone: its share of the packets would go nowhere; stop (exit 70, as an internal error)
    failed = () => stop('worker failure', 70);
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => target.reload());
  });
}
