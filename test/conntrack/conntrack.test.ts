import { strict as assert } from 'node:assert';
import { PacketRecord } from '../../src/capture/record.js';
import type { Conntrack, Profile } from '../../src/conntrack/conntrack.js';
import { Engine } from '../../src/engine.js';
import { bytes, icmp, ipv4, ipv6, tcp, udp } from '../helpers/packets.js';

const C = '10.0.0.1';
const S = '10.0.0.2';
const SYN = 0x02;
const SYNACK = 0x12;
const ACK = 0x10;
const FINACK = 0x11;
const RSTACK = 0x14;
const PSHACK = 0x18;

interface Ev {
  t: number;
  type: string;
  state: string;
  assured: boolean;
}

/** connection tracking alone: the engine without a load balancer, raw IP frames in virtual time */
class Harness {
  readonly e: Engine;
  readonly tr: Conntrack;
  readonly r = new PacketRecord();
  readonly events: Ev[] = [];
  readonly destroyed: Array<{ t: number; reason: string }> = [];

  constructor(profile: Profile, opts: { maxConns?: number; seed?: number; jitter?: boolean } = {}) {
    this.e = new Engine({ conntrack: { profile, maxConns: opts.maxConns ?? 64, seed: opts.seed ?? 1, jitter: opts.jitter ?? false } });
    this.tr = this.e.ct;
    this.tr.onEvent = (type, c, us) => this.events.push({ t: us / 1e6, type, state: this.tr.stateName(c), assured: (this.tr.statusOf(c) & 1) !== 0 });
    this.tr.extend({ destroyed: (_c, us, reason) => this.destroyed.push({ t: us / 1e6, reason }) });
  }

  /** feed one IP packet at time `t` seconds; returns the entry */
  pkt(t: number, frame: Uint8Array): number {
    const sec = Math.floor(t);
    Object.assign(this.r, { buf: frame, off: 0, caplen: frame.length, wirelen: frame.length, linktype: 228 + (frame[0]! >> 4 === 6 ? 1 : 0), tsSec: sec, tsFrac: Math.round((t - sec) * 1e6), digits: 6 });
    return this.e.frame(this.r);
  }

  tcp4(t: number, fromClient: boolean, flags: number, seq = 1000, ack = 0, payload: Uint8Array = new Uint8Array(0), cport = 40000): number {
    const [src, dst, sport, dport] = fromClient ? [C, S, cport, 80] : [S, C, 80, cport];
    return this.pkt(t, ipv4({ proto: 6, src, dst }, tcp({ src, dst, sport, dport, flags, seq, ack }, payload)));
  }

  udp4(t: number, fromClient: boolean): number {
    const [src, dst, sport, dport] = fromClient ? [C, S, 5353, 53] : [S, C, 53, 5353];
    return this.pkt(t, ipv4({ proto: 17, src, dst }, udp({ src, dst, sport, dport }, bytes(1, 2, 3))));
  }

  states(): string[] {
    return this.events.map((e) => `${e.type}:${e.state}`);
  }

  time(t: number): void {
    this.e.time.set(Math.floor(t), Math.round((t - Math.floor(t)) * 1e6), 6);
  }
}

/** a full connection: 3-way handshake, data both ways, FIN from the client, FIN from the server */
function fullConnection(h: Harness, t0: number, cport = 40000): void {
  h.tcp4(t0, true, SYN, 100, 0, undefined, cport);
  h.tcp4(t0 + 0.01, false, SYNACK, 500, 101, undefined, cport);
  h.tcp4(t0 + 0.02, true, ACK, 101, 501, undefined, cport);
  h.tcp4(t0 + 0.03, true, PSHACK, 101, 501, bytes(1, 2, 3), cport);
  h.tcp4(t0 + 0.04, false, PSHACK, 501, 104, bytes(4, 5), cport);
  h.tcp4(t0 + 0.05, true, FINACK, 104, 503, undefined, cport);
  h.tcp4(t0 + 0.06, false, FINACK, 503, 105, undefined, cport);
  h.tcp4(t0 + 0.07, true, ACK, 105, 504, undefined, cport);
}

