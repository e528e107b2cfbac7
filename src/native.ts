/**
 * tsvs's own native module (native/tsvs.c, built by `npm run build` into native/build/tsvs.node when a C
 * compiler and this Node's headers are there): loaded on first use, never by replay. Where it is absent the
 * callers say so and use what they can without it.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';

export interface Native {
  tunOpen(name: string): { fd: number; name: string };
  pollStart(fd: number, cb: (packets: Buffer[]) => void, batch?: number): unknown;
  pollStop(handle: unknown): void;
  /** `fanoutGroup` and `fanoutProg`: join that packet fanout group, whose BPF program (workers/fanout.ts) picks each packet's member */
  ringOpen(ifname: string, prog: Int32Array | null, blockSize: number, blockCount: number, desc: Int32Array, frameSize?: number, coalesceUs?: number, fanoutGroup?: number, fanoutProg?: Int32Array): { handle: unknown; ring: ArrayBuffer; arptype: number };
  ringStart(handle: unknown, cb: (count: number) => void): void;
  ringStats(handle: unknown): { packets: number; drops: number };
  /** replace a running ring's socket filter (0) or its fanout group's program (1) */
  ringSetProgram(handle: unknown, which: 0 | 1, prog: Int32Array): void;
  ringClose(handle: unknown): void;
  /** `threads` transmit threads (0: txSend sends on the caller's thread) */
  txOpen(threads?: number): unknown;
  /** [sent, failed, errno of the last failure] (with transmit threads: only the failures known at once) */
  txSend(handle: unknown, arena: Buffer, desc: Int32Array, n: number): [number, number, number];
  /** what the transmit threads sent and failed since the last call, and hold: [sent, failed, errno of the last failure, packets queued] */
  txCollect(handle: unknown): [number, number, number, number];
  /** wait up to `ms` for the transmit threads to send all they were given (true when they have) */
  txDrain(handle: unknown, ms: number): boolean;
}

let cached: { mod: Native | null; why: string } | null = null;

/** the module, or why not (TSVS_NATIVE=0 refuses it, for tests of the fallbacks) */
export function loadNative(): { mod: Native | null; why: string } {
  if (cached) return cached;
  // (dist/src/native.js and dist/bundle/*.js are both two levels below the repository)
  const file = new URL('../../native/build/tsvs.node', import.meta.url).pathname;
  if (process.env.TSVS_NATIVE === '0') cached = { mod: null, why: 'TSVS_NATIVE=0' };
  else if (!fs.existsSync(file)) cached = { mod: null, why: `${file} is not built (npm run build builds it where a C compiler and Node's headers are)` };
  else {
    try {
      cached = { mod: createRequire(import.meta.url)(file) as Native, why: '' };
    } catch (e) {
      cached = { mod: null, why: `${file}: ${(e as Error).message.split('\n')[0]}` };
    }
  }
  return cached;
}
