// A real HTTP server for the live tests: GET /id answers the server's name; GET /slow?s=N streams for N
// seconds (a long download); GET /probe answers after the delay set by GET /setdelay?ms=N (a region's
// latency as an HTTP probe sees it). Usage: node httpd.mjs NAME PORT
import * as http from 'node:http';
import { setTimeout } from 'node:timers';

const [name, port] = process.argv.slice(2);
let delayMs = 0;
const server = http.createServer((req, res) => {
  if (req.url?.startsWith('/setdelay')) {
    delayMs = Number(new URL(req.url, 'http://x').searchParams.get('ms') ?? '0');
    res.end(`${name} delay ${delayMs}\n`);
    return;
  }
  if (req.url?.startsWith('/probe')) {
    setTimeout(() => res.end(`${name}\n`), delayMs);
    return;
  }
  if (req.url?.startsWith('/slow')) {
    const secs = Number(new URL(req.url, 'http://x').searchParams.get('s') ?? '5');
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const chunk = Buffer.alloc(4096, 0x61);
    let left = secs * 10;
    const t = setInterval(() => {
      res.write(chunk);
      if (--left <= 0) {
        clearInterval(t);
        res.end(`\n${name}\n`);
      }
    }, 100);
    req.on('close', () => clearInterval(t));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`${name}\n`);
});
server.keepAliveTimeout = 1000;
server.listen(Number(port), '0.0.0.0', () => process.stdout.write('ready\n'));
