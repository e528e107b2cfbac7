// Send UDP datagrams numbered FROM..TO-1 (4 bytes, big-endian, then 4 zero bytes) to ADDR:9999, GAP ms apart.
// Usage: node udp-send.cjs ADDR FROM TO GAP
const [addr, from, to, gap] = [process.argv[2], ...process.argv.slice(3).map(Number)];
const d = require('node:dgram').createSocket('udp4');
(async () => {
  for (let i = from; i < to; i++) {
    const b = Buffer.alloc(8);
    b.writeUInt32BE(i);
    await new Promise((r) => d.send(b, 9999, addr, r));
    if (gap) await new Promise((r) => setTimeout(r, gap));
  }
  d.close();
})();
