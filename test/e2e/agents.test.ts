/**
 * Remote servers as agents (issue 18), end to end in network namespaces: client --- router --- LB (hub),
 * and behind an "internet" segment a NAT (nftables masquerade, random ports) with three servers on a private
 * LAN the LB has no route to. Each server runs a real HTTP server and `tsvs agent`, which registers with the
 * hub through the NAT, learns the VIP it serves from the hub's answer, and carries the client's connections
 * in GUE both ways. Oracles: curl's success and the body naming the server; the kernel's own routing (the LB
 * cannot reach the servers); the hub's view by `ctstat --agents`; a heartbeat captured by tcpdump and sent
 * again from elsewhere.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { REPO } from '../helpers/corpus.js';
import { requireRoot, sh, sleep } from '../helpers/netns.js';
import { NsProcs, stopProc } from '../helpers/ns-procs.js';

const P = `ta${process.pid % 100000}`;
const TOPO = path.join(REPO, 'test', 'e2e', 'agents-topology.sh');
const HTTPD = path.join(REPO, 'test', 'e2e', 'httpd.mjs');
const TSVS_JS = path.join(REPO, 'dist', 'src', 'cli', 'tsvs.js');
const CTSTAT_JS = path.join(REPO, 'dist', 'src', 'cli', 'ctstat.js');
const VIP = '10.77.9.1';
const VIP2 = '10.77.9.2';
const NAT = '10.66.0.2';
const KEYS = { a1: '1a'.repeat(32), a2: '2b'.repeat(32), a3: '3c'.repeat(32) };

const procs = new NsProcs(P);
const startIn = (ns: string, args: string[]) => procs.start(ns, args);
const inNs = (ns: string, cmd: string, args: string[], timeout?: number) => procs.run(ns, cmd, args, timeout);
const stop = stopProc;
let tmp = '';
let lbLog = '';
let lb: ChildProcess | null = null;
const agentLogs: Record<string, string> = {};
const agentProcs: Record<string, ChildProcess> = {};




interface AgentView {
  id: string;
  up: boolean;
  endpoint: { addr: string; port: number } | null;
  moves: number;
  heartbeats: number;
  control: { conv: number; messages_out: number; messages_in: number } | null;
  reported: { delivered: number; returned: number; rtt_ms: number; vips: string[] } | null;
}
interface HubView {
  agents: AgentView[];
  drops: Record<string, number>;
  data: { to_agents: number; from_agents: number; refused: number };
}

async function hub(): Promise<HubView> {
  const r = await inNs('l', 'node', [CTSTAT_JS, '--socket', path.join(tmp, 'tsvs.sock'), '--agents', '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as HubView;
}

const agent = async (id: string) => (await hub()).agents.find((a) => a.id === id)!;

async function until(what: string, f: () => Promise<boolean>, ms: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (await f()) return Date.now() - t0;
    await sleep(100);
  }
  assert.fail(`${what}: not within ${ms} ms\n${lbLog.slice(-1500)}\n${JSON.stringify(agentLogs)}`);
}

/** `tsvs agent` in server namespace `ns`, as `id`, with the key in `keyFile` (the VIPs from the hub's answer) */
function startAgent(n: string, id: string, keyFile: string, extra: string[] = []): ChildProcess {
  const p = startIn(n, ['node', TSVS_JS, 'agent', '--hub', '10.77.2.1:6080', '--id', id, '--key-file', keyFile, ...extra]);
  agentLogs[n] = '';
  p.stderr!.on('data', (d: Buffer) => (agentLogs[n] += d.toString()));
  agentProcs[n] = p;
  return p;
}

/** the LB's configuration: the VIP on a1, a2 and a3 by weights 3:2:1; with `second`, a second VIP on a1 */
function lbConfig(second = false): string {
  return [
    'live:',
    '  interfaces: [eth0]',
    `  socket: ${tmp}/tsvs.sock`,
    'agents:',
    '  listen: 10.77.2.1:6080',
    `  key_files: { a1: ${tmp}/a1.key, a2: ${tmp}/a2.key, a3: ${tmp}/a3.key }`,
    '  timeout: 2',
    'services:',
    `  - { proto: tcp, vip: ${VIP}, port: 80, scheduler: wrr, forward: tunnel, tunnel: { type: gue }, servers: [{ agent: a1, port: 80, weight: 3 }, { agent: a2, port: 80, weight: 2 }, { agent: a3, port: 80, weight: 1 }] }`,
    ...(second ? [`  - { proto: tcp, vip: ${VIP2}, port: 80, scheduler: rr, forward: tunnel, tunnel: { type: gue }, servers: [{ agent: a1, port: 80 }] }`] : []),
  ].join('\n');
}

