/**
 * The dispatch rule of dispatch.ts (`service` and `tuple`) as a classic BPF program, for the kernel to run
 * where a packet socket fanout group (PACKET_FANOUT_CBPF) hands each packet to one of its members: the
 * program returns the worker, the kernel takes it modulo the members. This is the kernel-side half of live
 * workers (issue 20): a client's packets, its NAT servers' replies and the replies to a worker's FNAT/SNAT
 * local ports then reach the worker that holds their connection without a redirect.
 *
 * The program computes what Dispatcher.workerOf computes, the same hashes (Murmur3's mix and fmix, in 32-bit
 * BPF arithmetic) over the same hash slots, for what a live capture sees:
 * - Ethernet (the kernel has taken any VLAN tag off into the packet's metadata) or raw IP link types;
 * - IPv4 (any header length, fragments: only the first has ports), IPv6 with its extension headers walked
 *   as the decoder walks them (a fragment after the first: its protocol, no ports);
 * - TCP and UDP ports, ICMP query ids (echo, timestamp, information, address mask; ICMPv6 echo), ICMP errors
 *   by the packet they quote (an IPv4 quote with its own header length, an IPv6 quote with its extension
 *   headers, its first 8 bytes inside the error), as the replay's dispatcher does.
 * What it does not decode (not IP, or an ICMP error quoting too little) goes to worker 0, where the replay
 * spreads such packets round-robin (they are only counted there).
 *
 * The kernel runs a fanout program on the packet from its network header (the device's link header is
 * already pulled when a packet socket's hook sees it): a fanout group takes the raw-IP form on any device.
 * The Ethernet form reads frames as a capture file holds them (tests, `tsvs replay`).
 */
import { SLOTS } from './layout.js';

/** the dispatch rule in numbers (Dispatcher.rule()) */
export interface DispatchRule {
  /** the worker of each hash slot */
  slots: Uint8Array;
  mode: 'service' | 'tuple';
  /** addresses with roles (R_LOCAL 1, R_SIDE 2, R_NATRS 4), the words of an IPv6 address in order */
  roles: Array<{ words: number[]; v6: boolean; role: number }>;
  /** IPv4 persistence mask (as a number), IPv6 persistence prefix length */
  mask4: number;
  prefix6: number;
}

/**
 * IPv6 extension headers the program walks (the decoder: up to 17). Each costs ~30 instructions per walk
 * (the outer packet's, an ICMP error's quote's), and a program has 4096: past 8 (rare: hop-by-hop, routing,
 * destination options, fragment, AH make 5) the program takes the 9th header as the protocol, where the
 * dispatcher would go on.
 */
const EXT_WALKED = 8;

const R_LOCAL = 1;
const R_SIDE = 2;

/* scratch words: the addresses (4 words each side; IPv4 in the first), protocol, ports, roles, the hash */
const S = 0;
const D = 4;
const PROTO = 8;
const SP = 9;
const DP = 10;
const RS = 11;
const RD = 12;
const H = 13;
const T = 14;
const T2 = 15;

/* opcodes */
const LD_W_ABS = 0x20;
const LD_H_ABS = 0x28;
const LD_B_ABS = 0x30;
const LD_W_IND = 0x40;
const LD_H_IND = 0x48;
const LD_B_IND = 0x50;
const LD_IMM = 0x00;
const LD_MEM = 0x60;
const LDX_MEM = 0x61;
const STX = 0x03;
const LDX_MSH = 0xb1;
const ST = 0x02;
const ADD_K = 0x04;
const ADD_X = 0x0c;
const MUL_K = 0x24;
const OR_X = 0x4c;
const AND_K = 0x54;
const LSH_K = 0x64;
const RSH_K = 0x74;
const XOR_K = 0xa4;
const XOR_X = 0xac;
const JA = 0x05;
const JEQ_K = 0x15;
const JEQ_X = 0x1d;
const JGT_X = 0x2d;
const JGE_K = 0x35;
const JSET_K = 0x45;
const RET_K = 0x06;
const TAX = 0x07;
const TXA = 0x87;

type Target = number | string;

/**
 * A tiny assembler: jump targets are labels or offsets (counted from the next instruction, as BPF's); a
 * conditional jump can reach only 255 ahead, so one that must go further is given a pair of `ja` right after
 * it (repeated until every jump fits).
 */
