// N receive rings on IFACE in one packet fanout group whose BPF program (PROGFILE: JSON, 4 words per
// instruction) picks each packet's ring, while SENDER (in namespace NS) sends from many source ports to ADDR.
// Prints JSON: for each UDP datagram to port 9998 the ring that got it and the frame (hex), and each ring's
// counts. Usage: node fanout-rx.mjs MODULE IFACE NS SENDER ADDR PROGFILE N COUNT
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
const [mod, iface, ns, sender, addr, progFile, nArg, countArg] = process.argv.slice(2);
const m = createRequire(import.meta.url)(mod);
const prog = Int32Array.from(JSON.parse(fs.readFileSync(progFile, 'utf8')));
const group = 1000 + (process.pid % 60000);
const got = [];
const rings = [];
for (let i = 0; i < Number(nArg); i++) {
  const desc = new Int32Array(3 * 256);
  const r = m.ringOpen(iface, null, 1 << 16, 8, desc, 2048, 0, group, prog);
  const ring = Buffer.from(r.ring);
  m.ringStart(r.handle, (n) => {
    for (let j = 0; j < n; j++) {
      const off = desc[3 * j];
      const len = desc[3 * j + 1];
      if (ring.readUInt16BE(off + 12) === 0x0800 && ring[off + 23] === 17 && ring.readUInt16BE(off + 36) === 9998) got.push([i, ring.toString('hex', off, off + len)]);
    }
  });
  rings.push(r);
}
setTimeout(() => {
  execFileSync('ip', ['netns', 'exec', ns, 'node', sender, addr, countArg]);
  setTimeout(() => {
    console.log(JSON.stringify({ got, stats: rings.map((r) => m.ringStats(r.handle)) }));
    for (const r of rings) m.ringClose(r.handle);
  }, 300);
}, 100);
