// The native module's receive ring with 16 KiB frames on IFACE (MTU 9000): one UDP datagram of 8000 bytes
// from the sender's namespace arrives whole (captured length = wire length). Prints JSON of what the ring
// handed over. Usage: node jumbo-rx.mjs MODULE IFACE NS_OF_SENDER ADDR SENDER
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
const [mod, iface, senderNs, addr, sender] = process.argv.slice(2);
const m = createRequire(import.meta.url)(mod);
const desc = new Int32Array(3 * 64);
const r = m.ringOpen(iface, null, 65536, 4, desc, 16384);
const got = [];
m.ringStart(r.handle, (n) => {
  for (let i = 0; i < n; i++) if (desc[3 * i + 2] > 1000) got.push({ caplen: desc[3 * i + 1], wirelen: desc[3 * i + 2] });
});
setTimeout(() => {
  execFileSync('ip', ['netns', 'exec', senderNs, 'node', sender, addr, '0', '1', '0', '8000']);
  setTimeout(() => {
    console.log(JSON.stringify(got));
    m.ringClose(r.handle);
  }, 300);
}, 100);
