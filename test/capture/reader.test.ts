import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { readCapture, type ReadResult } from '../../src/capture/reader.js';
import { CaptureError, formatTs } from '../../src/capture/record.js';
import { PcapWriter } from '../../src/capture/writer.js';
import { bytes, concat, eth, ipv4, ngBlock, ngEpb, ngIdb, ngShb, ngSpb, pcapFile, tcp, udp } from '../helpers/packets.js';
import { CORPUS, haveTool, run } from '../helpers/corpus.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-reader-'));
let seq = 0;
function file(data: Uint8Array, name = `f${seq++}.cap`): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, data);
  return p;
}

interface Got {
  res: ReadResult;
  recs: Array<{ ts: string; caplen: number; wirelen: number; lt: number; ifIndex: number; first: number; index: number }>;
}

async function readAll(p: string, window?: number): Promise<Got> {
  const recs: Got['recs'] = [];
  const res = await readCapture(p, (r) => recs.push({ ts: formatTs(r.tsSec, r.tsFrac, r.digits), caplen: r.caplen, wirelen: r.wirelen, lt: r.linktype, ifIndex: r.ifIndex, first: r.buf[r.off]!, index: r.index }), { window });
  return { res, recs };
}

async function readErr(p: string): Promise<CaptureError> {
  try {
    await readAll(p);
  } catch (e) {
    assert.ok(e instanceof CaptureError, `expected CaptureError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected an error');
}

const pkt = (n: number) => eth(0x0800, ipv4({ proto: 17 }, udp({}, new Uint8Array(n).fill(n & 255))));

after(function () {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('capture reader', function () {
  describe('classic pcap', function () {
    for (const bigEndian of [false, true]) {
      for (const nano of [false, true]) {
        it(`${bigEndian ? 'big' : 'little'}-endian, ${nano ? 'ns' : 'µs'}`, async function () {
          const recs = [
            { sec: 1700000000, frac: 5, data: pkt(10) },
            { sec: 1700000001, frac: nano ? 999999999 : 999999, data: pkt(20), wirelen: 1000 },
          ];
          const g = await readAll(file(pcapFile(recs, { bigEndian, nano, linktype: 1 })));
          assert.equal(g.res.format, 'pcap');
          assert.deepEqual(g.res.linktypes, [1]);
          assert.equal(g.res.packets, 2);
          assert.equal(g.res.bytes, recs[0]!.data.length + recs[1]!.data.length);
          assert.equal(g.recs[0]!.ts, nano ? '1700000000.000000005' : '1700000000.000005');
          assert.equal(g.recs[1]!.ts, nano ? '1700000001.999999999' : '1700000001.999999');
          assert.equal(g.recs[1]!.wirelen, 1000);
          assert.deepEqual(g.res.warnings, []);
        });
      }
    }

    it('records straddling the window boundary (tiny window, many records)', async function () {
      const recs = Array.from({ length: 500 }, (_, i) => ({ sec: i, frac: i, data: pkt(i % 97) }));
      const g = await readAll(file(pcapFile(recs)), 256);
      assert.equal(g.res.packets, 500);
      g.recs.forEach((r, i) => {
        assert.equal(r.caplen, recs[i]!.data.length);
        assert.equal(r.first, 2);
        assert.equal(r.index, i + 1);
      });
    });

    it('rejects versions libpcap rejects, and reserved link-type bits', async function () {
      assert.match((await readErr(file(pcapFile([], { version: [1, 4] })))).message, /unsupported pcap savefile version 1\.4/);
      assert.match((await readErr(file(pcapFile([], { version: [2, 5] })))).message, /unsupported pcap savefile version 2\.5/);
      assert.match((await readErr(file(pcapFile([], { linktype: 0x00300001 })))).message, /reserved field not zero/);
    });

    it('corrupt record header mid-file: error naming record and offset, after N packets', async function () {
      const good = pcapFile([{ sec: 1, frac: 0, data: pkt(10) }, { sec: 2, frac: 0, data: pkt(10) }]);
      const bad = new Uint8Array(16);
      bad[8] = 0xff;
      bad[9] = 0xff;
      bad[10] = 0x7f; // caplen 0x7fffff
      const e = await readErr(file(concat(good, bad, new Uint8Array(100))));
      assert.equal(e.packetsRead, 2);
      assert.match(e.message, /record 3 at byte offset 160: corrupt record header: capture length 8388607/);
      assert.equal(e.partial?.packets, 2);
    });

    it('caplen above the snap length is accepted with a warning, as libpcap does', async function () {
      const g = await readAll(file(pcapFile([{ sec: 1, frac: 0, data: pkt(100) }], { snaplen: 64 })));
      assert.equal(g.res.packets, 1);
      assert.match(g.res.warnings.join(), /longer than the snap length 64/);
    });

    it('hand-cut at every byte offset: every whole record before the cut, a warning when cut inside one', async function () {
      const recs = Array.from({ length: 6 }, (_, i) => ({ sec: i, frac: 0, data: pkt(3 + i * 5) }));
      const img = pcapFile(recs);
      const ends: number[] = [];
      let o = 24;
      for (const r of recs) {
        o += 16 + r.data.length;
        ends.push(o);
      }
      for (let cut = 24; cut <= img.length; cut++) {
        const g = await readAll(file(img.subarray(0, cut), 'cut.pcap'));
        const whole = ends.filter((e) => e <= cut).length;
        assert.equal(g.res.packets, whole, `cut at ${cut}`);
        const atBoundary = cut === 24 || ends.includes(cut);
        assert.equal(g.res.warnings.length, atBoundary ? 0 : 1, `cut at ${cut}: ${g.res.warnings.join()}`);
      }
    });

    it('a file cut inside the global header is an error', async function () {
      const img = pcapFile([]);
      for (const cut of [1, 3, 4, 10, 23]) {
        const e = await readErr(file(img.subarray(0, cut), 'hdr.pcap'));
        assert.match(e.message, cut < 4 ? /too short for a capture header/ : /too short for a pcap header/);
      }
    });
  });

  describe('pcapng', function () {
    for (const le of [true, false]) {
      it(`${le ? 'little' : 'big'}-endian: IDB if_tsresol, EPB, SPB, unknown blocks skipped`, async function () {
        const img = concat(
          ngShb(le),
          ngIdb(1, le), // µs default
          ngIdb(101, le, 9), // ns
          ngBlock(0x00000bad, bytes(1, 2, 3, 4), le), // custom block
          ngBlock(0x12345678, new Uint8Array(20), le), // unknown
          ngEpb(0, 1700000000123456n, pkt(5), le),
          ngEpb(1, 1700000000123456789n, ipv4({ proto: 6 }, tcp({})), le, 2000),
          ngBlock(5, new Uint8Array(12), le), // ISB
          ngSpb(pkt(7), le),
        );
        const g = await readAll(file(img));
        assert.equal(g.res.format, 'pcapng');
        assert.deepEqual(g.res.linktypes.sort(), [1, 101]);
        assert.equal(g.res.packets, 3);
        assert.deepEqual(
          g.recs.map((r) => [r.ts, r.lt, r.ifIndex]),
          [
            ['1700000000.123456', 1, 0],
            ['1700000000.123456789', 101, 1],
            ['0.000000', 1, 0],
          ],
        );
        assert.equal(g.recs[1]!.wirelen, 2000);
      });
    }

    it('an obsolete Packet Block (OPB, type 2) is read like an EPB', async function () {
      const data = pkt(6);
      const body = new Uint8Array(20 + data.length + ((4 - (data.length % 4)) % 4));
      const dv = new DataView(body.buffer);
      dv.setUint16(0, 0, true); // interface id
      dv.setUint16(2, 0, true); // drops count
      dv.setUint32(4, 0, true); // timestamp high
      dv.setUint32(8, 2500000, true); // timestamp low: 2.5 s in µs
      dv.setUint32(12, data.length, true);
      dv.setUint32(16, data.length + 10, true);
      body.set(data, 20);
      const g = await readAll(file(concat(ngShb(), ngIdb(1), ngBlock(2, body))));
      assert.deepEqual(
        g.recs.map((r) => [r.ts, r.caplen, r.wirelen]),
        [['2.500000', data.length, data.length + 10]],
      );
    });

    it('several sections of different byte order reset the interface list', async function () {
      const img = concat(ngShb(true), ngIdb(1, true), ngEpb(0, 5000000n, pkt(1), true), ngShb(false), ngIdb(228, false, 3), ngEpb(0, 7001n, ipv4({ proto: 17 }, udp({})), false));
      const g = await readAll(file(img));
      assert.deepEqual(
        g.recs.map((r) => [r.ts, r.lt]),
        [
          ['5.000000', 1],
          ['7.001000', 228],
        ],
      );
    });

    it('binary if_tsresol (2^-10) converts to nanoseconds', async function () {
      const img = concat(ngShb(), ngIdb(1, true, 0x80 | 10), ngEpb(0, 3n * 1024n + 512n, pkt(1)));
      const g = await readAll(file(img));
      assert.equal(g.recs[0]!.ts, '3.500000000');
    });

    it('rejects versions other than 1.0/1.2, mismatched trailers, unknown interfaces, oversize caplen', async function () {
      assert.match((await readErr(file(ngShb(true, [1, 1])))).message, /unsupported pcapng savefile version 1\.1/);
      const shb = ngShb();
      const broken = shb.slice();
      broken[broken.length - 4] = 99;
      assert.match((await readErr(file(broken))).message, /block 1 at byte offset 0: block total length in header 28 and trailer 99 don't match/);
      assert.match((await readErr(file(concat(ngShb(), ngIdb(1), ngEpb(3, 0n, pkt(1)))))).message, /interface 3/);
      const odd = ngBlock(6, new Uint8Array(3));
      assert.match((await readErr(file(concat(ngShb(), odd)))).message, /packet block too short/);
      const big = concat(ngShb(), ngIdb(1), ngEpb(0, 0n, pkt(1)));
      // caplen field of the EPB: SHB 28 + IDB 20 + 8 (type, len) + 12
      big.set([0xff, 0xff, 0xff, 0x00], 28 + 20 + 20);
      const e = await readErr(file(big));
      assert.match(e.message, /capture length 16777215 is bigger than the maximum of 262144/);
    });

    it('hand-cut at every byte offset yields the whole packets before the cut', async function () {
      const blocks = [ngShb(), ngIdb(1), ngEpb(0, 1n, pkt(4)), ngEpb(0, 2n, pkt(9)), ngSpb(pkt(2)), ngEpb(0, 3n, pkt(30))];
      const img = concat(...blocks);
      const pktEnds: number[] = [];
      let o = 0;
      blocks.forEach((b, i) => {
        o += b.length;
        if (i >= 2) pktEnds.push(o);
      });
      for (let cut = blocks[0]!.length; cut <= img.length; cut++) {
        const g = await readAll(file(img.subarray(0, cut), 'cut.pcapng'));
        assert.equal(g.res.packets, pktEnds.filter((e) => e <= cut).length, `cut at ${cut}`);
      }
    });
  });

  describe('detection and bad files', function () {
    it('detects the format from the magic, not the name; gzip is decompressed', async function () {
      const img = pcapFile([{ sec: 9, frac: 1, data: pkt(3) }]);
      const a = await readAll(file(img, 'looks-like.pcapng'));
      assert.equal(a.res.format, 'pcap');
      const z = await readAll(file(gzipSync(img), 'plain.pcap'));
      assert.equal(z.res.compressed, true);
      assert.equal(z.res.packets, 1);
      const ng = await readAll(file(gzipSync(concat(ngShb(), ngIdb(1), ngEpb(0, 1n, pkt(1)))), 'x.pcap'));
      assert.equal(ng.res.format, 'pcapng');
    });

    it('a truncated gzip stream keeps the records before the cut, with a warning', async function () {
      const recs = Array.from({ length: 200 }, (_, i) => ({ sec: i, frac: 0, data: pkt(50 + (i % 50)) }));
      const z = gzipSync(pcapFile(recs));
      const g = await readAll(file(z.subarray(0, Math.floor(z.length / 2))));
      assert.ok(g.res.packets > 0 && g.res.packets < 200);
      assert.ok(g.res.warnings.some((w) => /gzip stream ends early/.test(w)));
    });

    it('empty, wrong magic, directory, missing file', async function () {
      assert.match((await readErr(file(new Uint8Array(0)))).message, /byte offset 0: empty file/);
      assert.match((await readErr(file(bytes(1, 2, 3, 4, 5, 6, 7, 8)))).message, /not a pcap or pcapng file \(magic 0x01020304\)/);
      assert.match((await readErr(tmp)).message, /is a directory/);
      assert.match((await readErr(path.join(tmp, 'nope'))).message, /no such file/);
    });
  });

  describe('writer', function () {
    it('round-trips through the reader and keeps ns precision and link type', async function () {
      const p = path.join(tmp, 'out.pcap');
      const w = new PcapWriter(p, 228, 9);
      const a = ipv4({ proto: 17 }, udp({}, bytes(1, 2, 3)));
      w.write(1700000000, 123456789, a, 0, a.length);
      const big = new Uint8Array(200000).fill(7);
      w.write(1700000001, 1, big, 0, big.length, 300000);
      w.close();
      const g = await readAll(p);
      assert.deepEqual(g.res.linktypes, [228]);
      assert.deepEqual(
        g.recs.map((r) => [r.ts, r.caplen, r.wirelen]),
        [
          ['1700000000.123456789', a.length, a.length],
          ['1700000001.000000001', 200000, 300000],
        ],
      );
    });

    for (const bigEndian of [false, true]) {
      it(`records written in place from the reader's window (${bigEndian ? 'big' : 'little'}-endian ns input, tiny window) come out whole and in order`, async function () {
        // every third record is copied instead (as a packet the LB makes would be), every fifth is cut short; of
        // the others, half have their header rewritten, half are written as records (header kept when it is
        // little-endian and still right)
        const recs = Array.from({ length: 300 }, (_, i) => ({ sec: 1700000000 + i, frac: i * 1000 + 7, data: pkt(i % 61), wirelen: 2000 + i }));
        const out = path.join(tmp, `inplace-${bigEndian}.pcap`);
        let w: PcapWriter | null = null;
        const res = await readCapture(
          file(pcapFile(recs, { bigEndian, nano: true })),
          (r) => {
            w ??= new PcapWriter(out, r.linktype, 9);
            const i = r.index - 1;
            const len = i % 5 === 0 ? r.caplen - 3 : r.caplen;
            r.buf[r.off + len - 1] = i & 255; // rewritten in place, like a translated packet
            if (i % 3 === 0) w.write(r.tsSec, r.tsFrac, r.buf, r.off, len, r.wirelen);
            else if (i % 3 === 1) w.writeInPlace(r.tsSec, r.tsFrac, r.buf, r.hdr, len, r.wirelen);
            else w.writeRecord(r, r.buf, r.off, len, r.wirelen); // (the header is kept when it already says this)
          },
          { window: 256, beforeReuse: () => w?.flush() },
        );
        w!.close();
        assert.equal(res.packets, 300);
        const back: Array<{ ts: string; caplen: number; wirelen: number; bytes: Uint8Array }> = [];
        await readCapture(out, (r) => back.push({ ts: formatTs(r.tsSec, r.tsFrac, r.digits), caplen: r.caplen, wirelen: r.wirelen, bytes: new Uint8Array(r.buf.subarray(r.off, r.off + r.caplen)) }));
        assert.equal(back.length, 300);
        back.forEach((b, i) => {
          const want = recs[i]!.data.slice(0, i % 5 === 0 ? recs[i]!.data.length - 3 : recs[i]!.data.length);
          want[want.length - 1] = i & 255;
          assert.equal(b.ts, formatTs(recs[i]!.sec, recs[i]!.frac, 9), `record ${i + 1}`);
          assert.equal(b.wirelen, recs[i]!.wirelen);
          assert.deepEqual(b.bytes, want, `record ${i + 1}`);
        });
        if (haveTool('capinfos')) {
          const r = await run('capinfos', ['-M', '-c', out]);
          assert.match(r.stdout, /Number of packets:\s+300\b/);
        }
      });
    }

    it('output is read by capinfos (independent reader) with the same count and precision', async function () {
      if (!haveTool('capinfos')) this.skip();
      const p = path.join(tmp, 'out2.pcap');
      const w = new PcapWriter(p, 1, 6);
      for (let i = 0; i < 10; i++) {
        const f = pkt(i);
        w.write(1600000000 + i, i, f, 0, f.length);
      }
      w.close();
      const r = await run('capinfos', ['-M', '-c', '-E', '-i', p]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /Number of packets:\s+10\b/);
      assert.match(r.stdout, /File encapsulation:\s+ether\b/);
    });
  });

  it('reads the corpus nanosecond and big-endian samples like capinfos', async function () {
    const g = await readAll(path.join(CORPUS, 'sll/tcpdump-tcp-handshake-nano.pcap'));
    assert.equal(g.res.packets, 3);
    assert.match(g.recs[0]!.ts, /^\d+\.\d{9}$/);
  });
});
