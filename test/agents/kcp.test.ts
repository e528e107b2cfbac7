/**
 * KCP (src/agents/kcp.ts) against the reference C implementation: the npm package node-kcp bundles
 * skywind3000's ikcp.c (built by `npm ci`). Each side talks to the other through a channel the test makes
 * lossy and reordering (20% of datagrams dropped, each way, ACKs included; the rest delayed 5-80 ms at
 * random, so they overtake each other), in virtual time; both directions carry data at once. The streams
 * must arrive complete and in order. Also: the wire header byte for byte as ikcp writes it.
 */
import { strict as assert } from 'node:assert';
import { createRequire } from 'node:module';
import { Kcp, KCP_OVERHEAD, CMD_PUSH, CMD_ACK } from '../../src/agents/kcp.js';
import { rng } from '../helpers/rng.js';

interface RefKcp {
  output(f: (data: Buffer, size: number, ctx: unknown) => void): void;
  input(b: Buffer): number;
  send(b: Buffer): number;
  recv(): Buffer | undefined;
  update(t: number): void;
  nodelay(nd: number, interval: number, resend: number, nc: number): void;
  wndsize(snd: number, rcv: number): void;
  stream(on: number): number;
  waitsnd(): number;
  release(): void;
}
/** the reference (an optional dependency, built by npm ci where g++ and make are): null when absent */
let ref: { KCP: new (conv: number, ctx: object) => RefKcp } = null as never;
let refWhy = '';
try {
  ref = createRequire(import.meta.url)('node-kcp/index.js') as typeof ref;
} catch (e) {
  refWhy = (e as Error).message.split('\n')[0]!;
}

/** one side of a conversation, whichever implementation */
interface End {
  send(b: Buffer): void;
  input(b: Buffer): void;
  recv(): Buffer | null;
  update(t: number): void;
  pending(): number;
}

function ours(conv: number, out: (b: Buffer) => void, nodelay: number[], stream: boolean): End {
  const k = new Kcp(conv, out);
  k.setNodelay(nodelay[0]!, nodelay[1]!, nodelay[2]!, nodelay[3]!);
  k.setWndSize(64, 128);
  k.stream = stream;
  return {
    send: (b) => assert.ok(k.send(b)),
    input: (b) => assert.equal(k.input(b), 0),
    recv: () => k.recv(),
    update: (t) => k.update(t),
    pending: () => k.waitSnd(),
  };
}

function theirs(conv: number, out: (b: Buffer) => void, nodelay: number[], stream: boolean): End {
  const k = new ref.KCP(conv, {});
  k.output((data, size) => out(Buffer.from(data.subarray(0, size))));
  k.nodelay(nodelay[0]!, nodelay[1]!, nodelay[2]!, nodelay[3]!);
  k.wndsize(64, 128);
  if (stream) k.stream(1);
  return {
    send: (b) => assert.equal(k.send(b), 0),
    input: (b) => assert.equal(k.input(b), 0),
    recv: () => k.recv() ?? null,
    update: (t) => k.update(t),
    pending: () => k.waitsnd(),
  };
}

/** messages of 1 to 4000 bytes (larger than the MSS: fragments), each numbered so order is checked */
function messages(seed: number, n: number): Buffer[] {
  const r = rng(seed);
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const len = 4 + Math.floor(r() * 4000);
    const b = Buffer.alloc(len);
    b.writeUInt32BE(i);
    for (let j = 4; j < len; j++) b[j] = (i * 31 + j) & 255;
    out.push(b);
  }
  return out;
}

/**
 * A and B over a channel that drops `loss` of the datagrams each way and delays the rest 5-80 ms (so they
 * reorder); each sends its messages to the other; returns what each received, concatenated, and the time
 */
