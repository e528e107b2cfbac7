/**
 * `tsvs replay --filter EXPR`: a classic BPF program, compiled by libpcap's own compiler (through `tcpdump
 * -ddd -y DLT EXPR`, once per link type a file uses), run over each record without allocation, as the kernel
 * runs a socket filter: a load beyond the captured bytes rejects the packet; `len` is the wire length.
 */
import { execFileSync } from 'node:child_process';

/** link types by number as tcpdump -y names them */
const DLT_NAMES: Record<number, string> = { 0: 'NULL', 1: 'EN10MB', 12: 'RAW', 14: 'RAW', 101: 'RAW', 108: 'LOOP', 113: 'LINUX_SLL', 228: 'IPV4', 229: 'IPV6', 276: 'LINUX_SLL2' };

export class FilterError extends Error {}

/** a compiled program: 4 words per instruction (code, jt, jf, k) */
export class Bpf {
  private readonly mem = new Int32Array(16);

  constructor(private readonly prog: Int32Array) {}

  /** the instructions, 4 words each (code, jt, jf, k), as the kernel's SO_ATTACH_FILTER takes them */
  get program(): Int32Array {
    return this.prog;
  }

  /** a program that accepts nothing */
  static never(): Bpf {
    return new Bpf(new Int32Array([0x06, 0, 0, 0]));
  }

  /** tcpdump's compiler for `expr` on link type `linktype`; a FilterError naming the expression when it fails */
  static compile(expr: string, linktype: number): Bpf {
    const dlt = DLT_NAMES[linktype];
    if (dlt === undefined) throw new FilterError(`--filter: link type ${linktype} has no libpcap name tsvs knows`);
    let out: string;
    try {
      out = execFileSync('tcpdump', ['-ddd', '-y', dlt, expr], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { stderr?: string };
      if (err.code === 'ENOENT') throw new FilterError('--filter: needs tcpdump (libpcap\'s compiler; apt-get install tcpdump)');
      const why = (err.stderr ?? '').split('\n').find((l) => l && !/data link type/.test(l)) ?? err.message;
      throw new FilterError(`--filter ${JSON.stringify(expr)}: ${why.replace(/^tcpdump: /, '')}`);
    }
    const lines = out.trim().split('\n');
    const n = Number(lines[0]);
    if (!Number.isInteger(n) || n < 1 || lines.length !== n + 1) throw new FilterError(`--filter ${JSON.stringify(expr)}: unexpected compiler output`);
    const prog = new Int32Array(4 * n);
    for (let i = 0; i < n; i++) {
      const f = lines[i + 1]!.split(' ').map(Number);
      for (let j = 0; j < 4; j++) prog[4 * i + j] = f[j]! | 0;
    }
    return new Bpf(prog);
  }

  /** the program over `caplen` captured bytes at `off` of a packet `wirelen` long: accepted (non-zero return) */
  matches(b: Uint8Array, off: number, caplen: number, wirelen: number): boolean {
    return this.run(b, off, caplen, wirelen) !== 0;
  }

  /**
   * What the program returns for the packet (unsigned), as the kernel runs it: a load beyond the captured
   * bytes or a division by zero ends it with 0 (a socket filter drops; a fanout program names member 0).
   */
  run(b: Uint8Array, off: number, caplen: number, wirelen: number): number {
    const p = this.prog;
    const m = this.mem;
    let a = 0;
    let x = 0;
    for (let pc = 0; pc < p.length; pc += 4) {
      const code = p[pc]!;
      const k = p[pc + 3]!;
      switch (code & 7) {
        case 0x00: // LD
        case 0x01: {
          // LDX
          const mode = code & 0xe0;
          const size = code & 0x18;
          let v: number;
          if (mode === 0x00) v = k; // IMM
          else if (mode === 0x80) v = wirelen; // LEN
          else if (mode === 0x60) v = m[k & 15]!; // MEM
          else if (mode === 0xa0 && (code & 7) === 0x01) {
            // LDX MSH: 4 * (P[k] & 0xf)
            if (k < 0 || k >= caplen) return 0;
            v = (b[off + k]! & 0xf) << 2;
          } else {
            const at = mode === 0x40 ? x + k : k; // IND or ABS
            const w = size === 0x00 ? 4 : size === 0x08 ? 2 : 1;
            if (at < 0 || at + w > caplen) return 0;
            const o = off + at;
            v = w === 4 ? ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) : w === 2 ? (b[o]! << 8) | b[o + 1]! : b[o]!;
          }
          if ((code & 7) === 0x00) a = v | 0;
          else x = v | 0;
          break;
        }
        case 0x02: // ST
          m[k & 15] = a;
          break;
        case 0x03: // STX
          m[k & 15] = x;
          break;
        case 0x04: {
          // ALU
          const s = (code & 0x08) !== 0 ? x : k;
          switch (code & 0xf0) {
            case 0x00: a = (a + s) | 0; break;
            case 0x10: a = (a - s) | 0; break;
            case 0x20: a = Math.imul(a, s); break;
            case 0x30: if (s === 0) return 0; a = ((a >>> 0) / (s >>> 0)) | 0; break;
            case 0x40: a |= s; break;
            case 0x50: a &= s; break;
            case 0x60: a = s >>> 0 >= 32 ? 0 : a << s; break;
            case 0x70: a = s >>> 0 >= 32 ? 0 : (a >>> s) | 0; break;
            case 0x80: a = -a | 0; break;
            case 0x90: if (s === 0) return 0; a = ((a >>> 0) % (s >>> 0)) | 0; break;
            case 0xa0: a ^= s; break;
            default: return 0;
          }
          break;
        }
        case 0x05: {
          // JMP: offsets count instructions after this one
          const op = code & 0xf0;
          if (op === 0x00) {
            pc += 4 * k;
            break;
          }
          const s = (code & 0x08) !== 0 ? x >>> 0 : k >>> 0;
          const av = a >>> 0;
          const t = op === 0x10 ? av === s : op === 0x20 ? av > s : op === 0x30 ? av >= s : (av & s) !== 0;
          pc += 4 * (t ? p[pc + 1]! : p[pc + 2]!);
          break;
        }
        case 0x06: // RET
          return ((code & 0x18) === 0x10 ? a : k) >>> 0;
        case 0x07: // MISC: TAX / TXA
          if ((code & 0xf8) === 0x00) x = a;
          else a = x;
          break;
      }
    }
    return 0;
  }
}
