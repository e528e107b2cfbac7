/** Small things the programs' I/O shares: the exit status of a broken pipe, and a short wait without a timer. */

/** the status a process killed by SIGPIPE has (128 + 13): how tsvs ends when the reader of its output went away */
export const EXIT_SIGPIPE = 141;

const cell = new Int32Array(new SharedArrayBuffer(4));

/** block this thread `ms` milliseconds (a non-blocking descriptor with nothing to read, or no room to write) */
export function waitMs(ms: number): void {
  Atomics.wait(cell, 0, 0, ms);
}