class Asm {
  private readonly ins: Array<{ code: number; k: number | string; jt: Target; jf: Target; at: number }> = [];
  private readonly at = new Map<string, number>();
  private n = 0;

  op(code: number, k: number | string = 0, jt: Target = 0, jf: Target = 0): void {
    this.ins.push({ code, k, jt, jf, at: this.ins.length });
  }

  label(name: string): void {
    if (this.at.has(name)) throw new Error(`fanout: label ${name} twice`);
    this.at.set(name, this.ins.length);
  }

  /** a fresh label name */
  fresh(what: string): string {
    return `${what}.${this.n++}`;
  }

  assemble(): Int32Array {
    // every target as an absolute index
    const abs = (t: Target, pc: number): number => {
      if (typeof t === 'number') return pc + 1 + t;
      const to = this.at.get(t);
      if (to === undefined) throw new Error(`fanout: no label ${t}`);
      if (to <= pc) throw new Error(`fanout: backward jump to ${t}`);
      return to;
    };
    const prog = this.ins.map((x, pc) => ({ code: x.code, k: x.code === JA ? abs(x.k as Target, pc) : (x.k as number), jt: x.code === JA || (x.code & 7) !== 5 ? 0 : abs(x.jt, pc), jf: x.code === JA || (x.code & 7) !== 5 ? 0 : abs(x.jf, pc) }));
    const cond = (c: number) => (c & 7) === 5 && c !== JA;
    for (let changed = true; changed; ) {
      changed = false;
      for (let i = 0; i < prog.length; i++) {
        const x = prog[i]!;
        if (!cond(x.code) || (x.jt - i - 1 <= 255 && x.jf - i - 1 <= 255)) continue;
        // two instructions after i: everything aimed at i + 1 or later moves by two
        for (const y of prog) {
          if (y.code === JA) {
            if (y.k > i) y.k += 2;
          } else if (cond(y.code)) {
            if (y.jt > i) y.jt += 2;
            if (y.jf > i) y.jf += 2;
          }
        }
        prog.splice(i + 1, 0, { code: JA, k: x.jt, jt: 0, jf: 0 }, { code: JA, k: x.jf, jt: 0, jf: 0 });
        x.jt = i + 1;
        x.jf = i + 2;
        changed = true;
      }
    }
    if (prog.length > 4096) throw new Error(`fanout: ${prog.length} instructions (the kernel takes 4096)`);
    const out = new Int32Array(prog.length * 4);
    prog.forEach((x, pc) => {
      const k = x.code === JA ? x.k - pc - 1 : x.k;
      const jt = cond(x.code) ? x.jt - pc - 1 : 0;
      const jf = cond(x.code) ? x.jf - pc - 1 : 0;
      out.set([x.code, jt, jf, k | 0], pc * 4);
    });
    return out;
  }
}

/** Murmur3 mix (ConnTable.mix) in BPF: M[H] = mix(M[H], A) */
function mix(a: Asm): void {
  a.op(MUL_K, 0xcc9e2d51);
  rotl(a, 15);
  a.op(MUL_K, 0x1b873593);
  a.op(LDX_MEM, H);
  a.op(XOR_X);
  rotl(a, 13);
  a.op(MUL_K, 5);
  a.op(ADD_K, 0xe6546b64);
  a.op(ST, H);
}

/** A = rotate A left by r */
function rotl(a: Asm, r: number): void {
  a.op(ST, T);
  a.op(LSH_K, r);
  a.op(ST, T2);
  a.op(LD_MEM, T);
  a.op(RSH_K, 32 - r);
  a.op(LDX_MEM, T2);
  a.op(OR_X);
}

/** Murmur3 finalizer (ConnTable.fmix): A = fmix(M[H]) */
function fmix(a: Asm): void {
  a.op(LD_MEM, H);
  for (const [shift, mul] of [
    [16, 0x85ebca6b],
    [13, 0xc2b2ae35],
    [16, 0],
  ] as const) {
    a.op(TAX);
    a.op(RSH_K, shift);
    a.op(XOR_X);
    if (mul) a.op(MUL_K, mul);
  }
}

/**
 * The program for `rule` on link type `linktype` (1: Ethernet; 12, 14, 101, 228, 229: raw IP): 4 words per
 * instruction (code, jt, jf, k), as SO_ATTACH_FILTER and PACKET_FANOUT_DATA take them.
 */
