/**
 * Synproxy in replay. A test-side TCP peer: the client's and the server's segments are built here, and the
 * capture grows step by step (the cookie, and in FNAT the local port, are read from what the LB emitted in
 * the previous step; a replay with the same seed repeats them). Every value the LB emits is checked by
 * tshark against what the test computes from its own numbers.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CORPUS, haveTool, run, TSVS, tsvs } from '../helpers/corpus.js';
import { tsharkTcp, type TcpSeg } from '../helpers/tshark.js';
import { eth, icmp, ipv4, pcapFile, tcp, type Rec } from '../helpers/packets.js';
import { checkByState } from '../helpers/by-state.js';
import { loadConfig } from '../../src/config.js';
import { Services } from '../../src/service/services.js';
import { replaySecret } from '../../src/synproxy/synproxy.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-sp-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const CLIENT = '192.0.2.10';
const CPORT = 40000;
const VIP = '198.51.100.1';
const RS = '10.0.0.1';
const RPORT = 8080;
const LADDR = '10.0.0.254';
const T0 = 1_700_000_000;

/* TCP options */
const u8 = (...x: number[]) => Uint8Array.from(x);
const be32 = (v: number) => [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
const mssOpt = (m: number) => [2, 4, m >> 8, m & 255];
const tsOpt = (val: number, ecr: number) => [1, 1, 8, 10, ...be32(val), ...be32(ecr)];
const wsOpt = (s: number) => [1, 3, 3, s];
const sackPermOpt = [1, 1, 4, 2];
const sackOpt = (edges: number[]) => [1, 1, 5, 2 + 4 * edges.length, ...edges.flatMap(be32)];

let nConf = 0;
function config(mode: 'nat' | 'fnat', extra = ''): string {
  const p = path.join(tmp, `sp-${nConf++}.yaml`);
  fs.writeFileSync(
    p,
    `services:\n  - { proto: tcp, vip: ${VIP}, port: 80, scheduler: rr, forward: ${mode}, synproxy: true, laddrs: [${LADDR}], servers: [{ addr: ${RS}, port: ${RPORT} }] }\n` +
      `synproxy: { wscale: 7, mss: 1452${extra} }\n`,
  );
  return p;
}

/** a frame from `src:sport` to `dst:dport` */
function seg(src: string, sport: number, dst: string, dport: number, o: { seq: number; ack?: number; flags: number; win: number; opts?: number[]; data?: string }): Uint8Array {
  const payload = new TextEncoder().encode(o.data ?? '');
  return eth(0x0800, ipv4({ src, dst, proto: 6 }, tcp({ src, dst, sport, dport, seq: o.seq, ack: o.ack ?? 0, flags: o.flags, win: o.win, options: u8(...(o.opts ?? [])) }, payload)));
}

let nCap = 0;
let byStateChecked = 0;
async function replay(recs: Rec[], cfg: string): Promise<{ out: TcpSeg[]; json: Record<string, unknown> }> {
  const cap = path.join(tmp, `c${nCap}.pcap`);
  const out = path.join(tmp, `o${nCap++}.pcap`);
  fs.writeFileSync(cap, pcapFile(recs));
  const r = await tsvs(['replay', '--json', '--config', cfg, '--out', out, cap]);
  assert.equal(r.code, 0, r.stderr);
  // the synproxy moves connections outside packets of their own (setState): the open-by-state counts follow
  const c = loadConfig(cfg);
  byStateChecked += await checkByState(cap, { track: { profile: c.profile ?? 'dpvs', seed: c.seed, maxConns: c.max_conns, drain: true }, lb: { services: new Services(c.services), synproxy: { cfg: c.synproxy, secret: replaySecret(c.synproxy.secret, c.seed) } } }, 1);
  return { out: fs.existsSync(out) ? await tsharkTcp(out) : [], json: JSON.parse(r.stdout) as Record<string, unknown> };
}

const at = (ms: number, data: Uint8Array): Rec => ({ sec: T0 + Math.floor(ms / 1000), frac: (ms % 1000) * 1000, data });
const SYN = 0x02;
const ACK = 0x10;
const PSH = 0x08;
const FIN = 0x01;
const RST = 0x04;
const add = (a: number, b: number) => (a + b) >>> 0;

function spCounters(json: Record<string, unknown>): Record<string, number> {
  return (json.lb as { synproxy: Record<string, number> }).synproxy;
}

describe('synproxy (replay)', function () {
  after(() => assert.ok(byStateChecked > 10, `open-by-state compared on only ${byStateChecked} non-empty tables`));
  before(function () {
    if (!haveTool('tshark')) this.skip();
  });

  for (const mode of ['nat', 'fnat'] as const) {
    it(`${mode}: cookie SYN-ACK, ACK + data, SYN to the server, its SYN-ACK, flush, data both ways with SACK and timestamps, FIN close`, async () => {
      const cfg = config(mode);
      const ISN_C = 1000;
      const TS_C = 5000;
      const clientSyn = seg(CLIENT, CPORT, VIP, 80, { seq: ISN_C, flags: SYN, win: 64240, opts: [...mssOpt(1460), ...sackPermOpt, ...tsOpt(TS_C, 0), ...wsOpt(2)] });
      // 1. the SYN: answered with a cookie SYN-ACK, no connection
      const s1 = await replay([at(0, clientSyn)], cfg);
      assert.equal(s1.out.length, 1);
      const sa = s1.out[0]!;
      assert.deepEqual([sa.src, sa.sport, sa.dst, sa.dport, sa.flags], [VIP, 80, CLIENT, CPORT, SYN | ACK]);
      assert.equal(sa.ack, ISN_C + 1);
      assert.equal(sa.mss, 1452, 'MSS = min(client 1460, configured 1452)');
      assert.equal(sa.wscale, 7);
      assert.ok(sa.sackPerm);
      assert.equal(sa.tsecr, TS_C);
      assert.equal(sa.ttl, 63);
      assert.equal(sa.win, 65535);
      assert.ok(sa.sumsOk);
      assert.equal((s1.json.conns as { total: number }).total, 0);
      const X = sa.seq; // the cookie
      const TS_LB = sa.tsval!;

      // 2. the client's ACK carrying data: the SYN goes to the server with the client's ISN and the cookie's options
      const req = 'GET / HTTP/1.0\r\n\r\n';
      const clientAck = seg(CLIENT, CPORT, VIP, 80, { seq: ISN_C + 1, ack: add(X, 1), flags: ACK | PSH, win: 1000, opts: tsOpt(TS_C + 1, TS_LB), data: req });
      const s2 = await replay([at(0, clientSyn), at(10, clientAck)], cfg);
      assert.equal(s2.out.length, 2);
      const syn = s2.out[1]!;
      const [lhost, lport] = mode === 'nat' ? [CLIENT, CPORT] : [LADDR, syn.sport];
      assert.deepEqual([syn.src, syn.sport, syn.dst, syn.dport, syn.flags], [lhost, lport, RS, RPORT, SYN]);
      assert.equal(syn.seq, ISN_C, "the client's ISN");
      assert.equal(syn.mss, 1440, '1452 rounded down to the cookie MSS table');
      assert.equal(syn.wscale, 2, "the client's window scale");
      assert.ok(syn.sackPerm);
      assert.equal(syn.tsval, TS_C + 1, "the client's clock");
      assert.equal(syn.win, 4000, 'the ACK window 1000 << 2, unscaled');
      assert.ok(syn.sumsOk);
      if (mode === 'fnat') assert.ok(lport >= 1025);

      // 3. the server's SYN-ACK: dropped; the saved ACK + data flushed with the server's numbers
      const ISN_S = 0xfffff000; // wraps during the test
      const TS_S = 90000;
      const fromRs = (o: Parameters<typeof seg>[4]) => seg(RS, RPORT, lhost, lport, o);
      const rsSynack = fromRs({ seq: ISN_S, ack: ISN_C + 1, flags: SYN | ACK, win: 65160, opts: [...mssOpt(1400), ...sackPermOpt, ...tsOpt(TS_S, TS_C + 1), ...wsOpt(5)] });
      const resp = 'HTTP/1.0 200 OK\r\n\r\n';
      const rsData = fromRs({ seq: add(ISN_S, 1), ack: ISN_C + 1 + req.length, flags: ACK | PSH, win: 100, opts: tsOpt(TS_S + 10, TS_C + 1), data: resp });
      const dX = (n: number) => add(X, n); // the server's stream as the client knows it
      const clientSack = seg(CLIENT, CPORT, VIP, 80, {
        seq: ISN_C + 1 + req.length,
        ack: dX(1 + resp.length),
        flags: ACK,
        win: 2000,
        opts: [...tsOpt(TS_C + 2, TS_LB + 10), ...sackOpt([dX(41), dX(61)])],
      });
      const clientFin = seg(CLIENT, CPORT, VIP, 80, { seq: ISN_C + 1 + req.length, ack: dX(1 + resp.length), flags: ACK | FIN, win: 2000, opts: tsOpt(TS_C + 3, TS_LB + 10) });
      const rsFin = fromRs({ seq: add(ISN_S, 1 + resp.length), ack: ISN_C + 2 + req.length, flags: ACK | FIN, win: 100, opts: tsOpt(TS_S + 20, TS_C + 3) });
      const clientLast = seg(CLIENT, CPORT, VIP, 80, { seq: ISN_C + 2 + req.length, ack: dX(2 + resp.length), flags: ACK, win: 2000, opts: tsOpt(TS_C + 4, TS_LB + 20) });
      const s3 = await replay(
        [at(0, clientSyn), at(10, clientAck), at(20, rsSynack), at(30, rsData), at(40, clientSack), at(50, clientFin), at(60, rsFin), at(70, clientLast)],
        cfg,
      );
      const o = s3.out;
      assert.equal(o.length, 8, 'SYN-ACK, SYN, flushed ACK, data, SACK, FIN, FIN, ACK (the server SYN-ACK is not emitted)');
      for (const p of o) assert.ok(p.sumsOk, `checksums of ${JSON.stringify(p)}`);
      const toRs = (p: TcpSeg) => assert.deepEqual([p.src, p.sport, p.dst, p.dport], [lhost, lport, RS, RPORT]);
      const toClient = (p: TcpSeg) => assert.deepEqual([p.src, p.sport, p.dst, p.dport], [VIP, 80, CLIENT, CPORT]);
      const tsDelta = (TS_LB - TS_S) >>> 0;
      // flushed: the client's ACK + data, acknowledging the server's ISN
      const f = o[2]!;
      toRs(f);
      assert.deepEqual([f.seq, f.ack, f.len, f.tsval, f.tsecr, f.win], [ISN_C + 1, add(ISN_S, 1), req.length, TS_C + 1, TS_S, 1000]);
      // the server's data: seq in the cookie's space, TSval in the LB's, window 100 << 5 >> 7 = 25
      const d = o[3]!;
      toClient(d);
      assert.deepEqual([d.seq, d.ack, d.len, d.tsval, d.tsecr, d.win], [dX(1), ISN_C + 1 + req.length, resp.length, add(TS_S + 10, tsDelta), TS_C + 1, 25]);
      // the client's SACK: ack and block edges in the server's space, TSecr back to the server's clock
      const k = o[4]!;
      toRs(k);
      assert.deepEqual([k.ack, k.tsecr, k.win], [add(ISN_S, 1 + resp.length), TS_S + 10, 2000]);
      assert.deepEqual(k.sack, [add(ISN_S, 41), add(ISN_S, 61)]);
      // FIN close
      const cf = o[5]!;
      toRs(cf);
      assert.equal(cf.flags, ACK | FIN);
      assert.equal(cf.ack, add(ISN_S, 1 + resp.length));
      const sf = o[6]!;
      toClient(sf);
      assert.deepEqual([sf.flags, sf.seq, sf.ack, sf.tsval, sf.win], [ACK | FIN, dX(1 + resp.length), ISN_C + 2 + req.length, add(TS_S + 20, tsDelta), 25]);
      const la = o[7]!;
      toRs(la);
      assert.deepEqual([la.flags, la.ack, la.tsecr], [ACK, add(ISN_S, 2 + resp.length), TS_S + 20]);
      const c = spCounters(s3.json);
      assert.equal(c.SYNPROXY_SYN_CNT, 1);
      assert.equal(c.SYNPROXY_OK_ACK, 1);
      assert.equal(c.SYNPROXY_BAD_ACK, 0);
      const conns = s3.json.conns as { total: number };
      assert.equal(conns.total, 1);
    });
  }

  it('bad and stale cookies: counted, answered with RST; an ACK after 4 minutes is stale', async () => {
    const cfg = config('nat');
    const syn = seg(CLIENT, CPORT, VIP, 80, { seq: 1000, flags: SYN, win: 64240, opts: mssOpt(1460) });
    const s1 = await replay([at(0, syn)], cfg);
    const X = s1.out[0]!.seq;
    const ack = (ackNo: number, seq = 1001) => seg(CLIENT, CPORT, VIP, 80, { seq, ack: ackNo, flags: ACK, win: 1000 });
    // a wrong cookie, the right cookie for another ISN, then the right one 241 s late
    const s2 = await replay([at(0, syn), at(10, ack(add(X, 2))), at(20, ack(add(X, 1), 5001)), at(241_000, ack(add(X, 1)))], cfg);
    const c = spCounters(s2.json);
    assert.equal(c.SYNPROXY_BAD_ACK, 3);
    assert.equal(c.SYNPROXY_BAD_ACK_STALE, 1, 'the late one is stale');
    assert.equal(c.SYNPROXY_OK_ACK, 0);
    assert.equal((s2.json.conns as { total: number }).total, 0);
    const rsts = s2.out.filter((p) => p.flags === RST);
    assert.equal(rsts.length, 3);
    assert.deepEqual(
      rsts.map((p) => p.seq),
      [add(X, 2), add(X, 1), add(X, 1)],
      'a RST carries the sequence number the ACK acknowledged',
    );
    for (const p of rsts) assert.ok(p.sumsOk);
    // the same ACK within the window opens the connection
    const s3 = await replay([at(0, syn), at(179_000, ack(add(X, 1)))], cfg);
    assert.equal(spCounters(s3.json).SYNPROXY_OK_ACK, 1);
  });

  it('the server handshake: client packets saved up to max_ack_saved, SYN retried, RST from the server reaches the client', async () => {
    const cfg = config('nat', ', max_ack_saved: 2, rs_syn_max_retry: 2');
    const syn = seg(CLIENT, CPORT, VIP, 80, { seq: 1000, flags: SYN, win: 64240, opts: mssOpt(1460) });
    const X = (await replay([at(0, syn)], cfg)).out[0]!.seq;
    const ack = (data: string) => seg(CLIENT, CPORT, VIP, 80, { seq: 1001, ack: add(X, 1), flags: ACK, win: 1000, data });
    // the ACK and 4 more: 1 + 2 saved, 2 refused; then silence: the SYN is resent twice (3 s SYN_SENT timer)
    const recs = [at(0, syn), at(10, ack('')), at(20, ack('a')), at(30, ack('b')), at(40, ack('c')), at(50, ack('d')), at(3_100, syn), at(6_200, syn), at(9_300, syn), at(12_500, syn)];
    const s = await replay(recs, cfg);
    const c = spCounters(s.json);
    assert.equal(c.SYNPROXY_SYNSEND_QLEN, 2);
    const syns = s.out.filter((p) => p.flags === SYN);
    assert.equal(syns.length, 3, 'the SYN and 2 retries');
    for (const p of syns) assert.equal(p.dst, RS);
    assert.equal(c.SYNPROXY_RS_ERROR, 1, 'given up after the retries');
    // a server that refuses: its RST reaches the client at the cookie's next sequence number
    const rst = seg(RS, RPORT, CLIENT, CPORT, { seq: 0, ack: 1001, flags: RST | ACK, win: 0 });
    const s2 = await replay([at(0, syn), at(10, ack('')), at(20, rst)], cfg);
    const back = s2.out.filter((p) => p.flags & RST);
    assert.equal(back.length, 1);
    assert.deepEqual([back[0]!.src, back[0]!.dst, back[0]!.seq], [VIP, CLIENT, add(X, 1)]);
    assert.ok(back[0]!.sumsOk);
  });

  it('a closed connection is reused by a new valid handshake (TIME_WAIT, CONN_REUSED); a SYN on an established one is dropped', async () => {
    const cfg = config('nat');
    const c2v = (o: { seq: number; ack?: number; flags: number; data?: string }) => seg(CLIENT, CPORT, VIP, 80, { win: 1000, ...o });
    const s2c = (o: { seq: number; ack?: number; flags: number; data?: string }) => seg(RS, RPORT, CLIENT, CPORT, { win: 1000, ...o });
    const syn1 = seg(CLIENT, CPORT, VIP, 80, { seq: 1000, flags: SYN, win: 64240, opts: mssOpt(1460) });
    const X1 = (await replay([at(0, syn1)], cfg)).out[0]!.seq;
    // the first connection: handshake through the server, then closed by both sides (TIME_WAIT)
    const first = [
      at(0, syn1),
      at(10, c2v({ seq: 1001, ack: add(X1, 1), flags: ACK })),
      at(20, s2c({ seq: 777, ack: 1001, flags: SYN | ACK })),
      at(30, c2v({ seq: 1001, ack: add(X1, 1), flags: FIN | ACK })),
      at(40, s2c({ seq: 778, ack: 1002, flags: FIN | ACK })),
      at(50, c2v({ seq: 1002, ack: add(X1, 2), flags: ACK })),
    ];
    // a new handshake on the same tuple a second later: a SYN-ACK with a cookie for the new ISN
    const syn2 = seg(CLIENT, CPORT, VIP, 80, { seq: 5000, flags: SYN, win: 64240, opts: mssOpt(1460) });
    const a = await replay([...first, at(1_000, syn2)], cfg);
    const synack2 = a.out.filter((p) => p.src === VIP && p.flags === (SYN | ACK));
    assert.equal(synack2.length, 2, 'one SYN-ACK per handshake');
    const X2 = synack2[1]!.seq;
    assert.equal(synack2[1]!.ack, 5001);
    // its ACK reopens the connection: a SYN to the server with the new ISN; the server's answer sets the new delta
    const recs = [
      ...first,
      at(1_000, syn2),
      at(1_010, c2v({ seq: 5001, ack: add(X2, 1), flags: ACK })),
      at(1_020, s2c({ seq: 9000, ack: 5001, flags: SYN | ACK })),
      at(1_030, s2c({ seq: 9001, ack: 5001, flags: PSH | ACK, data: 'hello' })),
    ];
    const b = await replay(recs, cfg);
    const c = spCounters(b.json);
    assert.equal(c.SYNPROXY_CONN_REUSED, 1);
    assert.equal((b.json.conns as { total: number }).total, 1, 'the same connection, reopened');
    const toServer = b.out.filter((p) => p.dst === RS && p.flags === SYN);
    assert.deepEqual(toServer.map((p) => p.seq), [1000, 5000], 'a SYN to the server per handshake, with the client ISN');
    const data = b.out.filter((p) => p.src === VIP && p.len === 5);
    assert.equal(data.length, 1);
    assert.deepEqual([data[0]!.dst, data[0]!.seq, data[0]!.ack], [CLIENT, add(X2, 1), 5001], 'the server data at the new cookie sequence');
    for (const p of b.out) assert.ok(p.sumsOk);
    // a SYN while the connection is established is not a new handshake: dropped, no SYN-ACK
    const est = await replay([...first.slice(0, 3), at(100, syn2)], cfg);
    assert.equal(est.out.filter((p) => p.flags === (SYN | ACK) && p.src === VIP).length, 1, 'only the first handshake is answered');
    assert.equal(spCounters(est.json).SYNPROXY_CONN_REUSED, 0);
  });

  it('defer_rs_syn: the handshake ACK without data is dropped (NULL_ACK); the first ACK with data opens the server side and is delivered after its SYN-ACK', async () => {
    const cfg = config('nat', ', defer_rs_syn: true');
    const syn = seg(CLIENT, CPORT, VIP, 80, { seq: 1000, flags: SYN, win: 64240, opts: mssOpt(1460) });
    const X = (await replay([at(0, syn)], cfg)).out[0]!.seq;
    const pure = seg(CLIENT, CPORT, VIP, 80, { seq: 1001, ack: add(X, 1), flags: ACK, win: 1000 });
    const get = seg(CLIENT, CPORT, VIP, 80, { seq: 1001, ack: add(X, 1), flags: PSH | ACK, win: 1000, data: 'GET /' });
    const a = await replay([at(0, syn), at(10, pure)], cfg);
    assert.equal(spCounters(a.json).SYNPROXY_NULL_ACK, 1);
    assert.equal(a.out.filter((p) => p.dst === RS).length, 0, 'no SYN to the server yet');
    assert.equal((a.json.conns as { total: number }).total, 0, 'no connection yet');
    const synack = seg(RS, RPORT, CLIENT, CPORT, { seq: 777, ack: 1001, flags: SYN | ACK, win: 1000 });
    const b = await replay([at(0, syn), at(10, pure), at(20, get), at(30, synack)], cfg);
    const c = spCounters(b.json);
    assert.equal(c.SYNPROXY_NULL_ACK, 1);
    assert.equal(c.SYNPROXY_OK_ACK, 1);
    const toServer = b.out.filter((p) => p.dst === RS);
    assert.deepEqual(
      toServer.map((p) => [p.flags, p.seq, p.ack, p.len]),
      [
        [SYN, 1000, 0, 0],
        [PSH | ACK, 1001, 778, 5],
      ],
      'the SYN with the client ISN, then the saved data acknowledging the server ISN + 1',
    );
    for (const p of b.out) assert.ok(p.sumsOk);
  });

  it('an ICMP error from the client about a segment of the server reaches the server quoting its own sequence number', async () => {
    const cfg = config('nat');
    const syn = seg(CLIENT, CPORT, VIP, 80, { seq: 1000, flags: SYN, win: 64240, opts: mssOpt(1460) });
    const X = (await replay([at(0, syn)], cfg)).out[0]!.seq;
    // the client received the server's data at the cookie's sequence numbers (server ISN 777: data at 778)
    const seen = ipv4({ src: VIP, dst: CLIENT, proto: 6 }, tcp({ src: VIP, dst: CLIENT, sport: 80, dport: CPORT, seq: add(X, 1), ack: 1001, flags: ACK | PSH, win: 1000 }, new TextEncoder().encode('hello')));
    const unreach = eth(0x0800, ipv4({ src: CLIENT, dst: VIP, proto: 1 }, icmp({ type: 3, code: 4, rest: 1400 }, seen.subarray(0, 28))));
    const recs = [
      at(0, syn),
      at(10, seg(CLIENT, CPORT, VIP, 80, { seq: 1001, ack: add(X, 1), flags: ACK, win: 1000 })),
      at(20, seg(RS, RPORT, CLIENT, CPORT, { seq: 777, ack: 1001, flags: SYN | ACK, win: 1000 })),
      at(30, seg(RS, RPORT, CLIENT, CPORT, { seq: 778, ack: 1001, flags: ACK | PSH, win: 1000, data: 'hello' })),
      at(40, unreach),
    ];
    const cap = path.join(tmp, 'sp-icmp.pcap');
    const out = path.join(tmp, 'sp-icmp.out.pcap');
    fs.writeFileSync(cap, pcapFile(recs));
    const r = await tsvs(['replay', '--json', '--config', cfg, '--out', out, cap]);
    assert.equal(r.code, 0, r.stderr);
    const fields = ['icmp.type', 'ip.src', 'ip.dst', 'tcp.srcport', 'tcp.dstport', 'tcp.seq', 'icmp.checksum.status'];
    const t = await run('tshark', ['-n', '-r', out, '-o', 'tcp.relative_sequence_numbers:FALSE', '-Y', 'icmp', '-T', 'fields', '-E', 'separator=|', ...fields.flatMap((x) => ['-e', x])]);
    assert.equal(t.code, 0, t.stderr);
    const rows = t.stdout.trim().split('\n').map((l) => l.split('|'));
    assert.equal(rows.length, 1, 'the error is forwarded');
    assert.deepEqual(rows[0], ['3', `${CLIENT},${RS}`, `${RS},${CLIENT}`, String(RPORT), String(CPORT), '778', '1'], 'to the server, quoting server:port -> client at the server’s own 778; ICMP checksum good');
  });

  it('ACK storm from the server dropped past ack_storm_thresh; a SYN with every server down dropped (NO_DEST)', async () => {
    const cfg = config('nat', ', ack_storm_thresh: 10');
    const syn = seg(CLIENT, CPORT, VIP, 80, { seq: 1000, flags: SYN, win: 64240, opts: mssOpt(1460) });
    const X = (await replay([at(0, syn)], cfg)).out[0]!.seq;
    const ack = seg(CLIENT, CPORT, VIP, 80, { seq: 1001, ack: add(X, 1), flags: ACK, win: 1000 });
    const synack = seg(RS, RPORT, CLIENT, CPORT, { seq: 777, ack: 1001, flags: SYN | ACK, win: 1000 });
    const dupAck = seg(RS, RPORT, CLIENT, CPORT, { seq: 778, ack: 1001, flags: ACK, win: 1000 });
    const recs = [at(0, syn), at(10, ack), at(20, synack), ...Array.from({ length: 12 }, (_, i) => at(30 + i, dupAck))];
    const s = await replay(recs, cfg);
    assert.equal(spCounters(s.json).SYNPROXY_ACK_STORM, 2, 'the first sets the reference, 9 repeats pass, the 10th and 11th are dropped');
    assert.equal(s.out.filter((p) => p.src === VIP && p.flags === ACK).length, 10);
    const down = path.join(tmp, 'down.yaml');
    fs.writeFileSync(down, `services:\n  - { proto: tcp, vip: ${VIP}, port: 80, scheduler: rr, forward: nat, synproxy: true, servers: [{ addr: ${RS}, port: ${RPORT}, weight: 0 }] }\n`);
    const d = await replay([at(0, syn)], down);
    assert.equal(d.out.length, 0);
    assert.equal(spCounters(d.json).SYNPROXY_NO_DEST, 1);
    assert.equal(spCounters(d.json).SYNPROXY_SYN_CNT, 0);
  });

  // the two spoofed SYN floods of the corpus: plain SYNs, and SYN+ECE+CWR mixed with RSTs ("DOMINATE")
  for (const [name, port, minSyns] of [
    ['stopddos-pkt.TCP.synflood.spoofed.pcap', 25565, 30000],
    ['stopddos-pkt.TCP.DOMINATE.syn.ecn.cwr.pcapng', 30120, 9000],
  ] as const) {
    it(`${name}: no connection, one well-formed SYN-ACK per SYN and nothing else`, async () => {
      const flood = path.join(CORPUS, 'synflood', name);
      const cfg = path.join(tmp, `flood-${port}.yaml`);
      fs.writeFileSync(cfg, `services:\n  - { proto: tcp, vip: 10.10.10.10, port: ${port}, scheduler: rr, forward: nat, synproxy: true, servers: [{ addr: 10.0.0.1, port: ${port} }] }\n`);
      const out = path.join(tmp, `flood-out-${port}.pcap`);
      const snap = path.join(tmp, `flood-snap-${port}.json`);
      const r = await tsvs(['replay', '--json', '--config', cfg, '--out', out, '--snapshot', snap, flood]);
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout) as { conns: { total: number; open_at_end: number }; lb: { synproxy: Record<string, number> } };
      assert.equal(j.conns.total, 0);
      assert.equal(j.conns.open_at_end, 0);
      // tshark's count of the flood's SYNs (any other flags but ACK, RST, FIN), and of the SYN-ACKs emitted
      const count = async (file: string, filter: string) => {
        const t = await run('tshark', ['-n', '-r', file, '-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-Y', filter, '-T', 'fields', '-e', 'frame.number']);
        assert.equal(t.code, 0, t.stderr);
        return t.stdout.split('\n').filter(Boolean).length;
      };
      const syns = await count(flood, 'tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.flags.reset == 0 && tcp.flags.fin == 0');
      assert.ok(syns > minSyns);
      assert.equal(j.lb.synproxy.SYNPROXY_SYN_CNT, syns);
      // SYN-ACK only (no ECE/CWR echoed: tsvs does not negotiate ECN), from the VIP, checksums good
      assert.equal(await count(out, `tcp.flags == 0x012 && ip.src == 10.10.10.10 && tcp.srcport == ${port} && ip.checksum.status == 1 && tcp.checksum.status == 1 && !_ws.malformed`), syns);
      assert.equal(await count(out, 'frame'), syns, 'nothing else (RSTs with no connection are not forwarded)');
      // ctstat -S shows the DPVS counters
      const st = await run(path.join(path.dirname(TSVS), 'ctstat'), ['-S', '--snapshot', snap]);
      assert.equal(st.code, 0, st.stderr);
      assert.match(st.stdout, new RegExp(`SYNPROXY_SYN_CNT +${syns}\n`));
      assert.match(st.stdout, /SYNPROXY_OK_ACK +0\n/);
      assert.match(st.stdout, /entries 0\n/);
    });
  }
});
