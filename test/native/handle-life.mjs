// node --expose-gc handle-life.mjs MODULE IFACE: rings and pollers opened, used, closed (twice), used after close
// and collected, 300 times over, with the handles of closed ones kept and dropped in turns; prints what the
// calls after close said. A wrong count of a struct's holders shows as glibc's abort on a double free (run
// with MALLOC_CHECK_=3) or as a crash.
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { setImmediate } from 'node:timers';
const [mod, iface] = process.argv.slice(2);
const n = createRequire(import.meta.url)(mod);
const said = new Set();
const kept = [];
for (let i = 0; i < 300; i++) {
  const desc = new Int32Array(3 * 64);
  const r = n.ringOpen(iface, null, 4096, 2, desc, 2048, 0);
  if (i % 2 === 0) n.ringStart(r.handle, () => {});
  n.ringStats(r.handle);
  n.ringClose(r.handle);
  n.ringClose(r.handle);
  try {
    n.ringStats(r.handle);
    said.add('ringStats after close: no error');
  } catch (e) {
    said.add(`ringStats after close: ${e.message}`);
  }
  if (i % 3 === 0) kept.push(r.handle);
  const [rd, wr] = pipe();
  const p = n.pollStart(rd, () => {}, 4);
  n.pollStop(p);
  n.pollStop(p);
  fs.closeSync(rd);
  fs.closeSync(wr);
  if (i % 10 === 0) {
    await new Promise((res) => setImmediate(res)); // libuv closes the handles
    globalThis.gc();
  }
}
await new Promise((res) => setImmediate(res));
kept.length = 0;
globalThis.gc();
for (const h of kept) n.ringClose(h);
console.log(JSON.stringify([...said]));

function pipe() {
  // a FIFO opened at both ends: two descriptors libuv can watch
  const f = `/tmp/tsvs-life-${process.pid}`;
  fs.rmSync(f, { force: true });
  execFileSync('mkfifo', [f]);
  const rd = fs.openSync(f, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const wr = fs.openSync(f, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  fs.rmSync(f);
  return [rd, wr];
}