export function fanoutProgram(rule: DispatchRule, linktype: number): Int32Array {
  const raw = linktype === 12 || linktype === 14 || linktype === 101 || linktype === 228 || linktype === 229;
  if (linktype !== 1 && !raw) throw new Error(`fanout: link type ${linktype} is not Ethernet or raw IP`);
  const base = raw ? 0 : 14;
  const a = new Asm();
  const service = rule.mode === 'service' && rule.roles.length > 0;

  /* ---- which IP version ---- */
  if (raw) {
    a.op(LD_B_ABS, 0);
    a.op(RSH_K, 4);
    a.op(JEQ_K, 4, 'v4', 0);
    a.op(JEQ_K, 6, 'v6', 'none');
  } else {
    a.op(LD_H_ABS, 12);
    a.op(JEQ_K, 0x0800, 'v4', 0);
    a.op(JEQ_K, 0x86dd, 'v6', 'none');
  }

  /* ---- IPv4: addresses, protocol; X = the header's length ---- */
  a.label('v4');
  header4(a, LD_W_ABS, LD_B_ABS, LD_H_ABS, base);
  a.op(JSET_K, 0x1fff, 'v4.noports', 0); // a fragment after the first: no L4 header
  a.op(LDX_MSH, base);
  transport(a, 'v4', base, 1, [3, 4, 5, 11, 12], [8, 0, 13, 14, 15, 16, 17, 18]);

  /* ---- an IPv4 ICMP error: the quoted packet at X + 8 ---- */
  a.label('v4.error');
  quoted(a, base, 4);

  /* ---- IPv6: addresses; the extension headers walked (X: the next one's offset) to the protocol ---- */
  a.label('v6');
  header6(a, LD_W_ABS, LD_B_ABS, base);
  a.op(LD_IMM, 40);
  a.op(TAX);
  extensions6(a, base, null);
  // X = the L4 header's offset (kept in M[SP] for an ICMP error's quote, until the ports are stored)
  a.op(STX, SP);
  transport(a, 'v6', base, 58, [1, 2, 3, 4], [128, 129]);
  a.label('v6.error');
  quoted(a, base, 6);
  quoteV6(a, base);
  quoteBad(a, 4);
  quoteBad(a, 6);

  /* ---- picks: M[T] says whether the ports count (TCP/UDP ports, ICMP ids) ---- */
  for (const v6 of [false, true]) {
    const f = v6 ? 'v6' : 'v4';
    a.label(`${f}.pick.ports`);
    a.op(LD_IMM, 1);
    a.op(ST, T);
    a.op(JA, `${f}.pick`);
    a.label(`${f}.pick.noports`);
    a.op(LD_IMM, 0);
    a.op(ST, T);
    a.label(`${f}.pick`);
    if (service) {
      roleOf(a, rule, v6, S, RS);
      roleOf(a, rule, v6, D, RD);
      // a local port names the worker
      const side = a.fresh('side');
      a.op(LD_MEM, T);
      a.op(JEQ_K, 0, side, 0);
      a.op(LD_MEM, RD);
      a.op(JSET_K, R_LOCAL, 0, 2);
      a.op(LD_MEM, DP);
      a.op(JA, 'slot');
      a.op(LD_MEM, RS);
      a.op(JSET_K, R_LOCAL, 0, 2);
      a.op(LD_MEM, SP);
      a.op(JA, 'slot');
      // one side a VIP or a NAT server, the other not: the other side's address
      a.label(side);
      const other = a.fresh('other');
      const same = a.fresh('same');
      a.op(LD_MEM, RD);
      a.op(AND_K, R_SIDE);
      a.op(TAX);
      a.op(LD_MEM, RS);
      a.op(AND_K, R_SIDE);
      a.op(JEQ_X, 0, same, other);
      a.label(other);
      // X != 0: the destination is the side, hash the source; else the destination
      const hs = a.fresh('hsrc');
      const hd = a.fresh('hdst');
      a.op(TXA);
      a.op(JEQ_K, 0, hd, hs);
      a.label(hs);
      host(a, rule, v6, S);
      a.op(JA, 'slot');
      a.label(hd);
      host(a, rule, v6, D);
      a.op(JA, 'slot');
      a.label(same);
    }
    a.label(`${f}.pair`);
    pair(a, v6);
    a.op(JA, 'slot');
  }

  /* ---- the hash's slot names the worker ---- */
  a.label('slot');
  a.op(AND_K, SLOTS - 1);
  const lanes = Math.max(...rule.slots) + 1;
  for (let i = 0; i < SLOTS; i++) if (rule.slots[i] !== 0) a.op(JEQ_K, i, `lane${rule.slots[i]}`, 0);
  a.label('none');
  a.op(RET_K, 0);
  for (let w = 1; w < lanes; w++) {
    a.label(`lane${w}`);
    a.op(RET_K, w);
  }
  return a.assemble();
}

