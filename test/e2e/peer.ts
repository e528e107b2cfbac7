/**
 * Traffic peers for the namespace tests (run with node inside a namespace):
 *   tcp-server PORT | tcp-client HOST PORT [timeoutMs] | udp-server PORT | udp-client HOST PORT
 * The TCP server echoes what it gets and closes; the UDP server echoes one datagram.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';

const [mode, a, b, c] = process.argv.slice(2);

switch (mode) {
  case 'tcp-server':
    net
      .createServer((s) => {
        s.on('data', (d) => s.end(d));
        s.on('error', () => s.destroy());
      })
      .listen(Number(a), () => process.stdout.write('listening\n'));
    break;
  case 'tcp-client': {
    const s = net.connect(Number(b), a!, () => s.write('hello'));
    s.on('data', () => {});
    s.on('end', () => process.exit(0));
    s.on('error', (e: NodeJS.ErrnoException) => {
      process.stdout.write(`${e.code}\n`);
      process.exit(0);
    });
    setTimeout(() => process.exit(0), Number(c ?? 3000));
    break;
  }
  case 'udp-server': {
    const u = dgram.createSocket('udp4');
    u.on('message', (m, r) => u.send(m, r.port, r.address));
    u.bind(Number(a), () => process.stdout.write('listening\n'));
    break;
  }
  case 'udp-client': {
    const u = dgram.createSocket('udp4');
    u.on('message', () => {
      u.close();
      process.exit(0);
    });
    u.send('ping', Number(b), a!);
    setTimeout(() => process.exit(0), 2000);
    break;
  }
  default:
    process.stderr.write(`peer: unknown mode ${mode}\n`);
    process.exit(2);
}