function converse(mk: [typeof ours, typeof ours], nodelay: number[], stream: boolean, seed: number, loss = 0.2) {
  const r = rng(seed);
  let now = 1000;
  const flying: Array<{ at: number; to: 0 | 1; b: Buffer }> = [];
  const sent = [0, 0];
  const dropped = [0, 0];
  const log: Buffer[] = [];
  const wire = (to: 0 | 1) => (b: Buffer) => {
    log.push(b);
    sent[to]!++;
    if (r() < loss) {
      dropped[to]!++;
      return;
    }
    flying.push({ at: now + 5 + Math.floor(r() * 75), to, b });
  };
  const conv = 0x11223344;
  const ends = [mk[0](conv, wire(1), nodelay, stream), mk[1](conv, wire(0), nodelay, stream)];
  const msgs = [messages(seed + 1, 150), messages(seed + 2, 150)];
  const got: Buffer[][] = [[], []];
  const want = msgs.map((m) => m.reduce((n, b) => n + b.length, 0));
  const have = [0, 0];
  const next = [0, 0];
  for (; now < 1000 + 600_000; now += 10) {
    // each side queues a few messages at a time (as an application would)
    for (const i of [0, 1]) {
      while (next[i]! < msgs[i]!.length && ends[i]!.pending() < 48) {
        ends[i]!.send(msgs[i]![next[i]!]!);
        next[i]!++;
      }
    }
    // deliver what has arrived, in arrival order
    flying.sort((a, b) => a.at - b.at);
    while (flying.length > 0 && flying[0]!.at <= now) {
      const d = flying.shift()!;
      ends[d.to]!.input(d.b);
    }
    for (const i of [0, 1]) {
      ends[i]!.update(now);
      for (let m = ends[i]!.recv(); m; m = ends[i]!.recv()) {
        got[1 - i]!.push(m);
        have[1 - i]! += m.length;
      }
    }
    if (have[0] === want[0] && have[1] === want[1]) break;
  }
  return { log, got: got.map((g) => Buffer.concat(g)), want: msgs.map((m) => Buffer.concat(m)), msgs, gotMsgs: got, ms: now - 1000, sent, dropped };
}

