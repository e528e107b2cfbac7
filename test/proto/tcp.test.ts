/**
 * Every cell of the TCP state tables against the upstream tables, transcribed here as text grids of state
 * names in the layout of the C sources (DPVS src/ipvs/ip_vs_proto_tcp.c tcp_states[]; Linux
 * net/netfilter/nf_conntrack_proto_tcp.c tcp_conntracks[][][]). The grids are parsed by name, so they do not
 * share a representation with src/proto/tcp.ts.
 */
import { strict as assert } from 'node:assert';
import * as T from '../../src/proto/tcp.js';

const DPVS_GRID = `
INPUT
         sNO  sES  sSS  sSR  sFW  sTW  sCL  sCW  sLA  sLI  sSA
syn      sSR  sES  sES  sSR  sSR  sSR  sSR  sSR  sSR  sSR  sSR
fin      sCL  sCW  sSS  sTW  sTW  sTW  sCL  sCW  sLA  sLI  sTW
ack      sCL  sES  sSS  sES  sFW  sTW  sCL  sCW  sCL  sLI  sES
rst      sCL  sCL  sCL  sSR  sCL  sCL  sCL  sCL  sLA  sLI  sSR
OUTPUT
syn      sSS  sES  sSS  sSR  sSS  sSS  sSS  sSS  sSS  sLI  sSR
fin      sTW  sFW  sSS  sTW  sFW  sTW  sCL  sTW  sLA  sLI  sTW
ack      sES  sES  sSS  sES  sFW  sTW  sCL  sCW  sLA  sES  sES
rst      sCL  sCL  sSS  sCL  sCL  sTW  sCL  sCL  sCL  sCL  sCL
INPUT-ONLY
syn      sSR  sES  sES  sSR  sSR  sSR  sSR  sSR  sSR  sSR  sSR
fin      sCL  sFW  sSS  sTW  sFW  sTW  sCL  sCW  sLA  sLI  sTW
ack      sCL  sES  sSS  sES  sFW  sTW  sCL  sCW  sCL  sLI  sES
rst      sCL  sCL  sCL  sSR  sCL  sCL  sCL  sCL  sLA  sLI  sCL
`;

const DPVS_ABBR: Record<string, string> = {
  sNO: 'NONE',
  sES: 'ESTABLISHED',
  sSS: 'SYN_SENT',
  sSR: 'SYN_RECV',
  sFW: 'FIN_WAIT',
  sTW: 'TIME_WAIT',
  sCL: 'CLOSE',
  sCW: 'CLOSE_WAIT',
  sLA: 'LAST_ACK',
  sLI: 'LISTEN',
  sSA: 'SYNACK',
};

const NF_GRID = `
ORIGINAL
          sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
syn       sSS  sSS  sIG  sIG  sIG  sIG  sIG  sSS  sSS  sS2
synack    sIV  sIV  sSR  sIV  sIV  sIV  sIV  sIV  sIV  sSR
fin       sIV  sIV  sFW  sFW  sLA  sLA  sLA  sTW  sCL  sIV
ack       sES  sIV  sES  sES  sCW  sCW  sTW  sTW  sCL  sIV
rst       sIV  sCL  sCL  sCL  sCL  sCL  sCL  sCL  sCL  sCL
none      sIV  sIV  sIV  sIV  sIV  sIV  sIV  sIV  sIV  sIV
REPLY
syn       sIV  sS2  sIV  sIV  sIV  sIV  sIV  sSS  sIV  sS2
synack    sIV  sSR  sIG  sIG  sIG  sIG  sIG  sIG  sIG  sSR
fin       sIV  sIV  sFW  sFW  sLA  sLA  sLA  sTW  sCL  sIV
ack       sIV  sIG  sSR  sES  sCW  sCW  sTW  sTW  sCL  sIG
rst       sIV  sCL  sCL  sCL  sCL  sCL  sCL  sCL  sCL  sCL
none      sIV  sIV  sIV  sIV  sIV  sIV  sIV  sIV  sIV  sIV
`;

const NF_ABBR: Record<string, string> = {
  sNO: 'NONE',
  sSS: 'SYN_SENT',
  sSR: 'SYN_RECV',
  sES: 'ESTABLISHED',
  sFW: 'FIN_WAIT',
  sCW: 'CLOSE_WAIT',
  sLA: 'LAST_ACK',
  sTW: 'TIME_WAIT',
  sCL: 'CLOSE',
  sS2: 'SYN_SENT2',
  sIV: 'INVALID',
  sIG: 'IGNORE',
};

interface Cell {
  section: string;
  event: string;
  from: string;
  to: string;
}