/** n sequential requests from the client, one TCP connection each: the body of each (or FAIL) */
async function requests(n: number, vip = VIP): Promise<Record<string, number>> {
  const r = await inNs('c', 'bash', ['-c', `for i in $(seq ${n}); do curl -s -m 5 http://${vip}/id || echo FAIL; done`]);
  const c: Record<string, number> = {};
  for (const l of r.stdout.trim().split('\n')) c[l] = (c[l] ?? 0) + 1;
  return c;
}

describe('agents: remote servers behind NAT, registered by authenticated heartbeats, reached over GUE through the hub', function () {
  this.timeout(120000);

  before(async function () {
    requireRoot(this);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-agents-'));
    sh('bash', [TOPO, 'up', P]);
    for (const [id, hex] of Object.entries(KEYS)) fs.writeFileSync(path.join(tmp, `${id}.key`), `${hex}\n`);
    fs.writeFileSync(path.join(tmp, 'wrong.key'), `${'99'.repeat(32)}\n`);
    const ready: Array<Promise<void>> = [];
    for (const a of ['a1', 'a2', 'a3']) {
      const h = startIn(a, ['node', HTTPD, a, '80']);
      ready.push(new Promise((resolve) => h.stdout!.on('data', (d: Buffer) => /ready/.test(d.toString()) && resolve())));
    }
    await Promise.all(ready);
    const cfg = path.join(tmp, 'lb.yaml');
    fs.writeFileSync(cfg, lbConfig());
    lb = startIn('l', ['node', TSVS_JS, 'run', '--config', cfg]);
    lb.stderr!.on('data', (d: Buffer) => (lbLog += d.toString()));
    await until('the daemon running', async () => /INFO {2}running/.test(lbLog), 10000);
    startAgent('a1', 'a1', path.join(tmp, 'a1.key'));
    // a1 on the TUN device (the native module), a2 on the veth pair (raw socket in, libpcap out)
    startAgent('a2', 'a2', path.join(tmp, 'a2.key'), ['--data', 'veth']);
    // a3 runs with a key that is not its own
    startAgent('a3', 'a3', path.join(tmp, 'wrong.key'));
  });

  after(async function () {
    await procs.stopAll();
    if (tmp) {
      sh('bash', [TOPO, 'down', P]);
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('two servers on a private LAN behind NAT, each running tsvs agent: 50 curls to the VIP all succeed, split 3:2 by weight, answered through the NAT; the LB has no route to them', async function () {
    // the servers are out of the LB's reach: no route from its namespace (nor from the router)
    assert.notEqual((await inNs('l', 'ping', ['-c', '1', '-W', '1', '192.168.77.11'])).code, 0);
    assert.notEqual((await inNs('r', 'ip', ['route', 'get', '192.168.77.11'])).code, 0);
    await until('both agents up', async () => (await agent('a1')).up && (await agent('a2')).up, 8000);
    // each seen at the NAT's outside address, from a port of its own
    const [a1, a2] = [await agent('a1'), await agent('a2')];
    assert.equal(a1.endpoint!.addr, NAT);
    assert.equal(a2.endpoint!.addr, NAT);
    assert.notEqual(a1.endpoint!.port, a2.endpoint!.port);
    // the agents learnt the VIP from the hub's answer (no --vip given) and put it on lo
    await until('the VIP on the servers', async () => /serving 10\.77\.9\.1/.test(agentLogs.a1!) && /serving 10\.77\.9\.1/.test(agentLogs.a2!), 3000);
    assert.match((await inNs('a1', 'ip', ['-4', 'addr', 'show', 'dev', 'lo'])).stdout, /inet 10\.77\.9\.1\/32/);
    assert.match(agentLogs.a1!, /data path: TUN device tsvst\d+/);
    assert.match(agentLogs.a2!, /data path: veth pair tsvsa\d+ \(raw socket in, libpcap out\)/);
    const before = (await hub()).data;
    const got = await requests(50);
    assert.equal(got.FAIL, undefined, `${JSON.stringify(got)}\n${lbLog.slice(-1500)}\n${JSON.stringify(agentLogs)}`);
    assert.equal((got.a1 ?? 0) + (got.a2 ?? 0), 50, JSON.stringify(got));
    // wrr 3:2 (a3 is down): 30 and 20, give or take the cycle's phase
    assert.ok(got.a1! >= 29 && got.a1! <= 31, JSON.stringify(got));
    // every answer came back through the hub (GUE from the agents, through the NAT): at least a SYN-ACK, the
    // answer and a FIN per connection; the NAT's table holds the agents' mappings to the hub
    const after = (await hub()).data;
    assert.ok(after.from_agents - before.from_agents >= 150, JSON.stringify({ before, after }));
    assert.ok(after.to_agents - before.to_agents >= 150, JSON.stringify({ before, after }));
    const ct = (await inNs('n', 'conntrack', ['-L', '-p', 'udp', '--dport', '6080'])).stdout;
    assert.match(ct, /src=192\.168\.77\.11 dst=10\.77\.2\.1 sport=\d+ dport=6080 .*src=10\.77\.2\.1 dst=10\.66\.0\.2 sport=6080/);
    assert.match(ct, /src=192\.168\.77\.12 dst=10\.77\.2\.1 sport=\d+ dport=6080 .*src=10\.77\.2\.1 dst=10\.66\.0\.2 sport=6080/);
    // the hub's engine tracked both directions of each connection (the agents' replies go through it): the
    // handshake, the answer and the close seen from both sides, as the kernel's conntrack would
    const ls = await inNs('l', 'node', [CTSTAT_JS, '--socket', path.join(tmp, 'tsvs.sock'), '-L', '-o', 'json', '--dst', VIP]);
    const conns = JSON.parse(ls.stdout) as Array<{ state: string; replied: boolean; assured: boolean; orig_pkts: number; reply_pkts: number }>;
    assert.equal(conns.length, 50, ls.stdout.slice(0, 500));
    for (const c of conns) {
      assert.ok(c.replied && c.assured && c.reply_pkts >= 3 && c.orig_pkts >= 4, JSON.stringify(c));
      // (closing states of the DPVS profile, the daemon's default; `replied` and the reply packets are what
      // only the agents' replies through the engine give)
      assert.match(c.state, /^(FIN_WAIT|TIME_WAIT|CLOSE|CLOSE_WAIT|LAST_ACK)$/, JSON.stringify(c));
    }
    // the agents' own counts, reported on the control channel (every 2 s): what they handed to their host and
    // sent back; together no more than the hub sent them, and at least the curls' packets
    await sleep(2500);
    const v = await hub();
    const [r1, r2] = ['a1', 'a2'].map((id) => v.agents.find((a) => a.id === id)!);
    assert.ok(r1!.control && r2!.control, 'control channels open');
    assert.ok(r1!.reported!.delivered + r2!.reported!.delivered <= v.data.to_agents, JSON.stringify(v));
    assert.ok(r1!.reported!.delivered >= 3 * got.a1! && r2!.reported!.delivered >= 3 * got.a2!, JSON.stringify(v));
    assert.ok(r1!.reported!.returned >= 3 * got.a1!, JSON.stringify(r1));
    assert.deepEqual(r1!.reported!.vips, [VIP]);
    assert.ok(r1!.reported!.rtt_ms >= 0 && r1!.reported!.rtt_ms < 100, JSON.stringify(r1));
    // the operator's view
    const text = (await inNs('l', 'node', [CTSTAT_JS, '--socket', path.join(tmp, 'tsvs.sock'), '--agents'])).stdout;
    assert.match(text, /^AGENT +STATE ENDPOINT +LAST_MS HEARTBEATS +MOVES +RTT_MS CONTROL +IN_PKTS +OUT_PKTS$/m);
    assert.match(text, new RegExp(`^a1 +up +10\\.66\\.0\\.2:${a1.endpoint!.port} +\\d+ +\\d+ +0 +[\\d.]+ up +${r1!.reported!.delivered} +${r1!.reported!.returned}$`, 'm'));
    assert.match(text, /^a3 +down +- +- +0 +0 +- +- +- +-$/m);
  });

  it('a reload that gives an agent a second VIP: the hub pushes the new membership on the control channel (KCP), the agent serves it, curls to it are answered; a reload that takes it away: the agent lets it go', async function () {
    sh('ip', ['netns', 'exec', `${P}-r`, 'ip', 'route', 'replace', `${VIP2}/32`, 'via', '10.77.2.1']);
    const before = (await agent('a1')).control!;
    fs.writeFileSync(path.join(tmp, 'lb.yaml'), lbConfig(true));
    lb!.kill('SIGHUP');
    await until('a1 serving the second VIP', async () => new RegExp(`serving ${VIP2.replace(/\./g, '\\.')}`).test(agentLogs.a1!), 3000);
    const after = (await agent('a1')).control!;
    assert.equal(after.conv, before.conv, 'the same conversation');
    assert.ok(after.messages_out > before.messages_out, `the hub pushed the new membership: ${JSON.stringify({ before, after })}`);
    // a2 serves only the first
    assert.doesNotMatch(agentLogs.a2!, new RegExp(VIP2.replace(/\./g, '\\.')));
    const got = await requests(5, VIP2);
    assert.deepEqual(got, { a1: 5 }, `${JSON.stringify(got)}\n${agentLogs.a1}`);
    assert.match((await inNs('a1', 'ip', ['-4', 'addr', 'show', 'dev', 'lo'])).stdout, new RegExp(`inet ${VIP2.replace(/\./g, '\\.')}/32`));
    // and back: the hub no longer names it, the agent lets it go (off lo, its rule gone)
    fs.writeFileSync(path.join(tmp, 'lb.yaml'), lbConfig(false));
    lb!.kill('SIGHUP');
    await until('a1 letting the second VIP go', async () => new RegExp(`no longer serving ${VIP2.replace(/\./g, '\\.')}`).test(agentLogs.a1!), 3000);
    assert.doesNotMatch((await inNs('a1', 'ip', ['-4', 'addr', 'show', 'dev', 'lo'])).stdout, new RegExp(VIP2.replace(/\./g, '\\.')));
    assert.doesNotMatch((await inNs('a1', 'ip', ['rule'])).stdout, new RegExp(`from ${VIP2.replace(/\./g, '\\.')} lookup 7700`));
    assert.match((await inNs('a1', 'ip', ['rule'])).stdout, new RegExp(`from ${VIP.replace(/\./g, '\\.')} lookup 7700`));
  });

  it('an agent with a wrong key never receives traffic; a captured heartbeat sent again from another address or port moves neither the endpoint nor the traffic; both counted as rejected', async function () {
    const v0 = await hub();
    const a3 = v0.agents.find((a) => a.id === 'a3')!;
    assert.equal(a3.up, false);
    assert.equal(a3.endpoint, null);
    assert.ok(v0.drops.bad_mac! >= 2, `the wrong key's heartbeats refused: ${JSON.stringify(v0.drops)}`);
    assert.doesNotMatch(agentLogs.a3!, /attached|serving/);
    assert.doesNotMatch((await inNs('a3', 'ip', ['-4', 'addr', 'show', 'dev', 'lo'])).stdout, /10\.77\.9\.1/);
    // capture one of a1's heartbeats as it reaches the LB (type 0x81, id "a1")
    const cap = path.join(tmp, 'hb.pcap');
    const a1 = await agent('a1');
    const td = await inNs('l', 'timeout', ['5', 'tcpdump', '-i', 'eth0', '-c', '1', '-w', cap, `udp and src host ${NAT} and src port ${a1.endpoint!.port} and dst port 6080 and udp[8] = 0x81`]);
    assert.equal(td.code, 0, td.stderr);
    const pcap = fs.readFileSync(cap);
    // pcap header 24, record header 16, Ethernet 14, IPv4 (its IHL), UDP 8
    const ip = 24 + 16 + 14;
    const payload = pcap.subarray(ip + (pcap[ip]! & 15) * 4 + 8);
    assert.equal(payload[0], 0x81);
    assert.equal(payload.subarray(3, 3 + payload[2]!).toString(), 'a1');
    const hex = payload.toString('hex');
    const send = (n: string, bind: string) => inNs(n, 'node', ['-e', `const s=require('dgram').createSocket('udp4');s.bind(${bind},()=>s.send(Buffer.from('${hex}','hex'),6080,'10.77.2.1',()=>s.close()))`]);
    // from the client's address, and from the NAT's own address with another port
    assert.equal((await send('c', '0')).code, 0);
    assert.equal((await send('n', '40404')).code, 0);
    await sleep(300);
    const v1 = await hub();
    assert.equal(v1.drops.replay! - (v0.drops.replay ?? 0), 2, JSON.stringify(v1.drops));
    const a1b = v1.agents.find((a) => a.id === 'a1')!;
    assert.deepEqual(a1b.endpoint, a1.endpoint, 'the endpoint stayed');
    assert.equal(a1b.moves, a1.moves);
    // and the traffic stayed: 10 more curls, all answered, a1 among them
    const got = await requests(10);
    assert.equal(got.FAIL, undefined, JSON.stringify(got));
    assert.ok((got.a1 ?? 0) >= 5 && got.a3 === undefined, JSON.stringify(got));
  });

  it('killing an agent takes it out of scheduling within its timeout (new curls succeed on the other); restarted behind the NAT (a new mapping) it is back within seconds', async function () {
    const old = (await agent('a1')).endpoint!;
    const t0 = Date.now();
    await stop(agentProcs.a1!, 'SIGKILL');
    await until('a1 down at the hub', async () => !(await agent('a1')).up, 4000);
    const downMs = Date.now() - t0;
    // the timeout is 2 s; the hub checks every 200 ms, ctstat takes its own time
    assert.ok(downMs <= 3000, `down after ${downMs} ms`);
    assert.match(lbLog, /agent down agent=a1/);
    const mid = await requests(10);
    assert.deepEqual(mid, { a2: 10 }, JSON.stringify(mid));
    // restarted: a new socket, so a new mapping at the NAT (random ports)
    const t1 = Date.now();
    startAgent('a1', 'a1', path.join(tmp, 'a1.key'));
    await until('a1 up again', async () => (await agent('a1')).up, 6000);
    const upMs = Date.now() - t1;
    const now = (await agent('a1')).endpoint!;
    assert.equal(now.addr, NAT);
    assert.notEqual(now.port, old.port, 'a new mapping');
    assert.match(lbLog, /agent up agent=a1/);
    await until('the VIP served again', async () => /serving 10\.77\.9\.1 \(from the hub/.test(agentLogs.a1!), 3000);
    // a new control conversation
    await until('a new control channel', async () => (lbLog.match(/agent control channel agent=a1/g) ?? []).length === 2, 3000);
    const back = await requests(10);
    assert.equal(back.FAIL, undefined, `${JSON.stringify(back)}\n${agentLogs.a1}`);
    assert.ok(back.a1! >= 5, JSON.stringify(back));
    process.stderr.write(`      (a1 down at the hub ${downMs} ms after SIGKILL; back ${upMs} ms after its restart)\n`);
  });

  it('an agent stopped takes away what it added: its device, the policy rules and the VIPs on lo', async function () {
    await stop(agentProcs.a2!);
    assert.match(agentLogs.a2!, /data path: veth/);
    assert.doesNotMatch((await inNs('a2', 'ip', ['link'])).stdout, /tsvsa\d+/);
    assert.doesNotMatch((await inNs('a2', 'ip', ['rule'])).stdout, /lookup 7700/);
    assert.doesNotMatch((await inNs('a2', 'ip', ['-4', 'addr', 'show', 'dev', 'lo'])).stdout, /10\.77\.9\./);
    // a1 (its TUN device; the VIPs and rules of its first run, killed, stay: a VIP already on lo is left alone)
    await stop(agentProcs.a1!);
    assert.doesNotMatch((await inNs('a1', 'ip', ['link'])).stdout, /tsvst\d+/);
  });
});