describe('KCP against the reference C implementation (node-kcp bundles ikcp.c)', function () {
  this.timeout(120000);

  before(function () {
    if (refWhy === '') return;
    // CI installs the build tools: there, a missing reference is a failure, not a skip
    if (process.env.CI) throw new Error(`node-kcp (the reference ikcp.c) is not built: ${refWhy}`);
    this.skip();
  });

  it('writes the 24-byte little-endian header as ikcp does (conv, cmd, frg, wnd, ts, sn, una, len), and reads ikcp\'s', () => {
    const mine: Buffer[] = [];
    const k = new Kcp(0xa1b2c3d4, (b) => mine.push(b));
    assert.ok(k.send(Buffer.from('hello')));
    const r: Buffer[] = [];
    const c = new ref.KCP(0xa1b2c3d4, {});
    c.output((d, n) => r.push(Buffer.from(d.subarray(0, n))));
    c.send(Buffer.from('hello'));
    // (the first flush has a congestion window of 0, in both: the segment leaves at the second)
    for (const t of [4900, 5000]) {
      k.update(t);
      c.update(t);
    }
    assert.equal(mine.length, 1);
    assert.equal(r.length, 1);
    // the same first datagram, byte for byte: conv d4 c3 b2 a1, PUSH 81, frg 0, wnd 128, ts 5000, sn 0, una 0, len 5
    assert.deepEqual(mine[0], r[0]);
    assert.equal(mine[0]!.toString('hex'), 'd4c3b2a1' + '51' + '00' + '8000' + '88130000' + '00000000' + '00000000' + '05000000' + Buffer.from('hello').toString('hex'));
    assert.equal(mine[0]![4], CMD_PUSH);
    // the reference's ACK for it, read by ours
    const acks: Buffer[] = [];
    const c2 = new ref.KCP(0xa1b2c3d4, {});
    c2.output((d, n) => acks.push(Buffer.from(d.subarray(0, n))));
    c2.update(5000);
    assert.equal(c2.input(mine[0]!), 0);
    c2.update(5100);
    assert.equal(acks.length, 1);
    assert.equal(acks[0]!.length, KCP_OVERHEAD);
    assert.equal(acks[0]![4], CMD_ACK);
    assert.equal(c2.recv()!.toString(), 'hello');
    assert.equal(k.waitSnd(), 1);
    k.update(5120);
    assert.equal(k.input(acks[0]!), 0);
    assert.equal(k.waitSnd(), 0, 'acknowledged');
    // a datagram of another conversation, a cut one, an unknown command: ikcp's -1, -2, -3
    assert.equal(k.input(Buffer.from(acks[0]!).fill(0, 0, 4)), -1);
    assert.equal(k.input(Buffer.concat([mine[0]!.subarray(0, 24), Buffer.from('hel')])), -2);
    const bad = Buffer.from(acks[0]!);
    bad[4] = 99;
    assert.equal(k.input(bad), -3);
  });

  it('the same conversation, with the same losses and delays, makes the same datagrams byte for byte from ours as from ikcp (each in every mode)', () => {
    for (const [nd, stream] of [
      [[0, 100, 0, 0], false],
      [[1, 10, 2, 1], false],
      [[1, 30, 2, 0], false],
      [[2, 20, 2, 1], true],
    ] as const) {
      const a = converse([ours, ours], [...nd], stream, 99);
      const b = converse([theirs, theirs], [...nd], stream, 99);
      assert.ok(a.log.length > 500, String(a.log.length));
      assert.equal(a.log.length, b.log.length, `${JSON.stringify(nd)}: datagrams`);
      for (let i = 0; i < a.log.length; i++) assert.ok(a.log[i]!.equals(b.log[i]!), `${JSON.stringify(nd)}: datagram ${i} differs:\n${a.log[i]!.subarray(0, 48).toString('hex')}\n${b.log[i]!.subarray(0, 48).toString('hex')}`);
      assert.equal(a.ms, b.ms);
    }
  });

  const modes: Array<[string, number[], boolean]> = [
    ['default (nodelay 0, interval 100)', [0, 100, 0, 0], false],
    ['fast (nodelay 1, interval 10, resend 2, no cwnd)', [1, 10, 2, 1], false],
    ['stream mode, nodelay 2', [2, 20, 2, 1], true],
  ];
  for (const [name, nd, stream] of modes) {
    for (const [label, mk] of [
      ['ours -> ikcp and ikcp -> ours', [ours, theirs]],
      ['ikcp -> ours and ours -> ikcp', [theirs, ours]],
    ] as const) {
      it(`${name}: ${label} at once, 20% loss and reordering each way: both streams complete and in order`, () => {
        const r = converse(mk as unknown as [typeof ours, typeof ours], nd, stream, nd[1]! * 7 + (mk[0] === ours ? 1 : 2));
        process.stderr.write(`      (${r.sent[0]! + r.sent[1]!} datagrams, ${r.dropped[0]! + r.dropped[1]!} dropped; done in ${r.ms} ms of virtual time)\n`);
        assert.ok(r.dropped[0]! / r.sent[0]! > 0.15 && r.dropped[1]! / r.sent[1]! > 0.15, `losses ${JSON.stringify(r)}`);
        for (const i of [0, 1]) {
          assert.equal(r.got[i]!.length, r.want[i]!.length, `side ${i}: ${r.got[i]!.length} of ${r.want[i]!.length} bytes in ${r.ms} ms`);
          assert.ok(r.got[i]!.equals(r.want[i]!), `side ${i}: the bytes in order`);
          // message mode keeps the messages' boundaries
          if (!stream) assert.deepEqual(r.gotMsgs[i]!.map((m) => m.length), r.msgs[i]!.map((m) => m.length));
        }
      });
    }
  }
});
