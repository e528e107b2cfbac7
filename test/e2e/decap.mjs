// Userspace IP-in-IP decapsulation for a test server, used only where the kernel has no ipip support
// (CONFIG_NET_IPIP unset, as on the CI machines): protocol-4 packets captured on IFACE lose their outer
// header and the inner packet is handed to this host's own stack through a raw socket (IP_HDRINCL), so the
// kernel receives exactly what the load balancer encapsulated. Usage: node decap.mjs IFACE
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const pcap = require('pcap');
const raw = require('raw-socket');
const iface = process.argv[2];
const sock = raw.createSocket({ protocol: 255, addressFamily: raw.AddressFamily.IPv4 });
sock.pauseRecv();
const session = pcap.createSession(iface, { filter: 'inbound and ip proto 4', buffer_timeout: 1, promiscuous: false });
let n = 0;
session.on('packet', (p) => {
  const caplen = p.header.readUInt32LE(8);
  const outer = 14;
  const ihl = (p.buf[outer] & 15) * 4;
  const inner = Buffer.from(p.buf.subarray(outer + ihl, caplen));
  const dst = `${inner[16]}.${inner[17]}.${inner[18]}.${inner[19]}`;
  sock.send(inner, 0, inner.length, dst, () => {});
  n++;
});
process.on('SIGTERM', () => {
  session.close();
  sock.close();
  process.stdout.write(`decapsulated ${n}\n`);
  process.exit(0);
});
process.stdout.write('ready\n');
