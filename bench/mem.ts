/**
 * `node --expose-gc dist/bench/mem.js N`: bytes of memory per tracked connection, measured in a fresh
 * process (RSS growth while N connections are created through decode + track). Prints one JSON line.
 */
import '../src/runtime.js'; // first: the V8 settings tsvs runs with
import { bytesPerConn } from './conntrack.js';

const n = Number(process.argv[2] ?? 1_000_000);
const m = bytesPerConn(n);
process.stdout.write(`${JSON.stringify({ n, ...m })}\n`);
