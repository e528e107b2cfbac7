/**
 * A live worker thread (cluster.ts): a daemon of its own (engine, ring in the fanout groups, transmit
 * sockets, timers) that takes its control-plane state from the main thread and answers its requests.
 */
import '../runtime.js';
import { parentPort, workerData } from 'node:worker_threads';
import { Daemon } from './daemon.js';
import { Logger } from '../log.js';
import type { FromWorker, LiveWorkerInit, ToWorker } from './cluster.js';

const init = (workerData as { tsvsLiveWorker: LiveWorkerInit }).tsvsLiveWorker;
const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);

/** this worker's log lines, each with its number, written by the main thread (in order with its own) */
class WorkerLog extends Logger {
  override log(level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
    super.log(level, msg, { worker: init.me, ...fields });
  }
}
const log = new WorkerLog(init.level, init.json, (line) => post({ t: 'log', line }));

const cfg = structuredClone(init.cfg);
cfg.synproxy.secret = init.secret;
const d = new Daemon(cfg, log, undefined, {
  me: init.me,
  n: init.n,
  group: init.group,
  slots: init.slots,
  up: {
    passive: (si, dest, ok) => post({ t: 'passive', si, d: dest, ok }),
    agent: (id, buf, off, len) => {
      // (the hub sends it on; an agent down, as the main thread's health state says, is counted here as it would be there)
      if (!agentUp(id)) return 'agent_down';
      post({ t: 'agent', id, b: buf.slice(off, off + len) });
      return null;
    },
  },
});
d.start();

/** is agent `id` up: any of its servers healthy (the main thread sets them as the agent's heartbeats come and go) */
function agentUp(id: string): boolean {
  for (const s of d.services.list) for (let i = 0; i < s.agentOf.length; i++) if (s.agentOf[i] === id && s.dests.healthy[i] === 1) return true;
  return false;
}

const subs = new Map<number, () => void>();
port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'req': {
      try {
        const v = (d[m.m as keyof Daemon] as (...a: unknown[]) => unknown).apply(d, m.a);
        post({ t: 'res', id: m.id, ok: true, v });
      } catch (e) {
        post({ t: 'res', id: m.id, ok: false, err: (e as Error).message });
      }
      return;
    }
    case 'services':
      d.applyServices(m.cfgs);
      return;
    case 'state':
      d.applyServiceState(m.st);
      return;
    case 'timeouts':
      d.setTimeouts(m.v, false);
      return;
    case 'sub':
      subs.set(m.sid, d.subscribe(m.filter, new Set(m.types), (ev) => post({ t: 'ev', sid: m.sid, ev })));
      return;
    case 'unsub':
      subs.get(m.sid)?.();
      subs.delete(m.sid);
      return;
    case 'agent':
      d.agentPacket(Buffer.from(m.b.buffer, m.b.byteOffset, m.b.byteLength), m.id);
      return;
    case 'stop':
      for (const u of subs.values()) u();
      d.stop();
      port.close();
      return;
  }
});
post({ t: 'ready' });
// (a test hook: worker 1 ends by itself this many ms after it started; the daemon must stop, exit 70)
const exitMs = init.me === 1 ? Number(process.env.TSVS_TEST_LIVE_WORKER_EXIT ?? 0) : 0;
if (exitMs > 0) setTimeout(() => process.exit(3), exitMs);
