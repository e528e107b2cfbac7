/**
 * Network-namespace helpers for end-to-end tests. Tests create their own namespaces (names carry the test
 * PID), send traffic only inside them, and delete them afterwards; processes are stopped by PID.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * Tests that need root and namespaces: skipped for a non-root developer, but a failure in CI (which runs
 * as root), so they are never silently skipped there.
 */
export function requireRoot(ctx: Mocha.Context): void {
  if (isRoot()) return;
  if (process.env.CI) throw new Error('this test needs root (CI runs as root)');
  ctx.skip();
}

export function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

export function ns(name: string, cmd: string, args: string[], input?: string): string {
  return sh('ip', ['netns', 'exec', name, cmd, ...args], input);
}

export class Procs {
  private readonly list: ChildProcess[] = [];

  /** start a process inside namespace `name`, stdout to `out` (a path) if given */
  start(name: string, cmd: string, args: string[], out?: number): ChildProcess {
    const p = spawn('ip', ['netns', 'exec', name, cmd, ...args], { stdio: ['ignore', out ?? 'pipe', 'pipe'] });
    this.list.push(p);
    return p;
  }

  /** wait until the process prints `text` on stdout */
  static waitFor(p: ChildProcess, text: string, ms = 5000): Promise<void> {
    return new Promise((resolve, reject) => {
      let buf = '';
      const t = setTimeout(() => reject(new Error(`timed out waiting for "${text}"`)), ms);
      p.stdout?.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes(text)) {
          clearTimeout(t);
          resolve();
        }
      });
    });
  }

  /** SIGTERM every process this object started (by PID), then wait for them */
  async stopAll(): Promise<void> {
    await Promise.all(
      this.list.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            p.once('exit', () => resolve());
            p.kill('SIGTERM');
            setTimeout(resolve, 2000);
          }),
      ),
    );
  }
}

export function deleteNetns(names: string[]): void {
  for (const n of names) {
    try {
      sh('ip', ['netns', 'del', n]);
    } catch {
      /* already gone */
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