/**
 * The L4 header at X (M[PROTO] its protocol): TCP and UDP ports; ICMP (`icmp`: 1 or 58) errors of
 * `errors` to `${f}.error`, the id of `queries` as both ports, other types none; other protocols none
 */
function transport(a: Asm, f: 'v4' | 'v6', base: number, icmp: number, errors: number[], queries: number[]): void {
  a.op(LD_MEM, PROTO);
  a.op(JEQ_K, 6, `${f}.ports`, 0);
  a.op(JEQ_K, 17, `${f}.ports`, 0);
  a.op(JEQ_K, icmp, `${f}.icmp`, `${f}.noports`);
  a.label(`${f}.ports`);
  loadPorts(a, LD_H_IND, base, `${f}.pick.ports`);
  a.label(`${f}.icmp`);
  a.op(LD_B_IND, base);
  for (const t of errors) a.op(JEQ_K, t, `${f}.error`, 0);
  icmpQuery(a, queries, base, `${f}.pick.ports`, `${f}.icmp.other`);
  a.label(`${f}.icmp.other`);
  zeroPorts(a, `${f}.pick.ports`);
  a.label(`${f}.noports`);
  zeroPorts(a, `${f}.pick.noports`);
}

/** an IPv4 header's addresses and protocol at `off` into the scratch, and A = its flags and fragment offset */
function header4(a: Asm, word: number, byte: number, half: number, off: number): void {
  a.op(word, off + 12);
  a.op(ST, S);
  a.op(word, off + 16);
  a.op(ST, D);
  a.op(byte, off + 9);
  a.op(ST, PROTO);
  a.op(half, off + 6);
}

/** an IPv6 header's addresses and next header at `off` (loads `word` and `byte`: ABS or IND) into the scratch */
function header6(a: Asm, word: number, byte: number, off: number): void {
  addresses6(a, word, off);
  a.op(byte, off + 6);
  a.op(ST, PROTO);
}

/** an IPv6 header's addresses at `off` (a `word` load: ABS or IND) into the scratch */
function addresses6(a: Asm, word: number, off: number): void {
  for (let i = 0; i < 4; i++) {
    a.op(word, off + 8 + 4 * i);
    a.op(ST, S + i);
    a.op(word, off + 24 + 4 * i);
    a.op(ST, D + i);
  }
}

/** the ports at `off` (a load `code`: ABS or IND), then to `then` */
function loadPorts(a: Asm, code: number, off: number, then: string): void {
  a.op(code, off);
  a.op(ST, SP);
  a.op(code, off + 2);
  a.op(ST, DP);
  a.op(JA, then);
}

/** no ports (0 and 0), then to `then` */
function zeroPorts(a: Asm, then: string): void {
  a.op(LD_IMM, 0);
  a.op(ST, SP);
  a.op(ST, DP);
  a.op(JA, then);
}

/** ICMP query types: the id (at X + 4) as both ports, then to `yes`; other types to `no` (A holds the type) */
function icmpQuery(a: Asm, types: number[], base: number, yes: string, no: string): void {
  const q = a.fresh('query');
  for (const t of types) a.op(JEQ_K, t, q, 0);
  a.op(JA, no);
  a.label(q);
  a.op(LD_H_IND, base + 4);
  a.op(ST, SP);
  a.op(ST, DP);
  a.op(JA, yes);
}

/**
 * An ICMP error whose own header is at X (from `base`): the quoted packet (IPv4 with its header length, or
 * IPv6 with its extension headers: quoteV6) at X + 8, its first 8 bytes inside the error (else the error goes
 * by its own addresses: quoteBad); the quote's tuple as it is (it went the other way: its worker is the
 * connection's)
 */
