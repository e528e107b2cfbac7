// Send 2 UDP datagrams from each of N sockets (N source ports) to ADDR:9998, each carrying its number.
// Usage: node fanout-send.cjs ADDR N
const [addr, n] = [process.argv[2], Number(process.argv[3])];
const dgram = require('node:dgram');
(async () => {
  let k = 0;
  for (let i = 0; i < n; i++) {
    const s = dgram.createSocket('udp4');
    for (let j = 0; j < 2; j++) {
      const b = Buffer.alloc(8);
      b.writeUInt32BE(k++);
      await new Promise((r) => s.send(b, 9998, addr, r));
    }
    s.close();
  }
})();
