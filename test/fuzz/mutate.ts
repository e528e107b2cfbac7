/**
 * Seeded mutators for the fuzzer: bytes (flips, interesting values, splices, cuts), capture files (records
 * kept whole or not), and JSON-like documents (a value anywhere replaced, removed, multiplied). Every input
 * is a pure function of (run seed, target, index), so any input can be made again from the three numbers.
 */
import { Rng } from '../../src/timer/rng.js';

/** the generator of input `index` of target `target` in run `seed` */
export function inputRng(seed: number, target: number, index: number): Rng {
  let h = Math.imul(seed ^ 0x2545f491, 0x9e3779b1) ^ Math.imul(target + 1, 0x85ebca6b);
  h = Math.imul(h ^ (index >>> 16) ^ (index << 5), 0xc2b2ae35) ^ index;
  return new Rng(h >>> 0);
}

export function pick<T>(r: Rng, xs: readonly T[]): T {
  return xs[r.below(xs.length)]!;
}

const INTERESTING8 = [0, 1, 0x7f, 0x80, 0xff, 0x40, 0x45, 0x60, 0x06, 0x11, 0x3a];
const INTERESTING16 = [0, 1, 0x7fff, 0x8000, 0xffff, 20, 40, 0x0800, 0x86dd, 0x8100, 65535, 1500];
const INTERESTING32 = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0xa1b2c3d4, 0x0a0d0d0a, 262144, 262145, 16777216];

/** mutate `b` in place and return it (or a new array when the length changes): `n` random edits */
export function mutateBytes(r: Rng, input: Uint8Array, n: number, hot = input.length): Uint8Array {
  let b = input;
  for (let k = 0; k < n; k++) {
    if (b.length === 0) return b;
    // most edits land in the first `hot` bytes (headers)
    const at = r.below(3) > 0 ? r.below(Math.min(hot, b.length)) : r.below(b.length);
    switch (r.below(9)) {
      case 0:
        b[at] = b[at]! ^ (1 << r.below(8));
        break;
      case 1:
        b[at] = r.below(256);
        break;
      case 2:
        b[at] = pick(r, INTERESTING8);
        break;
      case 3:
        if (at + 2 <= b.length) {
          const v = pick(r, INTERESTING16);
          b[at] = v >>> 8;
          b[at + 1] = v & 255;
        }
        break;
      case 4:
        if (at + 4 <= b.length) {
          const v = pick(r, INTERESTING32);
          const le = r.below(2) === 0;
          for (let i = 0; i < 4; i++) b[at + i] = (v >>> (le ? 8 * i : 24 - 8 * i)) & 255;
        }
        break;
      case 5: {
        // cut
        b = b.slice(0, at);
        break;
      }
      case 6: {
        // delete a run
        const len = Math.min(1 + r.below(16), b.length - at);
        const c = new Uint8Array(b.length - len);
        c.set(b.subarray(0, at), 0);
        c.set(b.subarray(at + len), at);
        b = c;
        break;
      }
      case 7: {
        // insert a run of random or repeated bytes
        const len = 1 + r.below(32);
        const c = new Uint8Array(b.length + len);
        c.set(b.subarray(0, at), 0);
        const v = r.below(256);
        for (let i = 0; i < len; i++) c[at + i] = r.below(2) ? v : r.below(256);
        c.set(b.subarray(at), at + len);
        b = c;
        break;
      }
      default: {
        // copy a run from elsewhere in the input (splices a header into a payload and the like)
        const len = 1 + r.below(24);
        const from = r.below(b.length);
        b.copyWithin(at, from, Math.min(b.length, from + len));
      }
    }
  }
  return b;
}

/** a document's value somewhere replaced by something unexpected (numbers at the edges, wrong types) */
const WEIRD: unknown[] = [
  0, -1, 1, 0.5, 7, 8, 65535, 65536, 2 ** 31, 2 ** 32 + 15, 1e9, 1e300, -1e300, Number.MAX_SAFE_INTEGER, '', 'x', '10', '1e308', '10.0.0.1', '::1', '2001:db8::1',
  '10.0.0.0/8', '::/0', '300.1.1.1', 'tcp', 'udp', 'nat', 'fnat', 'snat', 'dr', 'tunnel', 'mh', 'rr', true, false, null, [], {}, [1, 2], { a: 1 },
  'a'.repeat(70), '02:00:00:00:00:01',
];

export function mutateDoc(r: Rng, doc: unknown, n: number): unknown {
  let d = structuredClone(doc);
  for (let k = 0; k < n; k++) d = mutateOnce(r, d, 0);
  return d;
}

function mutateOnce(r: Rng, v: unknown, depth: number): unknown {
  const isObj = typeof v === 'object' && v !== null;
  // at the top only descend; deeper, sometimes replace the node itself
  if (!isObj || (depth > 0 && r.below(4) === 0)) {
    if (typeof v === 'number' && r.below(2)) return pick(r, [v * 2, v + 1, v - 1, -v, v * 1000, 0]);
    return structuredClone(pick(r, WEIRD));
  }
  if (Array.isArray(v)) {
    if (v.length === 0 || r.below(6) === 0) {
      const op = r.below(3);
      if (op === 0 && v.length) v.splice(r.below(v.length), 1);
      else if (op === 1 && v.length) v.push(structuredClone(v[r.below(v.length)]));
      else if (v.length) {
        // many copies: the sizes a configuration or request may reach
        const x = v[r.below(v.length)];
        const times = pick(r, [10, 100, 600]);
        for (let i = 0; i < times; i++) v.push(structuredClone(x));
      } else v.push(structuredClone(pick(r, WEIRD)));
      return v;
    }
    const i = r.below(v.length);
    v[i] = mutateOnce(r, v[i], depth + 1);
    return v;
  }
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  const op = r.below(10);
  if (op === 0 || keys.length === 0) {
    o[pick(r, ['v', 'id', 'cmd', 'limit', 'cursor', 'filter', 'timeout', 'weight', 'port', 'extra', 'mh', 'table_size', 'servers', 'set', 'service', 'server'])] = structuredClone(pick(r, WEIRD));
  } else if (op === 1) delete o[pick(r, keys)];
  else {
    const k = pick(r, keys);
    o[k] = mutateOnce(r, o[k], depth + 1);
  }
  return o;
}
