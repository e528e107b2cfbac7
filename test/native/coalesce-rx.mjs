// The native module's receive coalescing: a ring on IFACE with coalesceUs 100000 (100 ms). A light load
// (8 datagrams 40 ms apart) is handed over as it comes; after a burst (50 at once), 5 datagrams 15 ms apart
// come while the ring is busy and wait out the nap together. Prints JSON: the light ones' gaps (ms) and
// calls, the spaced ones' calls. Usage: node coalesce-rx.mjs MODULE IFACE NS_OF_SENDER ADDR
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
const [mod, iface, senderNs, addr] = process.argv.slice(2);
const m = createRequire(import.meta.url)(mod);
const desc = new Int32Array(3 * 256);
const r = m.ringOpen(iface, null, 65536, 4, desc, 2048, 100000);
const ring = Buffer.from(r.ring);
const seen = new Map();
let call = 0;
m.ringStart(r.handle, (n) => {
  call++;
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    const off = desc[3 * i];
    if (ring.readUInt16BE(off + 12) === 0x0800 && ring[off + 23] === 17 && ring.readUInt16BE(off + 36) === 9999) seen.set(ring.readUInt32BE(off + 42), { t, call });
  }
});
// a sender in the peer namespace: `plan` is [[first, count, gapMs], ...] run one after the other (gap 0: all
// handed to the socket at once, a burst)
const send = (plan) =>
  new Promise((res) => {
    const code = `const d=require('dgram').createSocket('udp4');const one=(i)=>new Promise(r=>{const b=Buffer.alloc(8);b.writeUInt32BE(i);d.send(b,9999,${JSON.stringify(addr)},r)});(async()=>{for(const [f,c,g] of ${JSON.stringify(plan)}){const all=[];for(let i=f;i<f+c;i++){const p=one(i);if(g){await p;await new Promise(r=>setTimeout(r,g))}else all.push(p)}await Promise.all(all)}d.close()})()`;
    spawn('ip', ['netns', 'exec', senderNs, 'node', '-e', code], { stdio: 'inherit' }).once('exit', res);
  });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
await sleep(100);
await send([[0, 8, 40]]);
await sleep(300);
await send([[1000, 50, 0], [2000, 5, 15]]);
await sleep(400);
const light = Array.from({ length: 8 }, (_, i) => seen.get(i));
const spaced = Array.from({ length: 5 }, (_, i) => seen.get(2000 + i));
console.log(JSON.stringify({
  lightGaps: light.slice(1).map((x, i) => (x && light[i] ? Math.round(x.t - light[i].t) : null)),
  lightCalls: new Set(light.map((x) => x?.call)).size,
  burst: Array.from({ length: 50 }, (_, i) => seen.has(1000 + i)).filter(Boolean).length,
  spacedCalls: spaced.every(Boolean) ? new Set(spaced.map((x) => x.call)).size : null,
}));
m.ringClose(r.handle);
