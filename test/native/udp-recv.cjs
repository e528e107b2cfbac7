// Receive UDP datagrams on ADDR:9999 for each ADDR given; on SIGTERM print JSON: per address, the 4-byte
// big-endian numbers received, in order. Prints "ready" once bound. Usage: node udp-recv.cjs ADDR...
const dgram = require('node:dgram');
const addrs = process.argv.slice(2);
const got = Object.fromEntries(addrs.map((a) => [a, []]));
let bound = 0;
for (const a of addrs) {
  const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
  s.on('message', (m) => got[a].push(m.readUInt32BE(0)));
  s.bind(9999, a, () => {
    if (++bound === addrs.length) process.stdout.write('ready\n');
  });
}
process.on('SIGTERM', () => {
  process.stdout.write(JSON.stringify(got));
  process.exit(0);
});
