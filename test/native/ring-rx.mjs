// The native module's receive ring on IFACE (64 KiB: 32 frames), a slow reader (5 ms per call) while SENDER
// bursts 3000 datagrams, then a fast one while it sends 20 more 10 ms apart. Prints JSON: the numbers seen in
// the burst and after, and the ring's counts. Usage: node ring-rx.mjs MODULE IFACE NS_OF_SENDER ADDR SENDER
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
const [mod, iface, senderNs, addr, sender] = process.argv.slice(2);
const m = createRequire(import.meta.url)(mod);
const desc = new Int32Array(3 * 2048);
const r = m.ringOpen(iface, null, 32768, 2, desc);
const ring = Buffer.from(r.ring);
const seen = [];
let slow = true;
m.ringStart(r.handle, (n) => {
  for (let i = 0; i < n; i++) {
    const off = desc[3 * i];
    if (ring.readUInt16BE(off + 12) === 0x0800 && ring[off + 23] === 17 && ring.readUInt16BE(off + 36) === 9999) seen.push(ring.readUInt32BE(off + 42));
  }
  if (slow) {
    const t = Date.now();
    while (Date.now() - t < 5);
  }
});
const send = (from, to, gap) => execFileSync('ip', ['netns', 'exec', senderNs, 'node', sender, addr, String(from), String(to), String(gap)]);
setTimeout(() => {
  send(0, 3000, 0);
  setTimeout(() => {
    slow = false;
    const burst = seen.slice();
    send(100000, 100020, 10);
    setTimeout(() => {
      console.log(JSON.stringify({ burst, after: seen.filter((x) => x >= 100000), stats: m.ringStats(r.handle) }));
      m.ringClose(r.handle);
    }, 300);
  }, 500);
}, 100);
