/**
 * Processes of a test file in its own network namespaces (named PREFIX-NAME): started by the file, stopped by
 * PID (a process that ignores its signal is killed after 10 s, so that nothing outlives the suite), and
 * commands run inside a namespace to completion.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { run } from './corpus.js';

export class NsProcs {
  /** every process started, for stopAll() */
  readonly started: ChildProcess[] = [];

  constructor(readonly prefix: string) {}

  /** start `args` in namespace PREFIX-`ns`, stdout and stderr piped */
  start(ns: string, args: string[]): ChildProcess {
    const p = spawn('ip', ['netns', 'exec', `${this.prefix}-${ns}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.started.push(p);
    return p;
  }

  /** run `cmd args` in namespace PREFIX-`ns` to completion */
  run(ns: string, cmd: string, args: string[], timeout = 60000) {
    return run('ip', ['netns', 'exec', `${this.prefix}-${ns}`, cmd, ...args], { timeout });
  }

  stopAll(): Promise<number[]> {
    return Promise.all(this.started.map((p) => stopProc(p)));
  }
}

/** signal `p` and wait for its exit (SIGKILL after 10 s); the ms it took */
export function stopProc(p: ChildProcess, sig: NodeJS.Signals = 'SIGTERM'): Promise<number> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve(0);
    const kill = setTimeout(() => p.kill('SIGKILL'), 10_000);
    p.once('exit', () => {
      clearTimeout(kill);
      resolve(Date.now() - t0);
    });
    p.kill(sig);
  });
}
