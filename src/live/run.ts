/** The live process: the daemon, its control socket and metrics, signals. Resolves with the exit status. */
import { ConfigError, type Config } from '../config.js';
import type { Logger } from '../log.js';
import { Daemon } from './daemon.js';
import { NativeModuleError } from '../capture/live.js';
import { CtlServer } from '../ctl/server.js';
import { Metrics } from './metrics.js';

export async function runDaemon(cfg: Config, log: Logger, configFile: string): Promise<number> {
  // the control socket first: a second daemon on the same socket must not capture and transmit at all
  try {
    await CtlServer.claim(cfg.live!.socket);
  } catch (e) {
    log.error('cannot start', { error: `live.socket ${(e as Error).message}` });
    return 2;
  }
  let d: Daemon;
  try {
    d = new Daemon(cfg, log, configFile);
    d.start();
  } catch (e) {
    if (e instanceof NativeModuleError || e instanceof ConfigError || (e as NodeJS.ErrnoException).code === 'EPERM' || /Operation not permitted|permission/i.test((e as Error).message)) {
      log.error('cannot start', { error: (e as Error).message });
      return 2;
    }
    throw e;
  }
  const extras: Array<{ close(): Promise<void> | void }> = [];
  const ctl = new CtlServer(d, cfg.live!.socket);
  try {
    await ctl.listen();
    extras.push(ctl);
    log.info('control socket', { path: cfg.live!.socket });
  } catch (e) {
    log.error('cannot open the control socket', { path: cfg.live!.socket, error: (e as Error).message });
    d.stop();
    return 2;
  }
  if (cfg.live!.metrics !== false) {
    const m = new Metrics(d);
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
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      log.info('stopping', { signal: sig, packets: d.packets, conns: d.engine.ct.table.count });
      // never hang on the way out: whatever has not closed in 1.5 s is left behind
      const force = setTimeout(() => resolve(0), 1500);
      force.unref();
      d.stop();
      void Promise.allSettled(extras.map((x) => x.close())).then(() => {
        clearTimeout(force);
        resolve(0);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => d.reload());
  });
}