describe('conntrack: netfilter profile', function () {
  it('handshake, data, FIN close: the kernel state sequence, ASSURED, then TIME_WAIT expiry after 120 s', function () {
    const h = new Harness('netfilter');
    fullConnection(h, 1000);
    assert.deepEqual(h.states(), ['new:SYN_SENT', 'update:SYN_RECV', 'update:ESTABLISHED', 'update:FIN_WAIT', 'update:LAST_ACK', 'update:TIME_WAIT']);
    assert.equal(h.events[2]!.assured, true);
    assert.equal(h.tr.table.count, 1);
    const c = [...h.tr.handles()][0]!;
    assert.equal(h.tr.acct.historyString(c), 'ShADdFf'); // no bare ACK from the server in this exchange
    assert.deepEqual([h.tr.acct.packetsOf(c, 0), h.tr.acct.packetsOf(c, 1)], [5, 3]);
    h.time(1000.07 + 119.9);
    assert.equal(h.tr.table.count, 1);
    h.time(1000.07 + 120.01);
    assert.equal(h.tr.table.count, 0);
    assert.equal(h.destroyed[0]!.reason, 'expired');
    assert.ok(Math.abs(h.destroyed[0]!.t - 1120.07) < 0.002, `destroyed at ${h.destroyed[0]!.t}`);
  });

  it('refused port: SYN answered by RST/ACK before any reply is removed at once', function () {
    const h = new Harness('netfilter');
    h.tcp4(1, true, SYN);
    h.tcp4(1.001, false, RSTACK, 0, 1001);
    assert.equal(h.tr.table.count, 0);
    assert.equal(h.destroyed[0]!.reason, 'killed');
    assert.deepEqual(h.states(), ['new:SYN_SENT', 'destroy:CLOSE']);
  });

  it('half-open SYN: retransmits do not renew the timeout (expires 120 s after the first SYN)', function () {
    const h = new Harness('netfilter');
    h.tcp4(10, true, SYN);
    h.tcp4(13, true, SYN);
    h.tcp4(19, true, SYN);
    h.time(130.5);
    assert.equal(h.tr.table.count, 0);
    assert.ok(Math.abs(h.destroyed[0]!.t - 130) < 0.002, `expired at ${h.destroyed[0]!.t}`);
  });

  it('mid-stream pickup: a first ACK is ESTABLISHED, capped at the 300 s unacknowledged timeout until a reply', function () {
    const h = new Harness('netfilter');
    h.tcp4(0, true, ACK, 5000, 7000);
    assert.deepEqual(h.states(), ['new:ESTABLISHED']);
    assert.equal(h.tr.timeoutOf(0), 300);
    h.tcp4(1, false, ACK, 7000, 5000);
    h.tcp4(2, true, ACK, 5000, 7000);
    assert.equal(h.tr.timeoutOf(0), 432000);
    assert.equal(h.events.at(-1)!.assured, true);
  });

  it('non-SYN, non-ACK first packets (FIN, RST, SYN/ACK) open nothing and count as invalid', function () {
    const h = new Harness('netfilter');
    h.tcp4(0, true, FINACK);
    h.tcp4(0, true, RSTACK);
    h.tcp4(0, false, SYNACK);
    assert.equal(h.tr.table.count, 0);
    assert.equal(h.tr.counter('invalid'), 3);
  });

  it('a new SYN on a closed (TIME_WAIT) connection reopens it as a new connection', function () {
    const h = new Harness('netfilter');
    fullConnection(h, 0);
    h.tcp4(5, true, SYN, 90000);
    assert.equal(h.tr.counter('reopened'), 1);
    assert.equal(h.tr.created, 2);
    assert.deepEqual(h.states().slice(-2), ['destroy:TIME_WAIT', 'new:SYN_SENT']);
  });

  it('a SYN in ESTABLISHED is ignored (no state change, no timer refresh)', function () {
    const h = new Harness('netfilter');
    h.tcp4(0, true, SYN, 100);
    h.tcp4(0.1, false, SYNACK, 500, 101);
    h.tcp4(0.2, true, ACK, 101, 501);
    const n = h.events.length;
    h.tcp4(1, true, SYN, 99999);
    assert.equal(h.events.length, n);
    assert.equal(h.tr.counter('ignore'), 1);
  });

  it('simultaneous open: SYN, SYN from the reply side (SYN_SENT2), SYN/ACK, ACK', function () {
    const h = new Harness('netfilter');
    h.tcp4(0, true, SYN, 100);
    h.tcp4(0.1, false, SYN, 500);
    h.tcp4(0.2, true, SYNACK, 100, 501);
    h.tcp4(0.3, false, ACK, 501, 101);
    assert.deepEqual(h.states(), ['new:SYN_SENT', 'update:SYN_SENT2', 'update:SYN_RECV', 'update:ESTABLISHED']);
  });

  it('UDP: 30 s unreplied; a reply after 2 s makes it a 120 s ASSURED stream', function () {
    const h = new Harness('netfilter');
    h.udp4(0, true);
    assert.equal(h.tr.timeoutOf(0), 30);
    h.udp4(0.5, false);
    assert.deepEqual(h.states(), ['new:UNREPLIED', 'update:REPLIED']);
    h.udp4(1.0, true);
    assert.equal(h.tr.timeoutOf(0), 30);
    h.udp4(3.0, true);
    assert.equal(h.tr.timeoutOf(0), 120);
    assert.deepEqual(h.states().at(-1), 'update:ASSURED');
    h.time(3.0 + 121);
    assert.equal(h.tr.table.count, 0);
  });

  it('UDP without a reply expires after 30 s', function () {
    const h = new Harness('netfilter');
    h.udp4(0, true);
    h.udp4(20, true);
    h.time(49.9);
    assert.equal(h.tr.table.count, 1);
    h.time(50.1);
    assert.equal(h.tr.table.count, 0);
  });

  it('ICMP echo request/reply is one connection; an unsolicited reply opens nothing', function () {
    const h = new Harness('netfilter');
    h.pkt(0, ipv4({ proto: 1, src: C, dst: S }, icmp({ type: 8, rest: (7 << 16) | 1 })));
    const e = h.pkt(0.01, ipv4({ proto: 1, src: S, dst: C }, icmp({ type: 0, rest: (7 << 16) | 1 })));
    assert.equal(e, 1);
    h.pkt(0.02, ipv4({ proto: 1, src: S, dst: C }, icmp({ type: 0, rest: (9 << 16) | 1 })));
    assert.equal(h.tr.created, 1);
    assert.deepEqual(h.states(), ['new:UNREPLIED', 'update:REPLIED']);
    // ICMPv6 echo
    h.pkt(1, ipv6({ nh: 58, src: '2001:db8::1', dst: '2001:db8::2' }, icmp({ v6: true, src: '2001:db8::1', dst: '2001:db8::2', type: 128, rest: 5 << 16 })));
    const e6 = h.pkt(1.01, ipv6({ nh: 58, src: '2001:db8::2', dst: '2001:db8::1' }, icmp({ v6: true, src: '2001:db8::2', dst: '2001:db8::1', type: 129, rest: 5 << 16 })));
    assert.equal(e6 & 1, 1);
  });

  it('an ICMP error quoting a tracked flow is RELATED: counted against it, no timer refresh', function () {
    const h = new Harness('netfilter');
    h.udp4(0, true);
    const quoted = ipv4({ proto: 17, src: C, dst: S }, udp({ src: C, dst: S, sport: 5353, dport: 53 }, bytes(1, 2, 3)));
    const e = h.pkt(25, ipv4({ proto: 1, src: S, dst: C }, icmp({ type: 3, code: 3 }, quoted.subarray(0, 28))));
    assert.equal(e >>> 1, 0);
    assert.equal(h.tr.acct.relatedOf(0), 1);
    assert.equal(h.tr.counter('related'), 1);
    h.time(30.5); // the ICMP error at 25 s did not refresh the 30 s timeout
    assert.equal(h.tr.table.count, 0);
    // an error quoting nothing we know
    h.pkt(40, ipv4({ proto: 1, src: S, dst: C }, icmp({ type: 3, code: 3 }, quoted.subarray(0, 28))));
    assert.equal(h.tr.counter('icmp_error'), 1);
  });

  it('full table: early drop of a not-established connection, insert_failed when all are established', function () {
    const h = new Harness('netfilter', { maxConns: 16 });
    for (let i = 0; i < 16; i++) h.tcp4(0, true, SYN, 1, 0, undefined, 1000 + i);
    assert.equal(h.tr.table.count, 16);
    h.tcp4(1, true, SYN, 1, 0, undefined, 2000);
    assert.equal(h.tr.counter('early_drop'), 1);
    assert.equal(h.tr.table.count, 16);
    const h2 = new Harness('netfilter', { maxConns: 16 });
    for (let i = 0; i < 16; i++) {
      h2.tcp4(0, true, SYN, 100, 0, undefined, 1000 + i);
      h2.tcp4(0, false, SYNACK, 500, 101, undefined, 1000 + i);
      h2.tcp4(0, true, ACK, 101, 501, undefined, 1000 + i);
    }
    h2.tcp4(1, true, SYN, 1, 0, undefined, 3000);
    assert.equal(h2.tr.counter('insert_failed'), 1);
    assert.equal(h2.tr.counter('early_drop'), 0);
  });

  it('jitter: a random delay in [0, 1 s) on the first timeout, the same for the same seed', function () {
    const expiry = (seed: number) => {
      const h = new Harness('netfilter', { seed, jitter: true });
      h.udp4(0, true);
      h.time(200);
      return h.destroyed[0]!.t;
    };
    const a = expiry(42);
    assert.equal(expiry(42), a);
    assert.ok(a >= 30 && a < 31, `expired at ${a}`);
    const others = [1, 2, 3, 4, 5].map(expiry);
    assert.ok(others.some((x) => x !== a));
  });

  it('drain advances time until every connection has expired, each at its own time', function () {
    const h = new Harness('netfilter');
    h.udp4(0, true);
    fullConnection(h, 10);
    h.tr.drain();
    assert.equal(h.tr.table.count, 0);
    assert.deepEqual(
      h.destroyed.map((d) => Math.round(d.t)),
      [30, 130],
    );
  });
});

