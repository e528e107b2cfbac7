// A worker thread opens a ring in a fanout group and starts it, then ends without closing it: by exiting
// (argv[3] "exit") or terminated by the main thread ("terminate"). Node ends a thread only once its loop has
// no handle left, and aborts the whole process otherwise; and the ring's socket must be closed with it (in
// its fanout group it would take its share of the packets for nobody).
// Prints JSON: the thread's exit code and the packet sockets of this network namespace (/proc/net/packet)
// before, while the thread ran and after.
import { Worker, isMainThread, workerData, parentPort } from 'node:worker_threads';
import { createRequire } from 'node:module';
import * as fs from 'node:fs';

const sockets = () => fs.readFileSync('/proc/net/packet', 'utf8').trim().split('\n').length - 1;
if (isMainThread) {
  const [mod, how] = process.argv.slice(2);
  const out = { before: sockets(), running: -1, code: -1, after: -1 };
  const w = new Worker(new URL(import.meta.url), { workerData: { mod, how } });
  w.on('message', () => {
    out.running = sockets();
    if (how === 'terminate') void w.terminate();
  });
  w.on('exit', (c) => {
    out.code = c;
    setTimeout(() => {
      out.after = sockets();
      console.log(JSON.stringify(out));
    }, 200);
  });
} else {
  const n = createRequire(import.meta.url)(workerData.mod);
  const r = n.ringOpen('lo', null, 65536, 2, new Int32Array(3 * 64), 2048, 0, 4242, Int32Array.of(0x06, 0, 0, 0));
  n.ringStart(r.handle, () => {});
  parentPort.postMessage('started');
  if (workerData.how === 'exit') setTimeout(() => process.exit(3), 100);
  else setInterval(() => {}, 1000);
}
