// Send UDP datagrams numbered FROM..TO-1 (4 bytes, big-endian, then zero bytes to SIZE, 8 by default) to
// ADDR:9999, GAP ms apart. Usage: node udp-send.cjs ADDR FROM TO GAP [SIZE]
const [addr, from, to, gap, size] = [process.argv[2], ...process.argv.slice(3).map(Number)];
const d = require('node:dgram').createSocket('udp4');
(async () => {
  for (let i = from; i < to; i++) {
    const b = Buffer.alloc(size || 8);
    b.writeUInt32BE(i);
    await new Promise((r) => d.send(b, 9999, addr, r));
    if (gap) await new Promise((r) => setTimeout(r, gap));
  }
  d.close();
})();