function quoted(a: Asm, base: number, outer: 4 | 6): void {
  const q = base + 8; // the quote, from X
  const bad = `quote.bad.v${outer}`;
  // (the outer L4 header's offset: kept in M[SP] until the quote's ports are stored; IPv6 has it there already)
  if (outer === 4) a.op(STX, SP);
  const v4 = a.fresh('quote.v4');
  const v6 = a.fresh('quote.v6');
  // an IPv4 error that is itself a fragment: its quote is not read (the dispatcher's decoder does not)
  if (outer === 4) {
    a.op(LD_H_ABS, base + 6);
    a.op(JSET_K, 0x2000, bad, 0);
  }
  // the IP packet's end (from base): IPv4 total length, IPv6 40 + payload length; kept in T2 until checked
  if (outer === 4) a.op(LD_H_ABS, base + 2);
  else {
    a.op(LD_H_ABS, base + 4);
    a.op(ADD_K, 40);
  }
  a.op(ST, T2);
  // (the dispatcher's decoder: a quote shorter than 20 bytes is not read)
  a.op(TXA);
  a.op(ADD_K, 8 + 20);
  a.op(LDX_MEM, T2);
  a.op(JGT_X, 0, bad, 0);
  outerX(a);
  a.op(LD_B_IND, q);
  a.op(RSH_K, 4);
  a.op(JEQ_K, 4, v4, 0);
  a.op(JEQ_K, 6, v6, bad);

  // IPv4 quote: X + 8 + its header length + 8 within the packet; not a fragment after the first
  a.label(v4);
  a.op(LD_B_IND, q);
  a.op(AND_K, 15);
  a.op(LSH_K, 2);
  a.op(JGE_K, 20, 0, bad);
  a.op(ST, T); // the quote's header length
  a.op(TXA);
  a.op(ADD_K, 8 + 8);
  a.op(LDX_MEM, T);
  a.op(ADD_X); // X(outer header) + 8 + quote header + 8
  a.op(LDX_MEM, T2);
  a.op(JGT_X, 0, bad, 0);
  quoteV4(a, base, outer, bad);

  a.label(v6);
  a.op(TXA);
  a.op(ADD_K, 8 + 40 + 8);
  a.op(LDX_MEM, T2);
  a.op(JGT_X, 0, bad, 0);
  // (one copy of an IPv6 quote's code for both outer versions: M[RS], free until the roles, says which. The
  // kernel's checker merges what is stored on every path into it, so an IPv4 error stores the address words
  // only an IPv6 one has: on its way to the IPv6 pair below, none may be unset on any path)
  if (outer === 4) {
    a.op(LD_IMM, 0);
    for (let i = 1; i < 4; i++) {
      a.op(ST, S + i);
      a.op(ST, D + i);
    }
  }
  a.op(LD_IMM, outer);
  a.op(ST, RS);
  a.op(JA, 'quote6');
}

/**
 * An ICMP error (IPv4 or IPv6: `outer`) whose quote cannot be read: the symmetric hash of its own addresses,
 * protocol 0, no ports (no role rule: the dispatcher hashes the pair alone then). After every jump to it.
 */
function quoteBad(a: Asm, outer: 4 | 6): void {
  a.label(`quote.bad.v${outer}`);
  a.op(LD_IMM, 0);
  a.op(ST, PROTO);
  zeroPorts(a, outer === 4 ? 'v4.pair' : 'v6.pair');
}

/** X = the outer L4 header's offset again (kept in M[SP]) */
function outerX(a: Asm): void {
  a.op(LDX_MEM, SP);
}

/**
 * IPv6 extension headers at `at` + X (M[PROTO]: the first one's type), as the dispatcher's decoder walks them:
 * on to M[PROTO] the protocol and X its header. The outer packet's (`quote` null): hop-by-hop, routing,
 * destination options, mobility, HIP, shim6 ((length + 1) × 8 bytes), the fragment header (8: a fragment
 * after the first has no L4 header, its next header the protocol) and AH ((length + 2) × 4), EXT_WALKED (a
 * truncated one: a load past the packet ends the program, worker 0, where the dispatcher spreads what does not
 * decode). An ICMP error's quote (`quote`: where a quote that cannot be read goes): the quote decoder's
 * kinds (no HIP or shim6), a quoted later fragment not read, and each header and the L4 header's first 8
 * bytes within the error's IP packet (M[T2]: its end from `base`; M[T]: scratch).
 */
