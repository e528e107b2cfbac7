/**
 * tsvs's native module (native/tsvs.c) on its own, in two network namespaces joined by a veth pair: the
 * receive ring (TPACKET_V2) when a burst is larger than the ring — the kernel's drops counted, every packet
 * handed over once and in order, and delivery going on afterwards — and the TUN device.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { REPO, run } from '../helpers/corpus.js';
import { requireRoot, sh } from '../helpers/netns.js';
import { loadNative } from '../../src/native.js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { Bpf } from '../../src/capture/bpf.js';
import { Dispatcher } from '../../src/workers/dispatch.js';
import { fanoutProgram } from '../../src/workers/fanout.js';
import { slotTable } from '../../src/workers/layout.js';
import { parseConfig } from '../../src/config.js';
import { Services } from '../../src/service/services.js';

const P = `tn${process.pid % 100000}`;
const MOD = path.join(REPO, 'native', 'build', 'tsvs.node');

describe('native module: the receive ring and the TUN device', function () {
  this.timeout(60000);

  before(function () {
    requireRoot(this);
    // (CI builds the module: its absence is a failure there, as the live tests' path is)
    if (!loadNative().mod) {
      if (process.env.CI) throw new Error(`the native module is not built: ${loadNative().why}`);
      this.skip();
    }
    for (const n of ['a', 'b']) sh('ip', ['netns', 'add', `${P}-${n}`]);
    sh('ip', ['link', 'add', `${P}-x`, 'netns', `${P}-a`, 'type', 'veth', 'peer', 'name', `${P}-y`, 'netns', `${P}-b`]);
    sh('ip', ['netns', 'exec', `${P}-a`, 'sh', '-c', `ip link set ${P}-x name v0 && ip addr add 10.99.1.2/24 dev v0 && ip link set v0 up && ip link set lo up`]);
    sh('ip', ['netns', 'exec', `${P}-b`, 'sh', '-c', `ip link set ${P}-y name v1 && ip addr add 10.99.1.1/24 dev v1 && ip link set v1 up && ip link set lo up`]);
  });

  after(function () {
    for (const n of ['a', 'b']) {
      try {
        sh('ip', ['netns', 'del', `${P}-${n}`]);
      } catch {
        /* not made */
      }
    }
  });

  it('a burst of 3000 packets into a ring of 32 frames read slowly: the rest counted as drops, each packet handed over once and in order, and delivery goes on after it', async function () {
    const r = await run('ip', ['netns', 'exec', `${P}-a`, 'node', path.join(REPO, 'test', 'native', 'ring-rx.mjs'), MOD, 'v0', `${P}-b`, '10.99.1.2', path.join(REPO, 'test', 'native', 'udp-send.cjs')], { timeout: 30000 });
    assert.equal(r.code, 0, r.stderr);
    const o = JSON.parse(r.stdout) as { burst: number[]; after: number[]; stats: { packets: number; drops: number } };
    // the ring held about its 32 frames of the burst (the sender's ARP request takes one), far from all of it
    assert.ok(o.burst.length >= 24 && o.burst.length < 3000, `${o.burst.length} ${JSON.stringify(o.stats)}`);
    assert.equal(new Set(o.burst).size, o.burst.length, 'no packet twice');
    assert.deepEqual(o.burst, [...o.burst].sort((a, b) => a - b), 'in order');
    // what the ring could not hold, the kernel counted (ARP/ND may add a few to the packets handed over)
    assert.ok(o.stats.drops >= 3000 - o.burst.length - 5 && o.stats.drops <= 3000 - o.burst.length, JSON.stringify(o.stats));
    assert.deepEqual(o.after, Array.from({ length: 20 }, (_, i) => 100000 + i), 'after the burst, every packet');
  });

  it('frames sized for the MTU: with 9000 on the link and 16 KiB frames, an 8000-byte datagram arrives whole', async function () {
    for (const [n, dev] of [['a', 'v0'], ['b', 'v1']]) sh('ip', ['netns', 'exec', `${P}-${n}`, 'ip', 'link', 'set', dev!, 'mtu', '9000']);
    try {
      const r = await run('ip', ['netns', 'exec', `${P}-a`, 'node', path.join(REPO, 'test', 'native', 'jumbo-rx.mjs'), MOD, 'v0', `${P}-b`, '10.99.1.2', path.join(REPO, 'test', 'native', 'udp-send.cjs')], { timeout: 30000 });
      assert.equal(r.code, 0, r.stderr);
      // Ethernet 14 + IPv4 20 + UDP 8 + 8000
      assert.deepEqual(JSON.parse(r.stdout), [{ caplen: 8042, wirelen: 8042 }]);
    } finally {
      for (const [n, dev] of [['a', 'v0'], ['b', 'v1']]) sh('ip', ['netns', 'exec', `${P}-${n}`, 'ip', 'link', 'set', dev!, 'mtu', '1500']);
    }
  });

  it('a VLAN tag the kernel takes off (skb_vlan_untag) is put back where it was on the wire, as libpcap does', async function () {
    const r = await run('ip', ['netns', 'exec', `${P}-a`, 'node', path.join(REPO, 'test', 'native', 'vlan-rx.mjs'), MOD, 'v0', `${P}-b`, 'v1'], { timeout: 30000 });
    assert.equal(r.code, 0, r.stderr);
    // 0x8100, priority 5 and VID 10 (0xa00a), then IPv4; 14 + 4 + 20 + 12 bytes
    assert.deepEqual(JSON.parse(r.stdout), [{ at12: '8100a00a0800', caplen: 50, wirelen: 50 }]);
  });

  it('receive coalescing (100 ms): a light load is handed over as it comes; packets arriving while the ring is busy wait out the nap together', async function () {
    const r = await run('ip', ['netns', 'exec', `${P}-a`, 'node', path.join(REPO, 'test', 'native', 'coalesce-rx.mjs'), MOD, 'v0', `${P}-b`, '10.99.1.2'], { timeout: 30000 });
    assert.equal(r.code, 0, r.stderr);
    const o = JSON.parse(r.stdout) as { lightGaps: Array<number | null>; lightCalls: number; burst: number; spacedCalls: number | null };
    // sent 40 ms apart: never held for the 100 ms nap, each in a call of its own
    assert.ok(o.lightGaps.every((g) => g !== null && g < 80), JSON.stringify(o));
    assert.equal(o.lightCalls, 8, JSON.stringify(o));
    assert.equal(o.burst, 50, JSON.stringify(o));
    // sent 15 ms apart after the burst: together after the nap (one call per packet without coalescing)
    assert.ok(o.spacedCalls !== null && o.spacedCalls <= 2, JSON.stringify(o));
  });

  for (const threads of [2, 0]) {
    it(`transmit ${threads ? `on ${threads} threads` : "on the caller's thread"}: 2000 datagrams to two destinations arrive, each destination's in order; a bad descriptor fails at once`, async function () {
      sh('ip', ['netns', 'exec', `${P}-b`, 'ip', 'addr', 'replace', '10.99.1.3/24', 'dev', 'v1']);
      const dir = path.join(REPO, 'test', 'native');
      const r = await run('ip', ['netns', 'exec', `${P}-a`, 'node', path.join(dir, 'tx-threads.mjs'), MOD, String(threads), `${P}-b`, path.join(dir, 'udp-recv.cjs'), '10.99.1.2', '10.99.1.1', '10.99.1.3'], { timeout: 30000 });
      assert.equal(r.code, 0, r.stderr);
      const o = JSON.parse(r.stdout) as { received: Record<string, number[]>; now: { sent: number; failed: number; errnos: number[] }; collected: { sent: number; failed: number; queued: number }; drained: boolean };
      const even = Array.from({ length: 1000 }, (_, i) => 2 * i);
      assert.deepEqual(o.received['10.99.1.1'], even, 'the first destination: every datagram, in order');
      assert.deepEqual(o.received['10.99.1.3'], even.map((x) => x + 1), 'the second destination: every datagram, in order');
      // the bad descriptors (one per batch) fail at once with EINVAL; the sends are counted by whoever made them
      assert.deepEqual({ failed: o.now.failed, errnos: o.now.errnos }, { failed: 20, errnos: [22] });
      assert.equal(o.now.sent + o.collected.sent, 2000);
      assert.equal(threads ? o.collected.sent : o.now.sent, 2000, 'threads report through txCollect, the caller through txSend');
      assert.equal(o.collected.failed, 0);
      assert.equal(o.collected.queued, 0, 'nothing left queued once drained');
      assert.equal(o.drained, true);
    });
  }

  it('handles outlive what they name: 300 rings and pollers opened, closed twice, used after close (an error, not freed memory) and collected; no crash or double free', async function () {
    // (each struct is freed by the last of its holders, the JavaScript handle's finalizer or libuv's close)
    const r = await run('ip', ['netns', 'exec', `${P}-a`, 'node', '--expose-gc', path.join(REPO, 'test', 'native', 'handle-life.mjs'), MOD, 'lo'], { timeout: 30000, env: { ...process.env, MALLOC_CHECK_: '3' } });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), ['ringStats after close: the ring is closed']);
  });

  for (const how of ['exit', 'terminate']) {
    it(`a worker thread with a running ring in a fanout group that ends without closing it (${how}): the process goes on, the ring's socket is closed with the thread`, async function () {
      // (live workers: Node aborts the whole process when a thread's loop still has a handle at its end)
      const r = await run('ip', ['netns', 'exec', `${P}-a`, 'node', path.join(REPO, 'test', 'native', 'worker-exit.mjs'), MOD, how], { timeout: 30000 });
      assert.equal(r.code, 0, r.stderr.slice(0, 1500));
      const o = JSON.parse(r.stdout) as { before: number; running: number; code: number; after: number };
      assert.deepEqual(o, { before: o.before, running: o.before + 1, code: how === 'exit' ? 3 : 1, after: o.before });
    });
  }

  it("a fanout group of 3 rings with tsvs's dispatch program (PACKET_FANOUT_CBPF): each datagram reaches the one ring the program names, as tsvs's BPF interpreter runs it", async function () {
    // the dispatch rule's program (tuple mode: a symmetric hash of the tuple over 3 workers' slots), in its
    // raw-IP form: the kernel runs a fanout program from the network header (the Ethernet header is pulled
    // by then; the Ethernet form sent everything to member 0, its "not IP")
    const d = new Dispatcher(slotTable(3, 1 / 3), null, 'tuple');
    const prog = fanoutProgram(d.rule(), 101);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-fanout-')), 'prog.json');
    fs.writeFileSync(file, JSON.stringify([...prog]));
    const r = await run('ip', ['netns', 'exec', `${P}-a`, 'node', path.join(REPO, 'test', 'native', 'fanout-rx.mjs'), MOD, 'v0', `${P}-b`, path.join(REPO, 'test', 'native', 'fanout-send.cjs'), '10.99.1.2', file, '3', '150'], { timeout: 30000 });
    fs.rmSync(path.dirname(file), { recursive: true });
    assert.equal(r.code, 0, r.stderr);
    const o = JSON.parse(r.stdout) as { got: Array<[number, string]>; stats: Array<{ packets: number; drops: number }> };
    // every datagram once (300: 2 from each of 150 source ports)
    const nums = o.got.map(([, hex]) => Buffer.from(hex, 'hex').readUInt32BE(42)).sort((a, b) => a - b);
    assert.deepEqual(nums, Array.from({ length: 300 }, (_, i) => i));
    // each in the ring the program names (the kernel takes its value modulo the members) and the dispatcher too
    const bpf = new Bpf(prog);
    const per = [0, 0, 0];
    for (const [ring, hex] of o.got) {
      const f = Buffer.from(hex, 'hex');
      assert.equal(ring, bpf.run(f, 14, f.length - 14, f.length - 14) % 3, hex);
      assert.equal(ring, d.workerOf(f, 0, f.length, f.length, 1), hex);
      per[ring]!++;
    }
    // the 150 source ports spread over the three rings
    assert.ok(per.every((n) => n >= 40), JSON.stringify(per));
  });

  it('the kernel takes the dispatch program of service mode (VIPs, NAT servers, local addresses, IPv4 and IPv6, persistence) for a fanout group', async function () {
    const services: unknown[] = [];
    for (let i = 0; i < 20; i++) {
      services.push({ proto: 'tcp', vip: `10.1.${i}.1`, port: 80, scheduler: 'rr', forward: 'fnat', laddrs: [`10.2.${i}.1`], servers: [{ addr: `10.3.${i}.1`, port: 80 }], persistence: { timeout: 60, netmask: 24 } });
      services.push({ proto: 'udp', vip: `2001:db8:1::${i + 1}`, port: 53, scheduler: 'rr', forward: 'nat', servers: [{ addr: `2001:db8:3::${i + 1}`, port: 53 }], persistence: { timeout: 60, netmask: 24 } });
    }
    const cfg = parseConfig({ services }, 'test');
    const d = new Dispatcher(slotTable(4, 1 / 4), new Services(cfg.services, cfg.regions), 'service');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-fanout-'));
    const out: string[] = [];
    for (const [name, prog] of [['service', fanoutProgram(d.rule(), 101)], ['reading a scratch word never stored', Int32Array.of(0x60, 0, 0, 3, 0x16, 0, 0, 0)]] as const) {
      const file = path.join(dir, 'prog.json');
      fs.writeFileSync(file, JSON.stringify([...prog]));
      const r = await run('ip', ['netns', 'exec', `${P}-a`, 'node', path.join(REPO, 'test', 'native', 'fanout-accept.mjs'), MOD, 'v0', file], { timeout: 30000 });
      out.push(`${name}: ${r.stdout.trim()}`);
    }
    fs.rmSync(dir, { recursive: true });
    // (a program the kernel's checker refuses — one reading a scratch word never stored — fails the open)
    assert.deepEqual(out, ['service: ok', 'reading a scratch word never stored: PACKET_FANOUT_DATA: Invalid argument']);
  });

  it('a TUN device: a packet routed to it is read (in a batch), a packet written to it is received by the stack', async function () {
    const tun = path.join(REPO, 'test', 'native', 'tun-echo.cjs');
    const r = await run('ip', ['netns', 'exec', `${P}-a`, 'sh', '-c', `node ${tun} ${MOD} & sleep 0.5; ping -c 1 -W 2 10.98.0.2; wait`], { timeout: 20000 });
    assert.match(r.stdout, /echo 10\.98\.0\.2/, r.stderr);
    assert.match(r.stdout, /1 packets transmitted, 1 received/, r.stdout + r.stderr);
  });
});
