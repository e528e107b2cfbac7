/**
 * tsvs run as a real load balancer: network namespaces client --- router --- bridge (lb, s1, s2, s3), real
 * HTTP servers (Node), curl from the client, and the daemon under test in the LB namespace. The kernel of
 * the LB namespace neither owns the VIP nor forwards (ip_forward=0): every answer the client gets went
 * through tsvs. Oracles: curl's own success and the body naming the server that answered; tshark on
 * captures taken in the client and server namespaces for the synproxy ordering.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { haveTool, REPO, run } from '../helpers/corpus.js';
import { requireRoot, sh, sleep } from '../helpers/netns.js';
import { NsProcs, stopProc } from '../helpers/ns-procs.js';
import { dashboardAgainst, loadDashboard } from '../helpers/grafana.js';
import { NOT_EMITTED_REASONS } from '../../src/xmit/xmit.js';
import { DROP_REASONS } from '../../src/packet/status.js';
import * as http from 'node:http';
import { closeProbes, rtt } from '../../src/live/region-probe.js';
import { CtlClient } from '../../src/ctl/client.js';

const P = `tv${process.pid % 100000}`;
const TOPO = path.join(REPO, 'test', 'e2e', 'topology.sh');
const HTTPD = path.join(REPO, 'test', 'e2e', 'httpd.mjs');
const DECAP = path.join(REPO, 'test', 'e2e', 'decap.mjs');
const TSVS_JS = path.join(REPO, 'dist', 'src', 'cli', 'tsvs.js');
const CTSTAT_JS = path.join(REPO, 'dist', 'src', 'cli', 'ctstat.js');
const VIP = '10.77.9.1';

/** every process this file starts, stopped by PID at the end */
const procs = new NsProcs(P);
const startIn = (ns: string, args: string[]) => procs.start(ns, args);
const inNs = (ns: string, cmd: string, args: string[], timeout?: number) => procs.run(ns, cmd, args, timeout);
const stop = stopProc;

function waitOutput(p: ChildProcess, re: RegExp, ms = 8000, stream: 'stdout' | 'stderr' = 'stdout'): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${re} (got: ${buf.slice(-500)})`)), ms);
    p[stream]!.on('data', (d: Buffer) => {
      buf += d.toString();
      if (re.test(buf)) {
        clearTimeout(t);
        resolve(buf);
      }
    });
    p.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`exited (${code}) before ${re}: ${buf.slice(-800)}`));
    });
  });
}



/** n sequential requests from the client, one TCP connection each: the body of each (or FAIL) */
async function requests(n: number, urlPath = '/id'): Promise<string[]> {
  const r = await inNs('c', 'bash', ['-c', `for i in $(seq ${n}); do curl -s -m 5 http://${VIP}${urlPath} || echo FAIL; done`]);
  return r.stdout.trim().split('\n');
}

function count(lines: string[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const l of lines) c[l] = (c[l] ?? 0) + 1;
  return c;
}

let tmp = '';
let kernelIpip = false;

interface Lb {
  proc: ChildProcess;
  cfg: string;
  sock: string;
  log: () => string;
}

function config(mode: string, extra: { synproxy?: boolean; port?: number; health?: string; servers?: string; flowsMax?: number; ringKb?: number; kernelDrop?: boolean } = {}): string {
  const port = extra.port ?? 8080;
  const servers = extra.servers ?? `      - { addr: 10.77.2.11, port: ${port}, weight: 3 }\n      - { addr: 10.77.2.12, port: ${port}, weight: 1 }\n`;
  return [
    'live:',
    '  interfaces: [eth0]',
    `  socket: ${tmp}/tsvs.sock`,
    '  metrics: 127.0.0.1:9640',
    `  health: ${extra.health ?? '{ interval: 1, timeout: 0.5, rise: 1, fall: 1 }'}`,
    ...(extra.ringKb ? [`  ring_kb: ${extra.ringKb}`] : []),
    ...(extra.kernelDrop === false ? ['  kernel_drop: false'] : []),
    ...(extra.flowsMax ? [`flows: { max: ${extra.flowsMax} }`] : []),
    'services:',
    '  - proto: tcp',
    `    vip: ${VIP}`,
    '    port: 80',
    '    scheduler: wrr',
    `    forward: ${mode}`,
    ...(mode === 'fnat' ? ['    laddrs: [10.77.3.1]'] : []),
    ...(mode === 'tunnel' ? ['    tunnel: { src: 10.77.2.1 }'] : []),
    ...(extra.synproxy ? ['    synproxy: true'] : []),
    '    servers:',
    servers,
  ].join('\n');
}

async function startLb(text: string): Promise<Lb> {
  const cfg = path.join(tmp, 'lb.yaml');
  fs.writeFileSync(cfg, text);
  const proc = startIn('l', ['node', TSVS_JS, 'run', '--config', cfg]);
  let log = '';
  proc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  await waitOutput(proc, /INFO {2}running/, 10000, 'stderr');
  // the packet I/O path under test: batched (the native module's ring and sendmmsg) unless the environment
  // forces the fallback (CI runs this file both ways)
  const want = process.env.TSVS_LIVE_IO === 'pcap' ? /packet i\/o path="pcap \(libpcap, raw-socket: TSVS_LIVE_IO=pcap\)"/ : /packet i\/o path="batched \(TPACKET_V2 ring, sendmmsg\)"/;
  // and the engines: TSVS_LIVE_WORKERS=2 runs this file with two (CI runs it so as well)
  const workers = Number(process.env.TSVS_LIVE_WORKERS ?? 1);
  try {
    assert.match(log, want);
    if (workers > 1) assert.match(log, new RegExp(`INFO {2}workers workers=${workers} `));
  } catch (e) {
    await stop(proc);
    throw e;
  }
  return { proc, cfg, sock: path.join(tmp, 'tsvs.sock'), log: () => log };
}

async function stopLb(lb: Lb): Promise<number> {
  return stop(lb.proc);
}

const servers: Record<string, ChildProcess> = {};

async function startHttpd(name: string, port: number): Promise<void> {
  const p = startIn(name, ['node', HTTPD, name, String(port)]);
  servers[`${name}:${port}`] = p;
  await waitOutput(p, /ready/);
}