function extensions6(a: Asm, at: number, quote: { base: number; bad: string } | null): void {
  const done = a.fresh('ext.done');
  // (quote: the next header's 8 bytes within the packet, or the quote is not read)
  const within = (q: { base: number; bad: string }) => {
    a.op(STX, T);
    a.op(TXA);
    a.op(ADD_K, at - q.base + 8);
    a.op(LDX_MEM, T2);
    a.op(JGT_X, 0, q.bad, 0);
    a.op(LDX_MEM, T);
  };
  for (let n = 0; n < EXT_WALKED; n++) {
    const std = a.fresh('ext.std');
    const frag = a.fresh('ext.frag');
    const ah = a.fresh('ext.ah');
    const next = a.fresh('ext.next');
    if (quote) within(quote);
    a.op(LD_MEM, PROTO);
    for (const t of quote ? [0, 43, 60, 135] : [0, 43, 60, 135, 139, 140]) a.op(JEQ_K, t, std, 0);
    a.op(JEQ_K, 44, frag, 0);
    a.op(JEQ_K, 51, ah, done);
    // each: M[PROTO] = its next header; A = its length (X + A: the next one)
    for (const [label, add, shift] of [
      [std, 1, 3],
      [ah, 2, 2],
    ] as const) {
      a.label(label);
      a.op(LD_B_IND, at);
      a.op(ST, PROTO);
      a.op(LD_B_IND, at + 1);
      a.op(ADD_K, add);
      a.op(LSH_K, shift);
      a.op(JA, next);
    }
    a.label(frag);
    if (quote) {
      a.op(LD_H_IND, at + 2);
      a.op(JSET_K, 0xfff8, quote.bad, 0);
    }
    a.op(LD_B_IND, at);
    a.op(ST, PROTO);
    if (!quote) {
      a.op(LD_H_IND, at + 2);
      a.op(JSET_K, 0xfff8, 'v6.noports', 0);
    }
    a.op(LD_IMM, 8);
    a.label(next);
    a.op(ADD_X);
    a.op(TAX);
  }
  if (quote) within(quote);
  a.label(done);
}

function quoteV4(a: Asm, base: number, outer: 4 | 6, bad: string): void {
  const q = base + 8;
  outerX(a);
  // a quoted fragment after the first is not read: checked before the scratch takes the quote's addresses
  // (the error then goes by its own)
  a.op(LD_H_IND, q + 6);
  a.op(JSET_K, 0x1fff, bad, 0);
  header4(a, LD_W_IND, LD_B_IND, LD_H_IND, q);
  // X = outer header + quote header: its L4 header at X + q
  a.op(LD_B_IND, q);
  a.op(AND_K, 15);
  a.op(LSH_K, 2);
  a.op(ST, T);
  a.op(TXA);
  a.op(LDX_MEM, T);
  a.op(ADD_X);
  a.op(TAX);
  quoteL4(a, q, 'v4');
}

/** an IPv6 quote (emitted once, after both outer versions' errors: M[RS] says which, for a quote not read) */
function quoteV6(a: Asm, base: number): void {
  const q = base + 8;
  const bad = 'quote6.bad';
  a.label('quote6');
  // its extension headers walked first: a quote that cannot be read leaves the error's own addresses in place
  outerX(a);
  a.op(LD_B_IND, q + 6);
  a.op(ST, PROTO);
  a.op(TXA);
  a.op(ADD_K, 40);
  a.op(TAX);
  extensions6(a, q, { base, bad });
  // (X, the quote's L4 header, kept while its addresses are read from its start)
  a.op(STX, T);
  outerX(a);
  addresses6(a, LD_W_IND, q);
  a.op(LDX_MEM, T);
  quoteL4(a, q, 'v6');
  a.label(bad);
  a.op(LD_MEM, RS);
  a.op(JEQ_K, 4, 'quote.bad.v4', 'quote.bad.v6');
}