function parse(grid: string, abbr: Record<string, string>): Cell[] {
  const cells: Cell[] = [];
  let section = '';
  let cols: string[] = [];
  for (const line of grid.trim().split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length === 1) section = f[0]!;
    else if (f[0] === 'sNO') cols = f.map((x) => abbr[x]!);
    else f.slice(1).forEach((x, i) => cells.push({ section, event: f[0]!, from: cols[i]!, to: abbr[x]! }));
  }
  return cells;
}

const FLAGS: Record<string, number> = { syn: 0x02, synack: 0x12, fin: 0x11, ack: 0x10, rst: 0x14, none: 0x00 };

describe('TCP state tables', function () {
  it('dpvs: every (direction × event × state) cell equals DPVS tcp_states[]', function () {
    const cells = parse(DPVS_GRID, DPVS_ABBR);
    assert.equal(cells.length, 3 * 4 * 11);
    const off: Record<string, number> = { INPUT: T.D_DIR_INPUT, OUTPUT: T.D_DIR_OUTPUT, 'INPUT-ONLY': T.D_DIR_INPUT_ONLY };
    const ev: Record<string, number> = { syn: 0x02, fin: 0x01, ack: 0x10, rst: 0x04 };
    const bad: string[] = [];
    for (const c of cells) {
      const got = T.DPVS_TCP_STATE_NAMES[T.dpvsNext(off[c.section]!, ev[c.event]!, T.DPVS_TCP_STATE_NAMES.indexOf(c.from))];
      if (got !== c.to) bad.push(`${c.section} ${c.event} ${c.from}: ${got} != ${c.to}`);
    }
    assert.deepEqual(bad, []);
  });

  it('dpvs: event priority RST > SYN > FIN > ACK, and a segment with none of them closes', function () {
    const idx = (s: string) => T.DPVS_TCP_STATE_NAMES.indexOf(s);
    // SYN+RST from ESTABLISHED takes the rst row; SYN+FIN the syn row; FIN+ACK the fin row
    assert.equal(T.dpvsNext(T.D_DIR_INPUT, 0x06, idx('ESTABLISHED')), idx('CLOSE'));
    assert.equal(T.dpvsNext(T.D_DIR_INPUT, 0x03, idx('ESTABLISHED')), idx('ESTABLISHED'));
    assert.equal(T.dpvsNext(T.D_DIR_INPUT, 0x11, idx('ESTABLISHED')), idx('CLOSE_WAIT'));
    assert.equal(T.dpvsNext(T.D_DIR_OUTPUT, 0x08, idx('ESTABLISHED')), idx('CLOSE'));
  });

  it('dpvs default timeouts', function () {
    const want: Record<string, number> = {
      NONE: 2,
      ESTABLISHED: 90,
      SYN_SENT: 3,
      SYN_RECV: 30,
      FIN_WAIT: 7,
      TIME_WAIT: 7,
      CLOSE: 3,
      CLOSE_WAIT: 7,
      LAST_ACK: 7,
      LISTEN: 120,
      SYNACK: 30,
    };
    for (const [s, t] of Object.entries(want)) assert.equal(T.DPVS_TCP_TIMEOUTS[T.DPVS_TCP_STATE_NAMES.indexOf(s)], t, s);
  });

  it('netfilter: every (direction × index × state) cell equals tcp_conntracks[][][]', function () {
    const cells = parse(NF_GRID, NF_ABBR);
    assert.equal(cells.length, 2 * 6 * 10);
    const name = (v: number) => (v === T.N_INVALID ? 'INVALID' : v === T.N_IGNORE ? 'IGNORE' : T.NF_TCP_STATE_NAMES[v]);
    const bad: string[] = [];
    for (const c of cells) {
      const dir = c.section === 'ORIGINAL' ? 0 : 1;
      const got = name(T.nfNext(dir, T.nfIndex(FLAGS[c.event]!), T.NF_TCP_STATE_NAMES.indexOf(c.from)));
      if (got !== c.to) bad.push(`${c.section} ${c.event} ${c.from}: ${got} != ${c.to}`);
    }
    assert.deepEqual(bad, []);
  });

  it('netfilter default timeouts (seconds)', function () {
    const want: Record<string, number> = {
      SYN_SENT: 120,
      SYN_RECV: 60,
      ESTABLISHED: 5 * 24 * 3600,
      FIN_WAIT: 120,
      CLOSE_WAIT: 60,
      LAST_ACK: 30,
      TIME_WAIT: 120,
      CLOSE: 10,
      SYN_SENT2: 120,
    };
    for (const [s, t] of Object.entries(want)) assert.equal(T.NF_TCP_TIMEOUTS[T.NF_TCP_STATE_NAMES.indexOf(s)], t, s);
    assert.equal(T.NF_TCP_TIMEOUTS[T.N_RETRANS], 300);
    assert.equal(T.NF_TCP_TIMEOUTS[T.N_UNACK], 300);
  });
});
