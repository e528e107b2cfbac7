/** Access to the third-party capture corpus in ../shared/pcaps and the tools used as oracles. */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
/** repository root (tests run from dist/test/...) */
export const REPO = path.resolve(here, '..', '..', '..');
export const CORPUS = path.resolve(REPO, '..', 'shared', 'pcaps');
export const TSVS = path.join(REPO, 'bin', 'tsvs');

export interface Fact {
  file: string;
  packets: number | null;
  first_timestamp: string | null;
  last_timestamp: string | null;
  read_error_after_packets?: number | null;
  tcp_conversations: number | null;
  udp_conversations: number | null;
  tcp_streams: number | null;
  udp_streams: number | null;
}

export function loadFacts(): Record<string, Fact> {
  const j = JSON.parse(fs.readFileSync(path.join(CORPUS, 'facts.json'), 'utf8')) as { files: Record<string, Fact> };
  return j.files;
}

export function haveTool(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { timeout?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 256 * 1024 * 1024, timeout: opts.timeout ?? 120000, env: opts.env ?? process.env }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** run bin/tsvs; `env`: variables added to this process's environment */
export function tsvs(args: string[], env?: NodeJS.ProcessEnv): Promise<RunResult> {
  return run(TSVS, args, env ? { env: { ...process.env, ...env } } : {});
}

/** Run `fn` over `items` with at most `n` in flight. */
export async function pool<T, R>(items: T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

/**
 * tshark's per-frame count of the outermost transport (the first of tcp/udp/icmp/icmpv6 in frame.protocols),
 * with IP reassembly off so each frame stands for itself as it does in tsvs.
 */
export async function tsharkL4Counts(file: string): Promise<Record<'tcp' | 'udp' | 'icmp' | 'icmpv6', number>> {
  const r = await run('tshark', ['-n', '-o', 'ip.defragment:FALSE', '-o', 'ipv6.defragment:FALSE', '-r', file, '-T', 'fields', '-e', 'frame.protocols']);
  const cnt = { tcp: 0, udp: 0, icmp: 0, icmpv6: 0 };
  for (const line of r.stdout.split('\n')) {
    for (const t of line.split(':')) {
      if (t === 'tcp' || t === 'udp' || t === 'icmp' || t === 'icmpv6') {
        cnt[t]++;
        break;
      }
    }
  }
  return cnt;
}