/** the quote's protocol in M[PROTO], its L4 header at X + q: ports (TCP, UDP), the ICMP id, else none */
function quoteL4(a: Asm, q: number, f: 'v4' | 'v6'): void {
  const ports = a.fresh('quote.ports');
  const icmp = a.fresh('quote.icmp');
  a.op(LD_MEM, PROTO);
  a.op(JEQ_K, 6, ports, 0);
  a.op(JEQ_K, 17, ports, 0);
  a.op(JEQ_K, 1, icmp, 0);
  a.op(JEQ_K, 58, icmp, 0);
  zeroPorts(a, `${f}.pick.noports`);
  a.label(ports);
  loadPorts(a, LD_H_IND, q, `${f}.pick.ports`);
  a.label(icmp);
  a.op(LD_H_IND, q + 4);
  a.op(ST, SP);
  a.op(ST, DP);
  a.op(JA, `${f}.pick.ports`);
}

/**
 * M[into] = the roles of the address at M[at..]: a chain of compares (IPv4: the address stays in A, one
 * compare and a jump per address; IPv6: its four words), each match jumping to a setter of its roles
 */
function roleOf(a: Asm, rule: DispatchRule, v6: boolean, at: number, into: number): void {
  const done = a.fresh('roles');
  const setter = new Map<number, string>();
  if (!v6) a.op(LD_MEM, at);
  for (const r of rule.roles) {
    if (r.v6 !== v6) continue;
    let set = setter.get(r.role);
    if (!set) setter.set(r.role, (set = a.fresh(`role${r.role}`)));
    if (!v6) {
      a.op(JEQ_K, r.words[0]! | 0, 0, 1);
      a.op(JA, set);
      continue;
    }
    const next = a.fresh('role.next');
    for (let i = 0; i < 4; i++) {
      a.op(LD_MEM, at + i);
      a.op(JEQ_K, r.words[i]! | 0, 0, next);
    }
    a.op(JA, set);
    a.label(next);
  }
  a.op(LD_IMM, 0);
  a.op(ST, into);
  a.op(JA, done);
  for (const [role, label] of setter) {
    a.label(label);
    a.op(LD_IMM, role);
    a.op(ST, into);
    a.op(JA, done);
  }
  a.label(done);
}

/** A = the hash of the address at M[at..], masked to the persistence netmask (dispatch.ts host4/host) */
function host(a: Asm, rule: DispatchRule, v6: boolean, at: number): void {
  a.op(LD_IMM, 0x2545f491);
  a.op(ST, H);
  if (!v6) {
    a.op(LD_MEM, at);
    a.op(AND_K, rule.mask4 | 0);
    mix(a);
  } else {
    let bits = rule.prefix6;
    for (let i = 0; i < 4; i++) {
      const take = Math.max(0, Math.min(32, bits));
      bits -= 32;
      if (take === 0) a.op(LD_IMM, 0);
      else {
        a.op(LD_MEM, at + i);
        if (take < 32) a.op(AND_K, ~(0xffffffff >>> take) | 0);
      }
      mix(a);
    }
  }
  fmix(a);
}

/** A = the symmetric hash of the tuple in the scratch words (dispatch.ts pair4/pair) */
function pair(a: Asm, v6: boolean): void {
  const swap = a.fresh('swap');
  const keep = a.fresh('keep');
  const words = v6 ? 4 : 1;
  // the endpoints in a fixed order: the first differing address word, else the ports
  for (let i = 0; i < words; i++) {
    const eq = a.fresh('eq');
    a.op(LD_MEM, S + i);
    a.op(LDX_MEM, D + i);
    a.op(JEQ_X, 0, eq, 0);
    a.op(JGT_X, 0, swap, keep);
    a.label(eq);
  }
  a.op(LD_MEM, SP);
  a.op(LDX_MEM, DP);
  a.op(JGT_X, 0, swap, keep);
  for (const sw of [false, true]) {
    a.label(sw ? swap : keep);
    const first = sw ? D : S;
    const second = sw ? S : D;
    a.op(LD_MEM, PROTO);
    a.op(XOR_K, 0x3c6ef372);
    a.op(ST, H);
    a.op(LD_MEM, first);
    mix(a);
    a.op(LD_MEM, second);
    mix(a);
    for (let j = 1; j < words; j++) {
      a.op(LD_MEM, first + j);
      mix(a);
      a.op(LD_MEM, second + j);
      mix(a);
    }
    // the ports word: the first endpoint's port high
    a.op(LD_MEM, sw ? DP : SP);
    a.op(LSH_K, 16);
    a.op(LDX_MEM, sw ? SP : DP);
    a.op(OR_X);
    mix(a);
    fmix(a);
    if (!sw) a.op(JA, 'slot');
  }
}
