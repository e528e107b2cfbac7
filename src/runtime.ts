/**
 * V8 settings for the packet path, applied when this module is evaluated: the entry points (`tsvs`,
 * `ctstat`, the bench) import it before anything else, so they hold before any hot function is optimized.
 *
 * TurboFan inlines a callee only while the caller's inlined bytecode stays under a cumulative budget (920
 * bytes by default) and only callees under 460 bytes. The per-packet path (reader -> decode -> tracker ->
 * engine -> rewrite -> writer) is a chain of small methods whose total is several times that budget, so with
 * the defaults most of it runs as out-of-line calls that reload every typed array they touch. Measured on
 * the full LB path (`npm run bench -- lb`, 3 runs each): 1.84-2.03 M packets/s with the defaults, 2.58-2.88
 * with the values below; the synproxy path 1.41-1.55 -> 1.70-1.71 M SYN-ACKs/s. Larger values were slower
 * (cumulative 8000: 2.03 M/s): code grows past what the CPU's caches and TurboFan's register allocation like.
 *
 * TSVS_V8_DEFAULTS=1 in the environment leaves V8's defaults (for comparison).
 */
import * as v8 from 'node:v8';
import { EXIT_SIGPIPE } from './io.js';

/** TSVS_V8_FLAGS (space-separated) replaces them: for measuring other values */
export const V8_FLAGS = process.env.TSVS_V8_FLAGS ? process.env.TSVS_V8_FLAGS.split(' ').filter(Boolean) : ['--max-inlined-bytecode-size=700', '--max-inlined-bytecode-size-cumulative=3000'];

export const v8Tuned = process.env.TSVS_V8_DEFAULTS !== '1';
if (v8Tuned) for (const f of V8_FLAGS) v8.setFlagsFromString(f);

/**
 * Output into a closed pipe (`tsvs replay ... | head`): end quietly with the status a process killed by
 * SIGPIPE has (128 + 13), as the tools it is used with do; never a stack trace or "internal error". Node
 * ignores SIGPIPE, so the write fails with EPIPE instead: on standard output (asynchronously), or in a
 * synchronous write to /dev/stdout, a pipe or a FIFO (writeAll in src/capture/writer.ts: the output pcap and
 * every LineWriter).
 */
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(EXIT_SIGPIPE);
  throw e;
});
