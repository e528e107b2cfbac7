// The native module's transmit threads: txOpen(THREADS), then 20 batches of 100 UDP datagrams in one arena
// each, alternating between two destinations (hashed to threads by address), each numbered; a bad descriptor
// in every batch. A receiver in RECV_NS (RECV_SCRIPT) counts what arrives per destination. Prints JSON: the
// numbers received per destination, txSend's and txCollect's sums, txDrain's answer.
// Usage: node tx-threads.mjs MODULE THREADS RECV_NS RECV_SCRIPT SRC DST1 DST2
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
const [mod, threads, recvNs, recvScript, src, ...dsts] = process.argv.slice(2);
const m = createRequire(import.meta.url)(mod);
const rx = spawn('ip', ['netns', 'exec', recvNs, 'node', recvScript, ...dsts], { stdio: ['ignore', 'pipe', 'inherit'] });
let out = '';
rx.stdout.on('data', (d) => (out += d));
await new Promise((r) => rx.stdout.once('data', r)); // "ready"
out = '';
const ip4 = (s) => s.split('.').map(Number);
const tx = m.txOpen(Number(threads));
const arena = Buffer.alloc(100 * 32 + 8);
const desc = new Int32Array(4 * 101);
const now = { sent: 0, failed: 0, errnos: new Set() };
let seq = 0;
for (let b = 0; b < 20; b++) {
  let n = 0;
  for (let i = 0; i < 100; i++, n++) {
    const o = 32 * i;
    const dst = dsts[seq % 2];
    // IPv4 (the kernel fills the checksum and the identification of a raw socket's header), UDP 9999 -> 9999
    arena.fill(0, o, o + 32);
    arena[o] = 0x45;
    arena.writeUInt16BE(32, o + 2);
    arena[o + 8] = 64;
    arena[o + 9] = 17;
    arena.set(ip4(src), o + 12);
    arena.set(ip4(dst), o + 16);
    arena.writeUInt16BE(9999, o + 20);
    arena.writeUInt16BE(9999, o + 22);
    arena.writeUInt16BE(12, o + 24);
    arena.writeUInt32BE(seq++, o + 28);
    desc.set([o, 32, 4, 0], 4 * n);
    if (i === 50) desc.set([arena.length, 32, 4, 0], 4 * ++n); // outside the arena
  }
  const [s, f, e] = m.txSend(tx, arena, desc, n);
  now.sent += s;
  now.failed += f;
  if (e) now.errnos.add(e);
  await new Promise((r) => setTimeout(r, 2));
}
const drained = m.txDrain(tx, 2000);
const [cs, cf, , queued] = m.txCollect(tx);
await new Promise((r) => setTimeout(r, 300));
rx.kill();
await new Promise((r) => rx.once('exit', r));
console.log(JSON.stringify({ received: JSON.parse(out), now: { ...now, errnos: [...now.errnos] }, collected: { sent: cs, failed: cf, queued }, drained }));