describe('live load balancing in network namespaces (tsvs run, curl, real servers)', function () {
  this.timeout(180000);

  before(async function () {
    requireRoot(this);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-live-'));
    sh('bash', [TOPO, 'up', P]);
    for (const s of ['s1', 's2', 's3']) {
      await startHttpd(s, 8080);
      await startHttpd(s, 80);
    }
    // the kernel's own IPIP decapsulation where it exists; else the userspace one (see decap.mjs)
    try {
      sh('ip', ['netns', 'exec', `${P}-s1`, 'ip', 'link', 'set', 'tunl0', 'up']);
      kernelIpip = true;
      for (const s of ['s1', 's2']) sh('ip', ['netns', 'exec', `${P}-${s}`, 'sysctl', '-qw', 'net.ipv4.conf.tunl0.rp_filter=0']);
      sh('ip', ['netns', 'exec', `${P}-s2`, 'ip', 'link', 'set', 'tunl0', 'up']);
    } catch {
      kernelIpip = false;
      for (const s of ['s1', 's2']) await waitOutput(startIn(s, ['node', DECAP, 'eth0']), /ready/);
    }
  });

  after(async function () {
    await procs.stopAll();
    if (tmp) {
      sh('bash', [TOPO, 'down', P]);
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  for (const mode of ['nat', 'fnat', 'dr', 'tunnel']) {
    it(`${mode}: 50 requests to the VIP all succeed, split 3:1 by the servers' weights; ctstat -L shows a long download on its server`, async function () {
      sh('bash', [TOPO, 'gw', P, mode === 'nat' ? 'nat' : 'direct']);
      const lb = await startLb(config(mode, { port: mode === 'dr' || mode === 'tunnel' ? 80 : 8080 }));
      try {
        const got = await requests(50);
        const c = count(got);
        assert.equal(c.FAIL, undefined, `failed requests: ${JSON.stringify(c)}${mode === 'tunnel' ? ` (IPIP decapsulation by ${kernelIpip ? 'the kernel' : 'decap.mjs'})` : ''}\n${lb.log().slice(-2000)}`);
        assert.equal((c.s1 ?? 0) + (c.s2 ?? 0), 50, JSON.stringify(c));
        // wrr 3:1 over 50 connections: 37 or 38 (the cycle's phase) to s1
        assert.ok(c.s1! >= 37 && c.s1! <= 38, JSON.stringify(c));
        // a long download: listed while it runs, on the server whose name ends its body
        const dl = startIn('c', ['curl', '-s', '-m', '20', `http://${VIP}/slow?s=3`]);
        let body = '';
        dl.stdout!.on('data', (d: Buffer) => (body += d.toString()));
        const done = new Promise<void>((r) => dl.once('exit', () => r()));
        await sleep(1200);
        const ls = await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '-L', '-o', 'json', '--state', 'ESTABLISHED']);
        assert.equal(ls.code, 0, ls.stderr);
        const conns = JSON.parse(ls.stdout) as Array<{ state: string; server?: string; orig: { dst: string; dport: number } }>;
        const mine = conns.filter((x) => x.orig.dst === VIP && x.orig.dport === 80);
        assert.equal(mine.length, 1, ls.stdout);
        await done;
        const name = body.trim().split('\n').pop()!;
        assert.match(name, /^s[12]$/, `download did not complete: ${body.length} bytes`);
        assert.equal(mine[0]!.server, `10.77.2.${name === 's1' ? 11 : 12}:${mode === 'dr' || mode === 'tunnel' ? 80 : 8080}`);
        assert.equal(body.length, 30 * 4096 + name.length + 2, 'every byte of the download arrived');
      } finally {
        const ms = await stopLb(lb);
        assert.ok(ms < 2000, `SIGTERM took ${ms} ms`);
      }
    });
  }

  for (const mode of ['nat', 'fnat']) {
    it(`live.workers: 2 (${mode}): 64 requests from 16 client addresses all succeed; the kernel's fanout gives both engines connections; status, -E events, paged conns and counters are the union of both`, async function () {
      sh('bash', [TOPO, 'gw', P, mode === 'nat' ? 'nat' : 'direct']);
      const clients = Array.from({ length: 16 }, (_, i) => `10.77.1.${20 + i}`);
      for (const a of clients) sh('ip', ['netns', 'exec', `${P}-c`, 'ip', 'addr', 'add', `${a}/24`, 'dev', 'eth0']);
      // (the packets spread as the rule spreads them, also where the environment sends them all to the last worker)
      const slots = process.env.TSVS_TEST_LIVE_SLOTS;
      delete process.env.TSVS_TEST_LIVE_SLOTS;
      let lb: Lb;
      try {
        lb = await startLb(config(mode).replace('live:\n', 'live:\n  workers: 2\n'));
      } finally {
        if (slots !== undefined) process.env.TSVS_TEST_LIVE_SLOTS = slots;
      }
      const ctl = new CtlClient(lb.sock);
      const sub = new CtlClient(lb.sock);
      try {
        const pcap = process.env.TSVS_LIVE_IO === 'pcap';
        // (the fallback path has no fanout: one engine, said at start)
        if (pcap) assert.match(lb.log(), /WARN {2}live\.workers needs the batched path: one worker/);
        else assert.match(lb.log(), /INFO {2}workers workers=2 /);
        await ctl.connect();
        await sub.connect();
        const events: Array<{ type: string; orig: { src: string } }> = [];
        void sub.events({}, ['new'], (m) => m.event && events.push(m.event as { type: string; orig: { src: string } }));
        await sleep(300);
        const ev = await inNs('c', 'bash', ['-c', clients.map((a) => `for i in 1 2 3 4; do curl -s -m 5 --interface ${a} http://${VIP}/id || echo FAIL; done`).join('; ')]);
        const got = count(ev.stdout.trim().split('\n'));
        assert.equal(got.FAIL, undefined, `${JSON.stringify(got)}\n${lb.log().slice(-2000)}`);
        assert.equal((got.s1 ?? 0) + (got.s2 ?? 0), 64, JSON.stringify(got));
        const st = (await ctl.call('status')) as { conns: number; packets: number; workers?: Array<{ worker: number; packets: number; conns: number }> };
        if (!pcap) {
          // both engines took connections (16 clients hashed by address over 2 workers), and the status sums them
          assert.equal(st.workers!.length, 2, JSON.stringify(st));
          for (const w of st.workers!) assert.ok(w.conns >= 8 && w.packets > 0, `worker ${w.worker}: ${JSON.stringify(st.workers)}`);
          assert.equal(st.conns, st.workers![0]!.conns + st.workers![1]!.conns);
          console.log(`      workers: ${st.workers!.map((w) => `${w.worker}: ${w.conns} conns, ${w.packets} packets`).join('; ')}`);
        }
        // every connection's NEW event, from whichever engine made it
        await sleep(300);
        const mine = events.filter((e) => clients.includes(e.orig.src));
        assert.equal(mine.length, 64, `${mine.length} NEW events`);
        // conns in pages of 7: each connection once, as many as the total says
        const seen = new Set<string>();
        let cursor: string | undefined;
        let total = -1;
        for (let pages = 0; pages < 100; pages++) {
          const p = (await ctl.call('conns', { limit: 7, ...(cursor ? { cursor } : {}), filter: { dst: VIP } })) as { conns: Array<{ orig: { src: string; sport: number } }>; next: string | null; total: number };
          assert.ok(p.conns.length <= 7);
          for (const c of p.conns) {
            const k = `${c.orig.src}:${c.orig.sport}`;
            assert.ok(!seen.has(k), `listed twice: ${k}`);
            seen.add(k);
          }
          total = p.total;
          if (p.next === null) break;
          cursor = p.next;
        }
        assert.equal([...seen].filter((k) => clients.includes(k.split(':')[0]!)).length, 64, [...seen].join(' '));
        assert.ok(total >= 64, `total ${total}`);
        // the counters are the engines' summed: 64 new connections to the VIP at least
        const ct = (await ctl.call('counters')) as { counters: Record<string, number> };
        assert.ok(ct.counters.new! >= 64, JSON.stringify(ct.counters));
        const svc = (await ctl.call('services')) as Array<{ conns: number; servers: Array<{ conns: number; weight: number }> }>;
        assert.ok(svc[0]!.conns >= 64 && svc[0]!.servers[0]!.weight === 3, JSON.stringify(svc));
        // a server added at run time (nat: its replies are new to every worker's filter and to the group's
        // program, both replaced in place; fnat: its replies to the local address): from every client, the new
        // server's connections complete too
        const a = await inNs('l', 'node', [TSVS_JS, 'ctl', '--socket', lb.sock, '-a', '-t', `${VIP}:80`, '-r', '10.77.2.13:8080', mode === 'nat' ? '-m' : '-b', '-w', '4']);
        assert.equal(a.code, 0, a.stderr);
        await sleep(300);
        const ev2 = await inNs('c', 'bash', ['-c', clients.map((x) => `for i in 1 2; do curl -s -m 5 --interface ${x} http://${VIP}/id || echo FAIL; done`).join('; ')]);
        const got2 = count(ev2.stdout.trim().split('\n'));
        assert.equal(got2.FAIL, undefined, JSON.stringify(got2));
        assert.ok((got2.s3 ?? 0) >= 8, JSON.stringify(got2));
      } finally {
        ctl.close();
        sub.close();
        const ms = await stopLb(lb);
        for (const a of clients) sh('ip', ['netns', 'exec', `${P}-c`, 'ip', 'addr', 'del', `${a}/24`, 'dev', 'eth0']);
        assert.ok(ms < 3000, `SIGTERM took ${ms} ms`);
      }
    });
  }

  it('kernel drop: while tsvs runs, the LB kernel\'s IP stack never sees the traffic tsvs takes (an nftables counter at prerouting stays 0 over 30 requests, as it counts them with kernel_drop: false); the tc filter is gone after stop', async function () {
    sh('bash', [TOPO, 'gw', P, 'nat']);
    // the LB kernel's own count of what reaches its IP layer: to the VIP, and the servers' replies to the client
    const nft = (script: string) => sh('ip', ['netns', 'exec', `${P}-l`, 'nft', '-f', '-'], script);
    nft(`table ip tsvskd {\n chain pre {\n  type filter hook prerouting priority -300;\n  ip daddr ${VIP} counter\n  ip saddr { 10.77.2.11, 10.77.2.12 } ip daddr 10.77.1.2 counter\n }\n}\n`);
    const counted = (): number[] => [...sh('ip', ['netns', 'exec', `${P}-l`, 'nft', 'list', 'table', 'ip', 'tsvskd']).matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
    const tcShow = () => sh('ip', ['netns', 'exec', `${P}-l`, 'tc', 'filter', 'show', 'dev', 'eth0', 'ingress']);
    const seen: Record<string, number[]> = {};
    try {
      for (const drop of [true, false]) {
        const lb = await startLb(config('nat', { kernelDrop: drop }));
        try {
          assert.equal(/pref 4953 bpf/.test(tcShow()), drop, tcShow());
          const before = counted();
          const c = count(await requests(30));
          assert.equal((c.s1 ?? 0) + (c.s2 ?? 0), 30, JSON.stringify(c));
          seen[String(drop)] = counted().map((x, k) => x - before[k]!);
        } finally {
          await stopLb(lb);
        }
        assert.doesNotMatch(tcShow(), /pref 4953/, 'the filter is taken off at stop');
      }
    } finally {
      sh('ip', ['netns', 'exec', `${P}-l`, 'nft', 'delete', 'table', 'ip', 'tsvskd']);
    }
    // (30 requests: 5+ packets to the VIP each — SYN, ACK, request, FIN, ACK — and 3+ back: SYN-ACK, response, FIN)
    assert.deepEqual(seen.true, [0, 0], JSON.stringify(seen));
    assert.ok(seen.false![0]! >= 150 && seen.false![1]! >= 90, JSON.stringify(seen));
  });

  it('ctstat -E streams a running daemon\'s events as conntrack -E (filters, -e mask, JSON); -C counts; -D deletes what matches, and -E shows it go; -o extended', async function () {
    sh('bash', [TOPO, 'gw', P, 'nat']);
    const lb = await startLb(config('nat'));
    try {
      // a JSON stream of everything, and a conntrack-style one of NEW events to port 80 only
      const all = startIn('l', ['node', CTSTAT_JS, '--socket', lb.sock, '-E', '-o', 'json']);
      const news = startIn('l', ['node', CTSTAT_JS, '--socket', lb.sock, '-E', '-e', 'NEW', '--port', '80']);
      let allOut = '';
      let newsOut = '';
      all.stdout!.on('data', (d: Buffer) => (allOut += d.toString()));
      news.stdout!.on('data', (d: Buffer) => (newsOut += d.toString()));
      await sleep(800); // both subscribed
      assert.equal(count(await requests(5)).FAIL, undefined);
      await sleep(300);
      const evs = allOut.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { ts: string; type: string; proto: string; state: string; orig: { src: string; dst: string; sport: number; dport: number }; replied: boolean });
      // wall-clock times (the engine's own clock is a monotonic one in tsvs run)
      for (const e of evs) assert.ok(Math.abs(Date.parse(e.ts) - Date.now()) < 60_000, `event time ${e.ts}`);
      const mine = evs.filter((e) => e.orig.dst === VIP && e.orig.dport === 80);
      const ports = [...new Set(mine.map((e) => e.orig.sport))];
      assert.equal(ports.length, 5, allOut);
      for (const sp of ports) {
        const seq = mine.filter((e) => e.orig.sport === sp).map((e) => `${e.type}:${e.state}`);
        assert.equal(seq[0], 'new:SYN_RECV', `port ${sp}: ${seq.join(' ')}`);
        assert.ok(seq.includes('update:ESTABLISHED'), `port ${sp}: ${seq.join(' ')}`);
      }
      // the NEW-only stream: conntrack -E lines, one per connection, none but NEW
      const lines = newsOut.replace(/\n+$/, '').split('\n');
      assert.equal(lines.length, 5, newsOut);
      for (const l of lines) assert.match(l, new RegExp(`^ +\\[NEW\\] tcp +6 \\d+ SYN_RECV src=10\\.77\\.1\\.2 dst=${VIP.replace(/\./g, '\\.')} sport=\\d+ dport=80 \\[UNREPLIED\\] src=10\\.77\\.2\\.1[12] dst=10\\.77\\.1\\.2 sport=8080 dport=\\d+$`));
      // -C: as many as -L lists; with a filter, those 5
      const listed = JSON.parse((await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '-L', '-o', 'json'])).stdout) as unknown[];
      const cnt = await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '-C']);
      assert.equal(cnt.code, 0, cnt.stderr);
      assert.equal(Number(cnt.stdout), listed.length);
      assert.equal(Number((await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '-C', '--dst', VIP, '--port', '80'])).stdout), 5);
      // -o extended: conntrack's layer-3 columns first
      const ext = await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '-L', '-o', 'extended', '--dst', VIP]);
      assert.match(ext.stdout, /^ipv4 {5}2 tcp {6}6 \d+ TIME_WAIT src=10\.77\.1\.2 /m);
      // -D: the client's connections to the VIP go, as DESTROY events; a second -D finds none
      const del = await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '-D', '--src', '10.77.1.2', '--dst', VIP]);
      assert.equal(del.code, 0, del.stderr);
      assert.match(del.stderr, /^conntrack v1\.4 \(tsvs\): 5 flow entries have been deleted\.$/m);
      await sleep(300);
      const destroyed = allOut.trim().split('\n').map((l) => JSON.parse(l) as { type: string; orig: { dst: string; sport: number } }).filter((e) => e.type === 'destroy' && e.orig.dst === VIP);
      assert.deepEqual(destroyed.map((e) => e.orig.sport).sort(), [...ports].sort());
      assert.equal(Number((await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '-C', '--dst', VIP])).stdout), 0);
      const again = await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '-D', '--src', '10.77.1.2', '--dst', VIP]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /0 flow entries have been deleted/);
      // bad filters and misuse: one line, exit 2
      const bad = await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '-E', '-e', 'BOGUS']);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--event-mask: expected NEW, UPDATE, DESTROY or ALL, got "BOGUS"/);
      assert.equal((await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '-D', '--state', 'NOPE'])).code, 2);
      assert.equal((await inNs('l', 'node', [CTSTAT_JS, '-E', '--snapshot', '/dev/null'])).code, 2);
      await stop(all, 'SIGINT');
      await stop(news, 'SIGINT');
    } finally {
      await stopLb(lb);
    }
  });

  it('tsvs ctl as ipvsadm: -S saves the rules, -C clears the services, -R restores them in one change; -A with no server, -E -p/-M persistence and its templates in -Lnc, -x thresholds, --set/--timeout, --sort', async function () {
    sh('bash', [TOPO, 'gw', P, 'nat']);
    const lb = await startLb(config('nat'));
    const ctl = (args: string[], input?: string) => inNs('l', 'bash', ['-c', `${input !== undefined ? `printf '%s' '${input}' | ` : ''}node ${TSVS_JS} ctl --socket ${lb.sock} ${args.join(' ')}`]);
    try {
      // -S: the rules ipvsadm -Sn prints for this configuration
      const saved = await ctl(['-S', '-n']);
      assert.equal(saved.code, 0, saved.stderr);
      assert.equal(saved.stdout, `-A -t ${VIP}:80 -s wrr\n-a -t ${VIP}:80 -r 10.77.2.11:8080 -m -w 3\n-a -t ${VIP}:80 -r 10.77.2.12:8080 -m -w 1\n`);
      // -C clears the virtual service table: no service, no answer at the VIP (connections are ctstat -F's)
      assert.equal((await ctl(['-C'])).code, 0);
      assert.doesNotMatch((await ctl(['-L', '-n'])).stdout, /TCP/);
      assert.deepEqual(await requests(1), ['FAIL']);
      // -R: the saved rules back, in one change; the split is 3:1 again
      const r = await ctl(['-R'], saved.stdout);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await ctl(['-S', '-n'])).stdout, saved.stdout);
      const c = count(await requests(8));
      assert.deepEqual(c, { s1: 6, s2: 2 }, JSON.stringify(c));
      // a bad rule anywhere: nothing applied, the line named
      const bad = await ctl(['-R'], `-A -t ${VIP}:81 -s rr\n-a -t ${VIP}:81 -r 10.77.2.11:8080 -w nine\n`);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /-R: line 2: -w: expected 0-65535, got "nine"/);
      assert.doesNotMatch((await ctl(['-L', '-n'])).stdout, /:81/);
      // -A without servers (as IPVS allows), listed; --sort orders services by protocol, address and port
      assert.equal((await ctl(['-A', '-t', '10.77.9.1:22', '-s', 'rr'])).code, 0);
      const unsorted = (await ctl(['-L', '-n'])).stdout;
      assert.ok(unsorted.indexOf(':80 ') < unsorted.indexOf(':22 '), unsorted);
      const sorted = (await ctl(['-L', '-n', '--sort'])).stdout;
      assert.ok(sorted.indexOf(':22 ') < sorted.indexOf(':80 '), sorted);
      // -E -p 60 -M 255.255.255.0: every connection of the client's /24 to one server; its template listed
      assert.equal((await ctl(['-E', '-t', `${VIP}:80`, '-s', 'rr', '-p', '60', '-M', '255.255.255.0'])).code, 0);
      const p1 = count(await requests(6));
      assert.equal(Object.keys(p1).length, 1, JSON.stringify(p1));
      const lnc = (await ctl(['-Lnc'])).stdout;
      assert.match(lnc, new RegExp(`^TCP \\d\\d:\\d\\d +NONE +10\\.77\\.1\\.0:0 +${VIP.replace(/\./g, '\\.')}:80 +10\\.77\\.2\\.1[12]:8080`, 'm'));
      assert.match((await ctl(['-S', '-n'])).stdout, new RegExp(`^-A -t ${VIP.replace(/\./g, '\\.')}:80 -s rr -p 60 -M 255\\.255\\.255\\.0$`, 'm'));
      // -E without -p: not persistent any more (ipvsadm sets the flags anew); rr alternates
      assert.equal((await ctl(['-E', '-t', `${VIP}:80`, '-s', 'rr'])).code, 0);
      assert.deepEqual(count(await requests(4)), { s1: 2, s2: 2 });
      // -x 1 on s1: while a download holds s1's one connection, new ones go to s2
      assert.equal((await ctl(['-e', '-t', `${VIP}:80`, '-r', '10.77.2.11:8080', '-m', '-w', '3', '-x', '1'])).code, 0);
      assert.match((await ctl(['-S', '-n'])).stdout, /-r 10\.77\.2\.11:8080 -m -w 3 -x 1$/m);
      const dl = startIn('c', ['curl', '-s', '-m', '20', `http://${VIP}/slow?s=3`]);
      const dlDone = new Promise<void>((res) => dl.once('exit', () => res()));
      await sleep(500);
      const during = count(await requests(4));
      await dlDone;
      assert.deepEqual(during, { s2: 4 }, `s1 at its threshold got some: ${JSON.stringify(during)}`);
      // --set / -L --timeout
      assert.equal((await ctl(['--set', '100', '30', '60'])).code, 0);
      assert.equal((await ctl(['-L', '--timeout'])).stdout, 'Timeout (tcp tcpfin udp): 100 30 60\n');
      // a connection established after it has the new timeout
      const dl2 = startIn('c', ['curl', '-s', '-m', '20', `http://${VIP}/slow?s=2`]);
      const dl2Done = new Promise<void>((res) => dl2.once('exit', () => res()));
      await sleep(600);
      const est = JSON.parse((await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '-L', '-o', 'json', '--state', 'ESTABLISHED', '--dst', VIP])).stdout) as Array<{ timeout: number; expire: number }>;
      await dl2Done;
      assert.equal(est.length, 1, JSON.stringify(est));
      assert.equal(est[0]!.timeout, 100);
      // ctstat -F empties the connection table (ipvsadm -C does not)
      const f = await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '-F']);
      assert.equal(f.code, 0, f.stderr);
      assert.match(f.stderr, /connection tracking table has been emptied/);
      assert.equal(Number((await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '-C'])).stdout), 0);
    } finally {
      await stopLb(lb);
    }
  });

  it('fnat with the PROXY protocol (v1 and v2) to nginx: it reads the client\'s address and port and the VIP; a 1 MB upload then a second request on the same connection, and a 2 MB download, arrive whole', async function () {
    if (!haveTool('nginx') && !process.env.CI) this.skip(); // CI installs it (scripts/setup.sh): never skipped there
    sh('bash', [TOPO, 'gw', P, 'direct']);
    const www = path.join(tmp, 'www');
    fs.mkdirSync(www, { recursive: true });
    fs.writeFileSync(path.join(www, 'big'), Buffer.alloc(2 << 20, 'x'));
    fs.writeFileSync(path.join(tmp, 'upload'), Buffer.alloc(1 << 20, 'u'));
    const conf = path.join(tmp, 'nginx.conf');
    const who = '"$proxy_protocol_addr:$proxy_protocol_port $proxy_protocol_server_addr:$proxy_protocol_server_port $remote_addr\\n"';
    fs.writeFileSync(
      conf,
      `daemon off; master_process off; worker_processes 1; pid ${tmp}/nginx.pid; error_log stderr;\nevents {}\nhttp { access_log off; client_body_temp_path ${tmp}; proxy_temp_path ${tmp}; fastcgi_temp_path ${tmp}; uwsgi_temp_path ${tmp}; scgi_temp_path ${tmp}; client_max_body_size 8m;\n` +
        `  server { listen 10.77.2.11:8081 proxy_protocol; listen 10.77.2.11:8082 proxy_protocol; root ${www}; location = /who { return 200 ${who}; } location = /up { client_body_buffer_size 8m; return 200 "$content_length\\n"; } }\n}\n`,
    );
    const nginx = startIn('s1', ['nginx', '-c', conf, '-e', 'stderr']);
    await sleep(500);
    assert.equal(nginx.exitCode, null, 'nginx started');
    const svc = (port: number, to: number, v: string) => [`  - proto: tcp`, `    vip: ${VIP}`, `    port: ${port}`, '    scheduler: rr', '    forward: fnat', '    laddrs: [10.77.3.1]', `    proxy_protocol: ${v}`, '    servers:', `      - { addr: 10.77.2.11, port: ${to} }`];
    const lb = await startLb(['live:', '  interfaces: [eth0]', `  socket: ${tmp}/tsvs.sock`, '  metrics: false', '  health: { interval: 1, timeout: 0.5, rise: 1, fall: 1 }', 'services:', ...svc(80, 8081, 'v1'), ...svc(81, 8082, 'v2')].join('\n'));
    try {
      for (const port of [80, 81]) {
        // two requests on one connection, with the client's port it used (curl -w local_port)
        const r = await inNs('c', 'curl', ['-s', '-w', '%{local_port}\\n', `http://${VIP}:${port}/who`, `http://${VIP}:${port}/who`]);
        const [a, p1, b, p2] = r.stdout.trim().split('\n');
        assert.equal(p1, p2, `one connection: ${r.stdout}`);
        for (const line of [a, b]) assert.equal(line, `10.77.1.2:${p1} ${VIP}:${port} 10.77.3.1`, `port ${port}: ${r.stdout}`);
        // a 1 MB upload (client bytes moved up by the header's length) and a request after it on the same connection
        const up = await inNs('c', 'curl', ['-s', '--data-binary', `@${tmp}/upload`, `http://${VIP}:${port}/up`, '--next', `http://${VIP}:${port}/who`]);
        assert.equal(up.stdout.split('\n')[0], String(1 << 20), up.stdout);
        assert.match(up.stdout.split('\n')[1]!, new RegExp(`^10\\.77\\.1\\.2:\\d+ ${VIP.replace(/\./g, '\\.')}:${port} `));
        // a 2 MB download (the server's acknowledgements moved down)
        const dl = await inNs('c', 'bash', ['-c', `curl -s http://${VIP}:${port}/big | wc -c`]);
        assert.equal(dl.stdout.trim(), String(2 << 20));
      }
      const st = JSON.parse((await inNs('l', 'node', ['-e', `const s=require('net').createConnection(process.argv[1]);s.on('data',d=>{console.log(String(d));s.destroy()});s.write('{"v":1,"cmd":"status"}\\n')`, path.join(tmp, 'tsvs.sock')])).stdout) as { result: { not_emitted: Record<string, number> } };
      assert.equal(st.result.not_emitted.proxy_header_too_big, undefined);
    } finally {
      await stopLb(lb);
      await stop(nginx);
    }
  });

  it('region probes from the LB: TCP connect, HTTP GET on an open connection and ICMP echo each measure a round trip (loopback); a closed port answers nothing', async function () {
    const port = 18000 + (process.pid % 1000);
    const srv = http.createServer((_q, r) => setTimeout(() => r.end('ok'), 50));
    await new Promise<void>((res) => srv.listen(port, '127.0.0.1', () => res()));
    try {
      const tcpMs = await rtt('127.0.0.1', port, 'tcp', '/');
      const httpMs = await rtt('127.0.0.1', port, 'http', '/probe');
      const icmpMs = await rtt('127.0.0.1', 0, 'icmp', '/');
      assert.ok(tcpMs !== null && tcpMs < 50, `tcp ${tcpMs}`);
      assert.ok(httpMs !== null && httpMs >= 45 && httpMs < 500, `http ${httpMs} (the server answers after 50 ms)`);
      assert.ok(icmpMs !== null && icmpMs < 50, `icmp ${icmpMs}`);
    } finally {
      srv.close();
    }
    assert.equal(await rtt('127.0.0.1', port, 'tcp', '/'), null);
    closeProbes(); // (its raw socket would keep mocha's process alive)
  });

  it('nearest region: three regions behind delays the test sets (HTTP probe), curls go to the nearest; slowing it moves new connections to the next within two reports, a running download stays; killing the home region\'s server moves traffic at once', async function () {
    sh('bash', [TOPO, 'gw', P, 'nat']);
    const setDelay = (s: string, ms: number) => inNs(s, 'curl', ['-s', `http://10.77.2.1${s.slice(1)}:8080/setdelay?ms=${ms}`]);
    await setDelay('s1', 20);
    await setDelay('s2', 60);
    await setDelay('s3', 120);
    const cfg = [
      'live:',
      '  interfaces: [eth0]',
      `  socket: ${tmp}/tsvs.sock`,
      '  metrics: 127.0.0.1:9640',
      '  health: { interval: 1, timeout: 0.5, rise: 1, fall: 1 }',
      'regions: { incremental_interval: 1, full_interval: 5, probe: http, probe_path: /probe }',
      'services:',
      `  - { proto: tcp, vip: ${VIP}, port: 80, scheduler: rr, forward: nat, region_select: nearest, servers: [{ addr: 10.77.2.11, port: 8080, region: eu }, { addr: 10.77.2.12, port: 8080, region: us }, { addr: 10.77.2.13, port: 8080, region: ap }] }`,
    ].join('\n');
    const lb = await startLb(cfg);
    const home = async () => /region home (\S+)/.exec((await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '-l'])).stdout)?.[1];
    const waitHome = async (want: string, ms: number) => {
      const t0 = Date.now();
      while (Date.now() - t0 < ms) {
        if ((await home()) === want) return Date.now() - t0;
        await sleep(200);
      }
      assert.fail(`home is ${await home()}, not ${want}, after ${ms} ms\n${lb.log().slice(-1500)}`);
    };
    try {
      await waitHome('eu', 5000);
      assert.deepEqual(count(await requests(6)), { s1: 6 });
      const l = (await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '-l'])).stdout;
      assert.match(l, /region home eu \(default\): eu \d+(\.\d)? ms, us \d+(\.\d)? ms, ap \d+(\.\d)? ms/);
      // a download on s1 that outlives the move
      const dl = startIn('c', ['curl', '-s', '-m', '30', `http://${VIP}/slow?s=8`]);
      let body = '';
      dl.stdout!.on('data', (d: Buffer) => (body += d.toString()));
      const dlDone = new Promise<void>((res) => dl.once('exit', () => res()));
      await sleep(300);
      // eu slows down: two reports later (each up to ~2 s with 4 tries of the slow home), us is home
      await setDelay('s1', 400);
      const took = await waitHome('us', 15000);
      console.log(`      eu slowed to 400 ms: home us after ${took} ms`);
      assert.deepEqual(count(await requests(6)), { s2: 6 });
      await dlDone;
      assert.equal(body.trim().split('\n').pop(), 's1', 'the download stayed on its server');
      // us's server dies: the health checks take it out, and the home leaves at once for ap (120 ms < eu's 400)
      await stop(servers['s2:8080']!);
      const t1 = Date.now();
      await waitHome('ap', 5000);
      console.log(`      s2 killed: home ap after ${Date.now() - t1} ms`);
      assert.deepEqual(count(await requests(4)), { s3: 4 });
      assert.match(lb.log(), /home region .*from=eu to=us why="us \d/);
      assert.match(lb.log(), /home region .*from=us to=ap why="us has no usable server"/);
      const m = (await inNs('l', 'curl', ['-s', 'http://127.0.0.1:9640/metrics'])).stdout;
      assert.match(m, /^tsvs_region_home\{service="tcp 10\.77\.9\.1:80",region="ap"\} 1$/m);
      assert.match(m, /^tsvs_region_home_changes_total\{service="tcp 10\.77\.9\.1:80"\} 3$/m);
      // the Grafana dashboard's region panels: their metrics and labels in this scrape
      assert.deepEqual(dashboardAgainst(loadDashboard(), m), []);
    } finally {
      await stopLb(lb);
      await startHttpd('s2', 8080);
      for (const s of ['s1', 's2', 's3']) await setDelay(s, 0);
    }
  });

  it('agents: an agent behind NAT registers by authenticated heartbeats; the hub learns the NAT\'s address and follows a rebinding; a forged one moves nothing; the agent detaches when the hub stops answering and attaches again; silence takes it down at the hub', async function () {
    sh('bash', [TOPO, 'gw', P, 'nat']);
    const KEY = 'a5'.repeat(32);
    const r = (args: string) => sh('ip', ['netns', 'exec', `${P}-r`, 'bash', '-c', args]);
    // the client namespace's heartbeats leave the router masqueraded, from a random port
    r(`nft add table ip tsvsagent; nft add chain ip tsvsagent post '{ type nat hook postrouting priority 100; }'; nft add rule ip tsvsagent post ip saddr 10.77.1.0/24 ip daddr 10.77.2.1 udp dport 6080 masquerade random`);
    const cfg = [
      'live:',
      '  interfaces: [eth0]',
      `  socket: ${tmp}/tsvs.sock`,
      '  metrics: 127.0.0.1:9640',
      'agents: { listen: 10.77.2.1:6080, keys: { edge-1: ' + KEY + ' }, timeout: 2 }',
      'services:',
      `  - { proto: tcp, vip: ${VIP}, port: 80, scheduler: rr, forward: nat, servers: [{ addr: 10.77.2.11, port: 8080 }] }`,
    ].join('\n');
    const lb = await startLb(cfg);
    const status = path.join(tmp, 'agent.json');
    const agent = startIn('c', ['node', TSVS_JS, 'agent', '--hub', '10.77.2.1:6080', '--id', 'edge-1', '--key', KEY, '--status', status]);
    const agents = async () => JSON.parse((await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '--agents', '-o', 'json'])).stdout) as { agents: Array<{ id: string; up: boolean; endpoint: { addr: string; port: number } | null; moves: number; heartbeats: number }>; drops: Record<string, number> };
    const until = async (what: string, f: () => Promise<boolean>, ms: number) => {
      const t0 = Date.now();
      while (Date.now() - t0 < ms) {
        if (await f()) return Date.now() - t0;
        await sleep(200);
      }
      assert.fail(`${what} not within ${ms} ms\n${lb.log().slice(-1500)}`);
    };
    const check = () => inNs('c', 'node', [TSVS_JS, 'agent', '--check', status]);
    try {
      await until('registered', async () => (await agents()).agents[0]!.up, 5000);
      const a1 = (await agents()).agents[0]!;
      assert.equal(a1.endpoint!.addr, '10.77.2.254', "the hub sees the router's address (the agent is behind NAT)");
      const c1 = await check();
      assert.equal(c1.code, 0, c1.stdout + c1.stderr);
      assert.match(c1.stdout, new RegExp(`attached to 10\\.77\\.2\\.1:6080, seen as 10\\.77\\.2\\.254:${a1.endpoint!.port},`));
      // the NAT forgets its mapping: the next heartbeat comes from a new port, and the hub follows
      r('conntrack -F >/dev/null 2>&1 || true');
      await until('moved', async () => (await agents()).agents[0]!.moves >= 1, 5000);
      const a2 = (await agents()).agents[0]!;
      assert.notEqual(a2.endpoint!.port, a1.endpoint!.port);
      // an impostor with the id but not the key: refused, counted; the endpoint stays
      const bad = startIn('c', ['node', TSVS_JS, 'agent', '--hub', '10.77.2.1:6080', '--id', 'edge-1', '--key', '5a'.repeat(32)]);
      await sleep(1500);
      await stop(bad);
      const a3 = await agents();
      assert.ok(a3.drops.bad_mac! >= 1, JSON.stringify(a3.drops));
      assert.deepEqual(a3.agents[0]!.endpoint, a2.endpoint, 'the refused datagrams moved nothing');
      // the hub stops answering (its heartbeats dropped on the way): down at the hub after 2 s, the agent
      // detached after its retries at 1, 3 and 7 s; then back
      r('nft add table ip tsvsdrop; nft add chain ip tsvsdrop blockhub \'{ type filter hook forward priority 0; }\'; nft add rule ip tsvsdrop blockhub udp dport 6080 drop');
      await until('down at the hub', async () => !(await agents()).agents[0]!.up, 5000);
      assert.match(lb.log(), /agent down agent=edge-1/);
      await until('detached', async () => (await check()).code === 1, 12000);
      assert.match((await check()).stdout, /detached from 10\.77\.2\.1:6080/);
      r('nft delete table ip tsvsdrop');
      await until('attached again', async () => (await check()).code === 0, 5000);
      assert.ok((await agents()).agents[0]!.up);
      const m = (await inNs('l', 'curl', ['-s', 'http://127.0.0.1:9640/metrics'])).stdout;
      assert.match(m, /^tsvs_agent_up\{agent="edge-1"\} 1$/m);
      assert.match(m, /^tsvs_agent_drops_total\{reason="bad_mac"\} [1-9]/m);
      // the Grafana dashboard's agent panels: their metrics and labels in this scrape
      assert.deepEqual(dashboardAgainst(loadDashboard(), m), []);
    } finally {
      await stop(agent);
      await stopLb(lb);
      r('nft delete table ip tsvsagent 2>/dev/null || true; nft delete table ip tsvsdrop 2>/dev/null || true');
    }
  });

  it('agents: a service whose server is an agent: curls to the VIP reach the server behind the agent through the hub (GUE both ways) and come back; the agent gone, its server takes no new connection', async function () {
    sh('bash', [TOPO, 'gw', P, 'nat']);
    const KEY = 'c3'.repeat(32);
    const cfg = [
      'live:',
      '  interfaces: [eth0]',
      `  socket: ${tmp}/tsvs.sock`,
      '  metrics: 127.0.0.1:9640',
      'agents: { listen: 10.77.2.1:6080, keys: { edge-3: ' + KEY + ' }, timeout: 2 }',
      'services:',
      `  - { proto: tcp, vip: ${VIP}, port: 80, scheduler: rr, forward: tunnel, tunnel: { type: gue }, servers: [{ agent: edge-3, port: 80 }] }`,
    ].join('\n');
    const lb = await startLb(cfg);
    // the agent runs beside the real server in s3 (its httpd on port 80 answers "s3"); it serves the VIP
    const agent = startIn('s3', ['node', TSVS_JS, 'agent', '--hub', '10.77.2.1:6080', '--id', 'edge-3', '--key', KEY, '--vip', VIP]);
    let alog = '';
    agent.stderr!.on('data', (d: Buffer) => (alog += d.toString()));
    try {
      const t0 = Date.now();
      while (!/agent up agent=edge-3/.test(lb.log()) && Date.now() - t0 < 5000) await sleep(100);
      assert.match(lb.log(), /agent up agent=edge-3/, alog);
      const got = count(await requests(6));
      const ag = (await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '--agents', '-o', 'json'])).stdout;
      assert.deepEqual(got, { s3: 6 }, `${JSON.stringify(got)}\n${ag}\n${alog}\n${lb.log().slice(-1500)}`);
      // a larger answer (a download of 120 kB in many segments both ways)
      const dl = await inNs('c', 'bash', ['-c', `curl -s -m 20 http://${VIP}/slow?s=3 | wc -c`]);
      assert.equal(dl.stdout.trim(), String(30 * 4096 + 4));
      await stop(agent);
      const t1 = Date.now();
      while (!/agent down agent=edge-3/.test(lb.log()) && Date.now() - t1 < 5000) await sleep(100);
      assert.match(lb.log(), /agent down agent=edge-3/);
      assert.deepEqual(await requests(1), ['FAIL']);
      // the agent's device (a TUN device: the native module is built) and policy rule went with it
      assert.match(alog, /data path: TUN device tsvst\d+/);
      assert.doesNotMatch((await inNs('s3', 'ip', ['rule'])).stdout, /lookup 7700/);
      assert.doesNotMatch((await inNs('s3', 'ip', ['link'])).stdout, /tsvs[at]\d+/);
    } finally {
      await stop(agent);
      await stopLb(lb);
    }
  });

  it('synproxy (nat): 50 requests succeed; the server sees its SYN only after the client has completed its handshake with the LB', async function () {
    sh('bash', [TOPO, 'gw', P, 'nat']);
    const lb = await startLb(config('nat', { synproxy: true }));
    const cc = path.join(tmp, 'client.pcap');
    const sc = path.join(tmp, 'server.pcap');
    try {
      const c = count(await requests(50));
      assert.equal(c.FAIL, undefined, JSON.stringify(c));
      assert.ok(c.s1! >= 37 && c.s1! <= 38, JSON.stringify(c));
      // one more request with captures on both ends (tcpdump, read back by tshark)
      // (immediate mode: packets still in the kernel's ring at SIGINT would be lost otherwise)
      const t1 = startIn('c', ['tcpdump', '-i', 'eth0', '--immediate-mode', '-U', '-n', '-w', cc, 'tcp port 80']);
      const t2 = startIn('s1', ['tcpdump', '-i', 'eth0', '--immediate-mode', '-U', '-n', '-w', sc, 'tcp port 8080']);
      await Promise.all([waitOutput(t1, /listening on/, 8000, 'stderr'), waitOutput(t2, /listening on/, 8000, 'stderr')]);
      await sleep(200);
      // the next connection goes to s1 as long as it does (wrr); try a few
      const got = await requests(4);
      assert.ok(got.includes('s1'), got.join(','));
      await sleep(1000);
      await stop(t1, 'SIGINT');
      await stop(t2, 'SIGINT');
      const fields = async (file: string, filter: string) =>
        (await run('tshark', ['-n', '-r', file, '-Y', filter, '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'tcp.srcport', '-e', 'tcp.dstport'])).stdout
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => l.split('\t'));
      // client side: its third-handshake ACK per client port; server side: the SYN the LB opened, by client port
      const acks = await fields(cc, 'tcp.dstport == 80 && tcp.flags.syn == 0 && tcp.flags.ack == 1 && tcp.flags.fin == 0 && tcp.len == 0');
      const synacks = await fields(cc, 'tcp.srcport == 80 && tcp.flags.syn == 1 && tcp.flags.ack == 1');
      // (the LB's health checks also connect to the server: from its own address, not the client's)
      const syns = await fields(sc, 'ip.src == 10.77.1.2 && tcp.dstport == 8080 && tcp.flags.syn == 1 && tcp.flags.ack == 0');
      assert.ok(syns.length >= 1, 'the server saw a SYN');
      for (const [t, sport] of syns) {
        const ack = acks.find((a) => a[1] === sport);
        const sa = synacks.find((a) => a[2] === sport);
        assert.ok(ack && sa, `client port ${sport}: handshake with the LB in the client capture`);
        assert.ok(Number(sa[0]) < Number(ack[0]) && Number(ack[0]) < Number(t), `client port ${sport}: SYN-ACK ${sa[0]} < client ACK ${ack[0]} < server SYN ${t}`);
      }
      const m = await inNs('l', 'curl', ['-s', 'http://127.0.0.1:9640/metrics']);
      assert.match(m.stdout, /tsvs_synproxy_total\{counter="SYNPROXY_OK_ACK"\} (\d+)/);
      assert.ok(Number(/tsvs_synproxy_total\{counter="SYNPROXY_OK_ACK"\} (\d+)/.exec(m.stdout)![1]) >= 54);
      // flows (on by default in tsvs run): the client's flow to the VIP, its SYNs answered with cookies as drops by
      // reason; the same in the metrics; ctstat --flows through the control socket, top and CIDR filter
      const fl = await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '--flows', '--src', '10.77.1.0/24', '-o', 'json']);
      assert.equal(fl.code, 0, fl.stderr);
      const flows = JSON.parse(fl.stdout) as Array<{ src: string; dst: string; pkts: number; fwd_pkts: number; drops: Record<string, number> }>;
      const toVip = flows.find((f) => f.src === '10.77.1.2' && f.dst === VIP)!;
      assert.ok(toVip, fl.stdout);
      assert.ok(flows.every((f) => f.src.startsWith('10.77.1.')), fl.stdout);
      // (54 connections of >= 6 client packets: the SYN answered here; the others sent on, and in their place the
      // synproxy's own SYN to the server, which counts as sent on the client's flow)
      assert.ok(toVip.drops.synproxy_cookie! >= 54 && toVip.pkts >= 54 * 6 && toVip.fwd_pkts >= 54 * 6, JSON.stringify(toVip));
      const m2 = await inNs('l', 'curl', ['-s', 'http://127.0.0.1:9640/metrics']);
      assert.ok(Number(/tsvs_flow_drops_total\{reason="synproxy_cookie"\} (\d+)/.exec(m2.stdout)?.[1]) >= toVip.drops.synproxy_cookie!, m2.stdout.slice(0, 3000));
      assert.ok(Number(/tsvs_flows (\d+)/.exec(m2.stdout)?.[1]) >= 2);
      // the Grafana dashboard's queries: every metric and label in this scrape (synproxy and flows on)
      assert.deepEqual(dashboardAgainst(loadDashboard(), m2.stdout), []);
      const top = await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '--flows', '--top', '1', '--sort', 'pkts']);
      assert.equal(top.code, 0, top.stderr);
      assert.equal(top.stdout.trim().split('\n').length, 2, top.stdout);
      assert.match(top.stdout, /^SOURCE +DESTINATION +PKTS/);
    } finally {
      await stopLb(lb);
    }
  });

  it('synproxy under a SYN flood (hping3 --flood --rand-source, 12 s): at least 90% of a returning client\'s 24 curls made during it succeed, no server is taken down, RSS stays flat', async function () {
    sh('bash', [TOPO, 'gw', P, 'nat']);
    // (each random source is a flow: the flow table grows to flows.max, 1M by default, some 170 MB; a smaller
    // bound here, so that what is checked is that nothing grows beyond its bounds)
    const lb = await startLb(config('nat', { synproxy: true, health: '{ interval: 1, timeout: 0.5, rise: 2, fall: 2 }', flowsMax: 65536 }));
    const rss = async () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${(await inNs('l', 'pgrep', ['-f', `${TSVS_JS} run --config ${lb.cfg}`])).stdout.trim().split('\n')[0]}/status`, 'utf8'))![1]);
    // a client of the service before the attack (a new client's first SYN during the flood is answered with
    // the odds the overload leaves, retried by TCP: bench/flood.sh measures those, from a client new to it)
    assert.match((await requests(1))[0]!, /^s[12]$/);
    const flood = startIn('c', ['hping3', '-S', '-p', '80', '--flood', '--rand-source', VIP]);
    try {
      await sleep(2000);
      const rss0 = await rss();
      // 24 curls started every 0.5 s, each on its own (a failing one, 5 s, does not delay the others)
      const par = await inNs('c', 'bash', ['-c', `for i in $(seq 24); do (echo "$i $(curl -s -m 5 http://${VIP}/id || echo FAIL)") & sleep 0.5; done; wait`]);
      const results = par.stdout.trim().split('\n').map((l) => l.split(' ')[1] ?? 'FAIL');
      assert.equal(results.length, 24, par.stdout);
      const rss1 = await rss();
      const ok = results.filter((x) => x === 's1' || x === 's2').length;
      const st = await inNs('l', 'node', ['-e', `const s=require('net').createConnection(process.argv[1]);s.on('data',d=>{console.log(String(d));s.destroy()});s.write('{"v":1,"cmd":"status"}\\n')`, lb.sock]);
      const status = JSON.parse(st.stdout).result as { packets: number; io: string; not_emitted: Record<string, number> };
      console.log(`      flood: ${ok} of ${results.length} curls succeeded; ${status.packets} packets, synproxy_overload ${status.not_emitted.synproxy_overload}; RSS ${rss0} -> ${rss1} kB`);
      assert.ok(status.packets > 200_000, `a flood reached the LB: ${st.stdout}`);
      // the pcap path's one send per packet falls behind: the overload policy drops SYNs early; the batched path
      // keeps up (nothing waited for transmit room), so it has nothing to drop
      if (status.io === 'pcap') assert.ok(status.not_emitted.synproxy_overload! > 0, 'the overload policy dropped SYNs early');
      else assert.equal(status.not_emitted.tx_queue_full ?? 0, 0, st.stdout);
      assert.ok(ok >= 0.9 * results.length, `${ok} of ${results.length} succeeded: ${results.join(',')}; ${st.stdout}`);
      assert.doesNotMatch(lb.log(), /server down/);
      assert.ok(rss1 - rss0 < 64 * 1024, `RSS ${rss0} -> ${rss1} kB`);
    } finally {
      await stop(flood, 'SIGINT');
      await stopLb(lb);
    }
  });

  it('a burst larger than the receive ring (64 KiB: 32 frames) under a UDP flood is counted as ring drops, never a crash; the control socket answers within a second while saturated', async function () {
    sh('bash', [TOPO, 'gw', P, 'nat']);
    const lb = await startLb(config('nat', { ringKb: 64 }));
    // (one flow: a fixed source port, so that the table is not what fills)
    const flood = startIn('c', ['hping3', '--udp', '-s', '5555', '-k', '-p', '9', '-d', '18', '--flood', VIP]);
    try {
      await sleep(1500);
      // the control socket's round trip for `snapshot` (what ctstat -S asks), five times while the flood runs
      const rt = await inNs('l', 'node', [
        '-e',
        `const net=require('net');(async()=>{const out=[];for(let i=0;i<5;i++){out.push(await new Promise((res,rej)=>{const t0=process.hrtime.bigint();const s=net.createConnection(process.argv[1]);let b='';s.on('data',d=>{b+=d;if(b.includes('\\n')){s.destroy();res(Number(process.hrtime.bigint()-t0)/1e6)}});s.on('error',rej);s.write('{"v":1,"cmd":"snapshot"}\\n')}));await new Promise(r=>setTimeout(r,200))}console.log(JSON.stringify(out))})()`,
        lb.sock,
      ]);
      const times = JSON.parse(rt.stdout) as number[];
      assert.equal(times.length, 5, rt.stderr);
      for (const t of times) assert.ok(t < 1000, `snapshot answered in ${times.map((x) => x.toFixed(1)).join(', ')} ms`);
      const t0 = Date.now();
      const st = await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '-S']);
      const ctstatMs = Date.now() - t0;
      assert.equal(st.code, 0, st.stderr);
      const drops = Number(/^ {2}ring_drops +(\d+)$/m.exec(st.stdout)?.[1]);
      if (process.env.TSVS_LIVE_IO !== 'pcap') {
        assert.ok(drops > 0, `ring drops counted: ${st.stdout}`);
        assert.match(st.stdout, /^packet i\/o: batched \(TPACKET_V2 ring, sendmmsg\)$/m);
        assert.match(st.stdout, /^ {2}rx_per_batch +\d/m);
      } else assert.ok(drops >= 0, st.stdout);
      console.log(`      flood: snapshot answered in ${times.map((x) => x.toFixed(1)).join(', ')} ms; ctstat -S (a new Node process) ${ctstatMs} ms; capture drops ${drops}`);
    } finally {
      await stop(flood, 'SIGINT');
    }
    try {
      // still serving
      const after = count(await requests(4));
      assert.equal(after.FAIL, undefined, `${JSON.stringify(after)}\n${(await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '-S'])).stdout}\n${lb.log().slice(-1500)}`);
      assert.equal(lb.proc.exitCode, null);
    } finally {
      await stopLb(lb);
    }
  });

  it('health: a server killed mid-test stops getting connections within the health interval; tsvs ctl adds a third server; SIGHUP keeps a download alive; the control socket survives garbage, hang-ups and 100 concurrent ctstat -L', async function () {
    sh('bash', [TOPO, 'gw', P, 'nat']);
    const lb = await startLb(config('nat'));
    try {
      // every series from the start, zero-valued: each server's too
      const m0 = (await inNs('l', 'curl', ['-s', 'http://127.0.0.1:9640/metrics'])).stdout;
      for (const s of ['10.77.2.11:8080', '10.77.2.12:8080']) {
        for (const name of ['tsvs_server_connections_total', 'tsvs_server_in_packets_total', 'tsvs_server_out_bytes_total']) assert.match(m0, new RegExp(`^${name}\\{service="[^"]+",server="${s.replace(/\./g, '\\.')}"\\} 0$`, 'm'), `${name} ${s}`);
      }
      // every reason-labelled series too: each reason a packet may be not sent or not decoded for, each state
      for (const r of NOT_EMITTED_REASONS) assert.match(m0, new RegExp(`^tsvs_not_emitted_total\\{reason="${r}"\\} \\d+$`, 'm'), r);
      for (const r of DROP_REASONS.filter((x) => x !== 'ok' && x !== 'not_ip')) assert.match(m0, new RegExp(`^tsvs_decode_drops_total\\{reason="${r}"\\} 0$`, 'm'), r);
      for (const st of ['SYN_RECV', 'ESTABLISHED', 'TIME_WAIT']) assert.match(m0, new RegExp(`^tsvs_connections\\{proto="tcp",state="${st}"\\} \\d+$`, 'm'), st);
      assert.equal(count(await requests(8)).FAIL, undefined);
      // kill s2's server (by PID): after one interval (1 s) + timeout, every request lands on s1
      await stop(servers['s2:8080']!);
      await sleep(1600);
      const c = count(await requests(20));
      assert.deepEqual(c, { s1: 20 }, JSON.stringify(c));
      assert.match(lb.log(), /server down .*10\.77\.2\.12:8080/);
      const l = await inNs('l', 'node', [CTSTAT_JS, '--socket', lb.sock, '-l']);
      assert.match(l.stdout, /10\.77\.2\.12:8080 +Masq +1 .* down/);
      await startHttpd('s2', 8080);

      // tsvs ctl -a: s3 with weight 4 of 8 gets half the new connections
      const a = await inNs('l', 'node', [TSVS_JS, 'ctl', '--socket', lb.sock, '-a', '-t', `${VIP}:80`, '-r', '10.77.2.13:8080', '-m', '-w', '4']);
      assert.equal(a.code, 0, a.stderr);
      await sleep(1500); // s2 back up (rise 1)
      const c2 = count(await requests(16));
      assert.equal(c2.FAIL, undefined, JSON.stringify(c2));
      assert.equal(c2.s3, 8, JSON.stringify(c2));

      // SIGHUP with a changed configuration (s2's weight) during a download: it completes
      const dl = startIn('c', ['curl', '-s', '-m', '20', `http://${VIP}/slow?s=3`]);
      let body = '';
      dl.stdout!.on('data', (d: Buffer) => (body += d.toString()));
      const done = new Promise<number>((r) => dl.once('exit', (code) => r(code ?? -1)));
      await sleep(1000);
      fs.writeFileSync(lb.cfg, fs.readFileSync(lb.cfg, 'utf8').replace('port: 8080, weight: 1', 'port: 8080, weight: 2'));
      lb.proc.kill('SIGHUP');
      assert.equal(await done, 0, 'the download survived the reload');
      assert.ok(body.length > 30 * 4096, `download body ${body.length} bytes`);
      assert.match(lb.log(), /reloaded .*changed=1/);

      // the control socket: garbage, a client hanging up mid-reply, 100 concurrent listings
      const garbage = await inNs('l', 'node', [
        '-e',
        `const s=require('net').createConnection(process.argv[1]);let o='';s.on('data',d=>o+=d);s.on('connect',()=>{s.write('garbage\\n{"v":9}\\n{"v":1,"id":'+'['.repeat(1e5)+']'.repeat(1e5)+',"cmd":"hello"}\\n'+'x'.repeat(2e6));setTimeout(()=>{console.log(o);s.destroy()},500)});s.on('error',()=>{console.log(o)})`,
        lb.sock,
      ]);
      assert.match(garbage.stdout, /"code":"BAD_JSON"/);
      assert.match(garbage.stdout, /"code":"BAD_VERSION"/);
      assert.match(garbage.stdout, /"code":"BAD_REQUEST","message":"id: /); // a 100k-deep id once crashed the daemon
      assert.match(garbage.stdout, /"code":"TOO_LONG"/);
      // a client that asks for 200 listings and hangs up as soon as the first reply starts arriving
      const hang = await inNs('l', 'node', ['-e', `const s=require('net').createConnection(process.argv[1]);s.on('connect',()=>{for(let i=0;i<200;i++)s.write('{"v":1,"cmd":"conns","limit":10000}\\n')});s.once('data',()=>{s.destroy();console.log('hung up')})`, lb.sock]);
      assert.match(hang.stdout, /hung up/);
      const many = await inNs('l', 'bash', ['-c', `for i in $(seq 100); do (node ${CTSTAT_JS} --socket ${lb.sock} -L -o json > /dev/null && echo ok) & done; wait`]);
      assert.equal(many.stdout.trim().split('\n').filter((x) => x === 'ok').length, 100, many.stdout + many.stderr);
      const c3 = count(await requests(10));
      assert.equal(c3.FAIL, undefined, JSON.stringify(c3));
      const st = await inNs('l', 'node', ['-e', `const s=require('net').createConnection(process.argv[1]);s.on('data',d=>{console.log(String(d));s.destroy()});s.write('{"v":1,"cmd":"status"}\\n')`, lb.sock]);
      // 100 ctstat -L (2 requests each) and at least the first of the hung-up client's were answered
      assert.ok(JSON.parse(st.stdout).result.ctl.requests >= 2 * 100 + 1, st.stdout);
    } finally {
      const ms = await stopLb(lb);
      assert.ok(ms < 2000, `SIGTERM took ${ms} ms`);
      assert.ok(!fs.existsSync(lb.sock), 'the control socket is removed on exit');
    }
  });

  it('live.workers: a worker thread that ends stops the daemon: exit 70, the failure in one error line, the tc filter taken off', async function () {
    if (process.env.TSVS_LIVE_IO === 'pcap') this.skip(); // (no workers on the fallback path: the batched runs check this)
    sh('bash', [TOPO, 'gw', P, 'nat']);
    // (a test hook: worker 1 ends by itself this long after it started)
    process.env.TSVS_TEST_LIVE_WORKER_EXIT = '1500';
    let lb: Lb;
    try {
      lb = await startLb(config('nat').replace('live:\n', 'live:\n  workers: 2\n'));
    } finally {
      delete process.env.TSVS_TEST_LIVE_WORKER_EXIT;
    }
    const code = await new Promise<number | null>((resolve) => {
      if (lb.proc.exitCode !== null) return resolve(lb.proc.exitCode);
      const t = setTimeout(() => resolve(null), 10_000);
      lb.proc.once('exit', (c) => {
        clearTimeout(t);
        resolve(c);
      });
    });
    if (code === null) await stopLb(lb);
    assert.equal(code, 70, lb.log().slice(-1500));
    const errors = lb.log().split('\n').filter((l) => / ERROR /.test(l));
    assert.equal(errors.length, 1, errors.join('\n'));
    assert.match(errors[0]!, /worker thread failed: stopping error="worker 1 ended \(exit code 3\)"/);
    const tc = await inNs('l', 'tc', ['filter', 'show', 'dev', 'eth0', 'ingress']);
    assert.doesNotMatch(tc.stdout, /pref 4953/, 'the kernel-drop filter is taken off');
  });

  it('live.workers: services whose fanout program the kernel would not take (over 4096 instructions) are refused: at start one line and exit 2; through the control socket INVALID, the services unchanged', async function () {
    if (process.env.TSVS_LIVE_IO === 'pcap') this.skip(); // (no workers on the fallback path: the batched runs check this)
    sh('bash', [TOPO, 'gw', P, 'nat']);
    // 60 dual-stack services: every VIP, local address and NAT server is a compare in the program
    const many = Array.from({ length: 60 }, (_, i) => [
      { proto: 'tcp', vip: `10.88.${i}.1`, port: 80, scheduler: 'rr', forward: 'fnat', laddrs: [`10.89.${i}.1`], servers: [{ addr: `10.90.${i}.1`, port: 80 }] },
      { proto: 'tcp', vip: `2001:db8:88::${i + 1}`, port: 80, scheduler: 'rr', forward: 'nat', servers: [{ addr: `2001:db8:90::${i + 1}`, port: 80 }] },
    ]).flat();
    const big = path.join(tmp, 'big.yaml');
    fs.writeFileSync(big, config('nat').replace('live:\n', 'live:\n  workers: 2\n').replace(/\nservices:[\s\S]*$/, `\nservices: ${JSON.stringify(many)}\n`));
    const r = await inNs('l', 'node', [TSVS_JS, 'run', '--config', big], 20000);
    assert.equal(r.code, 2, r.stderr.slice(-1500));
    const errors = r.stderr.split('\n').filter((l) => / ERROR /.test(l));
    assert.equal(errors.length, 1, r.stderr);
    assert.match(errors[0]!, /cannot start error="live\.workers: the services' fanout program has \d{4} instructions \(the kernel takes 4096\): fewer service addresses, or live\.workers: 1"/);
    // the same services sent to a running daemon with workers: refused, nothing changed
    const lb = await startLb(config('nat').replace('live:\n', 'live:\n  workers: 2\n'));
    const ctl = new CtlClient(lb.sock);
    try {
      await ctl.connect();
      const before = await ctl.call('services.config');
      await assert.rejects(ctl.call('services.set', { services: many }), /^Error: INVALID: live\.workers: the services' fanout program has \d{4} instructions/);
      assert.deepEqual(await ctl.call('services.config'), before);
      assert.equal(count(await requests(4)).FAIL, undefined);
    } finally {
      ctl.close();
      await stopLb(lb);
    }
  });

  it('tsvs run without root privileges or a live: section fails with one line and exit 2', async function () {
    const cfg = path.join(tmp, 'nolive.yaml');
    fs.writeFileSync(cfg, 'services: []\n');
    const r = await run('node', [TSVS_JS, 'run', '--config', cfg]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /live: required/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });
});
