// Open a receive ring on IFACE in a fanout group with the BPF program in PROGFILE (JSON, 4 words per
// instruction): the kernel checks the program (every scratch word stored before it is read, jumps in range)
// when it is given to the group. Prints "ok" or the error. Usage: node fanout-accept.mjs MODULE IFACE PROGFILE
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
const [mod, iface, progFile] = process.argv.slice(2);
const m = createRequire(import.meta.url)(mod);
const prog = Int32Array.from(JSON.parse(fs.readFileSync(progFile, 'utf8')));
try {
  const r = m.ringOpen(iface, null, 4096, 2, new Int32Array(3 * 8), 2048, 0, 4000 + (process.pid % 60000), prog);
  m.ringClose(r.handle);
  console.log('ok');
} catch (e) {
  console.log(e.message);
}