describe('conntrack: dpvs profile', function () {
  it('only a pure SYN opens a connection; the INPUT/OUTPUT tables drive the states', function () {
    const h = new Harness('dpvs');
    h.tcp4(0, true, ACK);
    assert.equal(h.tr.table.count, 0);
    fullConnection(h, 1);
    assert.deepEqual(h.states(), ['new:SYN_RECV', 'update:ESTABLISHED', 'update:CLOSE_WAIT', 'update:TIME_WAIT']);
    assert.equal(h.tr.timeoutOf(0), 7);
  });

  it('every packet re-arms the timeout of the current state (ESTABLISHED 90 s)', function () {
    const h = new Harness('dpvs');
    h.tcp4(0, true, SYN, 100);
    h.tcp4(0.1, false, SYNACK, 500, 101);
    h.tcp4(0.2, true, ACK, 101, 501);
    h.tcp4(80, true, PSHACK, 101, 501, bytes(1));
    h.time(160);
    assert.equal(h.tr.table.count, 1);
    h.time(170.1);
    assert.equal(h.tr.table.count, 0);
  });

  it('a new SYN on a connection in TIME_WAIT reuses it (SYN_RECV)', function () {
    const h = new Harness('dpvs');
    fullConnection(h, 0);
    h.tcp4(1, true, SYN, 9000);
    assert.equal(h.tr.created, 1);
    assert.deepEqual(h.states().at(-1), 'update:SYN_RECV');
  });

  it('UDP: ONEWAY then NORMAL, 300 s', function () {
    const h = new Harness('dpvs');
    h.udp4(0, true);
    h.udp4(1, false);
    assert.deepEqual(h.states(), ['new:ONEWAY', 'update:NORMAL']);
    assert.equal(h.tr.timeoutOf(0), 300);
  });
});
