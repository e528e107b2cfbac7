/**
 * Nearest-region selection in replay (tsvs replay --latency): a SYN every 5 s for 20 min to a service with
 * servers in three regions, and a latency model in which the home becomes slow at 10 min and its successor
 * stops answering at 15 min (the home slows from 50 to 300 ms). The JSON names every change of home; tshark reads from the output pcap where
 * each SYN went, which must follow the home at its time. Both rules, on the same capture and model.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { run, tsvs } from '../helpers/corpus.js';
import { eth, ipv4, pcapFile, tcp, type Rec } from '../helpers/packets.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-regions-'));
after(() => { if (!process.env.KEEP) fs.rmSync(tmp, { recursive: true, force: true }); });

const T0 = 1_700_000_000;
const SERVER: Record<string, string> = { eu: '10.0.1.1', us: '10.0.2.1', ap: '10.0.3.1' };

function setup(rule: string): { cap: string; cfg: string; model: string } {
  const recs: Rec[] = [];
  for (let i = 0; i < 240; i++) {
    const src = `10.1.${i >> 8}.${i & 255}`;
    recs.push({ sec: T0 + i * 5, frac: 0, data: eth(0x0800, ipv4({ proto: 6, src, dst: '10.9.9.9' }, tcp({ src, dst: '10.9.9.9', sport: 40000 + i, dport: 80, flags: 0x02, seq: 1 }))) });
  }
  const cap = path.join(tmp, 'syns.pcap');
  fs.writeFileSync(cap, pcapFile(recs));
  const cfg = path.join(tmp, `regions-${rule}.yaml`);
  fs.writeFileSync(
    cfg,
    `regions: { rule: ${rule} }\nservices:\n  - proto: tcp\n    vip: 10.9.9.9\n    port: 80\n    scheduler: rr\n    forward: nat\n    region_select: nearest\n    servers:\n` +
      Object.entries(SERVER)
        .map(([r, a]) => `      - { addr: ${a}, port: 80, region: ${r} }\n`)
        .join(''),
  );
  const model = path.join(tmp, 'latency.jsonl');
  fs.writeFileSync(
    model,
    [
      { t: 0, region: 'eu', rtt_ms: 50 },
      { t: 0, region: 'us', rtt_ms: 80 },
      { t: 0, region: 'ap', rtt_ms: 150 },
      { t: 600, region: 'eu', rtt_ms: 300 },
      { t: 900, region: 'us', rtt_ms: null },
    ]
      .map((x) => JSON.stringify(x))
      .join('\n'),
  );
  return { cap, cfg, model };
}

async function replay(rule: string): Promise<{ changes: Array<{ ts: string; from: string | null; to: string; why: string }>; sent: Array<[number, string]> }> {
  const { cap, cfg, model } = setup(rule);
  const out = path.join(tmp, `out-${rule}.pcap`);
  const r = await tsvs(['replay', '--json', '--config', cfg, '--latency', model, '--out', out, '--report', path.join(tmp, `report-${rule}.html`), cap]);
  assert.equal(r.code, 0, r.stderr);
  const svc = JSON.parse(r.stdout).lb.services[0] as { region: { changes: Array<{ ts: string; from: string | null; to: string; why: string }> } };
  const t = await run('tshark', ['-n', '-r', out, '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'ip.dst']);
  const sent = t.stdout
    .trim()
    .split('\n')
    .map((l) => l.split('\t'))
    .map(([ts, dst]) => [Number(ts) - T0, dst!] as [number, string]);
  return { changes: svc.region.changes, sent };
}

/** where each SYN must have gone: the home at its time, from the expected changes [t, region] */
function expectRoute(sent: Array<[number, string]>, moves: Array<[number, string]>): void {
  assert.equal(sent.length, 240);
  for (const [t, dst] of sent) {
    const home = moves.filter(([m]) => m <= t).at(-1)![1];
    assert.equal(dst, SERVER[home], `SYN at +${t} s went to ${dst}, the home then was ${home}`);
  }
}

describe('nearest-region selection in replay (--latency)', function () {
  this.timeout(60_000);

  it('default rule: eu, then us two reports after eu slows (630 s), then ap two reports after us goes silent (930 s)', async () => {
    const { changes, sent } = await replay('default');
    assert.deepEqual(
      changes.map((c) => [Number(c.ts) - T0, c.from, c.to]),
      [
        [0, null, 'eu'],
        [630, 'eu', 'us'],
        [930, 'us', 'ap'],
      ],
    );
    assert.match(changes[2]!.why, /us silent for 2 reports/);
    // the replay report draws the home over time: ap is home at the end, eu at the start
    const html = fs.readFileSync(path.join(tmp, 'report-default.html'), 'utf8');
    const data = JSON.parse(/<script id="data" type="application\/json">([\s\S]*?)<\/script>/.exec(html)![1]!) as { samples: { series: Array<{ group: string; name: string; values: number[] }> } };
    const home = (r: string) => data.samples.series.find((x) => x.group === 'svc tcp 10.9.9.9:80: home' && x.name === r)?.values ?? [];
    assert.equal(home('eu')[0], 1);
    assert.equal(home('ap').at(-1), 1);
    assert.ok(home('us').includes(1));
    expectRoute(sent, [
      [0, 'eu'],
      [630, 'us'],
      [930, 'ap'],
    ]);
  });

  it("tailscale rule: a slow home keeps winning on its best of the last 5 min 5 s, so it is left only when its last fast answer (570 s) ages out (900 s), for ap (us is silent by then)", async () => {
    const { changes, sent } = await replay('tailscale');
    assert.deepEqual(
      changes.map((c) => [Number(c.ts) - T0, c.from, c.to]),
      [
        [0, null, 'eu'],
        [900, 'eu', 'ap'],
      ],
    );
    assert.match(changes[1]!.why, /ap best 150 ms vs eu now 300 ms/);
    expectRoute(sent, [
      [0, 'eu'],
      [900, 'ap'],
    ]);
  });

  it('a bad model line is one error naming it; --latency without region_select is refused', async () => {
    const { cap, cfg } = setup('default');
    const bad = path.join(tmp, 'bad.jsonl');
    fs.writeFileSync(bad, '{"t":0,"region":"eu","rtt_ms":50}\n{"t":"soon","region":"eu","rtt_ms":5}\n');
    const r = await tsvs(['replay', '--config', cfg, '--latency', bad, cap]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /bad\.jsonl: line 2: "t" must be seconds/);
    const r2 = await tsvs(['replay', '--latency', bad, cap]);
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /no service of the configuration has region_select/);
  });
});
