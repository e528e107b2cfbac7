/** Address text as the engine holds it: 4 words (IPv4 in word 0), prefixes, MAC addresses. */
import { isIP } from 'node:net';

/** "02:00:00:00:03:02" → 6 bytes (none: zeros) */
export function parseMac(s: string | undefined): Uint8Array {
  return s ? Uint8Array.from(s.split(':').map((h) => parseInt(h, 16))) : new Uint8Array(6);
}

/** address text → 4 words (IPv4 in word 0) */
export function addrToWords(s: string): { v6: boolean; words: Uint32Array } {
  const w = new Uint32Array(4);
  if (!s.includes(':')) {
    const p = s.split('.').map(Number);
    w[0] = ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
    return { v6: false, words: w };
  }
  const dot = s.lastIndexOf(':');
  if (s.includes('.', dot)) {
    // an IPv4-mapped or -compatible tail ("::ffff:192.0.2.1"): two groups
    const p = s.slice(dot + 1).split('.').map(Number);
    s = `${s.slice(0, dot + 1)}${((p[0]! << 8) | p[1]!).toString(16)}:${((p[2]! << 8) | p[3]!).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t].map((g) => parseInt(g || '0', 16));
  for (let i = 0; i < 4; i++) w[i] = ((groups[2 * i]! << 16) | groups[2 * i + 1]!) >>> 0;
  return { v6: true, words: w };
}

/** an address prefix as 4 words and a length */
export interface Prefix {
  words: Uint32Array;
  len: number;
}

export function parsePrefix(s: string): Prefix {
  const [a, l] = s.split('/');
  const { v6, words } = addrToWords(a!);
  return { words, len: l === undefined ? (v6 ? 128 : 32) : Number(l) };
}

/** does address `a` (4 words; IPv4 in word 0) fall in prefix `p`? */
export function inPrefix(a: Uint32Array, p: Prefix, v6: boolean): boolean {
  let left = v6 ? p.len : Math.min(p.len, 32);
  for (let i = 0; left > 0; i++, left -= 32) {
    const mask = left >= 32 ? 0xffffffff : (0xffffffff << (32 - left)) >>> 0;
    if (((a[i]! ^ p.words[i]!) & mask) !== 0) return false;
  }
  return true;
}

/** an address or a prefix given by a user (a filter's `what`): checked, with a one-line error naming it */
export function userPrefix(what: string, s: string): { p: Prefix; v6: boolean } {
  const [a, l, extra] = s.split('/');
  const fam = isIP(a ?? '');
  const len = l === undefined ? (fam === 6 ? 128 : 32) : /^[0-9]{1,3}$/.test(l) ? Number(l) : -1;
  if (extra !== undefined || fam === 0 || len < 0 || len > (fam === 6 ? 128 : 32)) throw new Error(`${what}: expected an address or a prefix like 10.0.0.0/8, got ${JSON.stringify(s)}`);
  return { p: parsePrefix(`${a}/${len}`), v6: fam === 6 };
}
