/**
 * SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast short-input PRF", 2012) over 32-bit words, as the
 * Linux kernel keys its SYN cookies (net/ipv4/syncookies.c, siphash_4u32). 64-bit lanes are kept as pairs
 * of 32-bit halves kept as int32 (carries from bit operations, not unsigned compares, so V8 never leaves
 * small-integer arithmetic) and nothing allocates; the message is a run of 32-bit words taken as little-endian bytes
 * (word w = bytes w & 0xff, w >> 8 & 0xff, ...), which is how the reference implementation reads them.
 */

/** a 128-bit key as four little-endian 32-bit words: k0 = (key[0], key[1]), k1 = (key[2], key[3]) */
export type SipKey = Uint32Array;

/** the high half of the last result (the low half is returned) */
export let sipHi = 0;

/**
 * SipHash-2-4 of `n` 32-bit words of `m` under `key`: returns the low 32 bits of the 64-bit tag and leaves
 * the high 32 bits in `sipHi`.
 */
export function siphash(key: SipKey, m: Uint32Array, n: number): number {
  const k0l = key[0]!;
  const k0h = key[1]!;
  const k1l = key[2]!;
  const k1h = key[3]!;
  // v0 = k0 ^ "somepseu", v1 = k1 ^ "dorandom", v2 = k0 ^ "lygenera", v3 = k1 ^ "tedbytes"
  let v0l = (k0l ^ 0x70736575) | 0;
  let v0h = (k0h ^ 0x736f6d65) | 0;
  let v1l = (k1l ^ 0x6e646f6d) | 0;
  let v1h = (k1h ^ 0x646f7261) | 0;
  let v2l = (k0l ^ 0x6e657261) | 0;
  let v2h = (k0h ^ 0x6c796765) | 0;
  let v3l = (k1l ^ 0x79746573) | 0;
  let v3h = (k1h ^ 0x74656462) | 0;
  let t = 0;
  let ml = 0;
  let mh = 0;
  // blocks of 8 bytes (two words), then the last block (the remaining word, if any, and the length byte),
  // each through 2 rounds; then finalisation: 4 rounds
  const full = n >>> 1;
  for (let blk = 0; blk <= full + 1; blk++) {
    let rounds = 2;
    if (blk < full) {
      ml = m[2 * blk]!;
      mh = m[2 * blk + 1]!;
    } else if (blk === full) {
      ml = n & 1 ? m[n - 1]! : 0;
      mh = ((n * 4) & 0xff) << 24;
    } else {
      ml = 0;
      mh = 0;
      v2l = (v2l ^ 0xff) | 0;
      rounds = 4;
    }
    v3l = (v3l ^ ml) | 0;
    v3h = (v3h ^ mh) | 0;
    for (let r = 0; r < rounds; r++) {
      // SipRound
      t = (v0l + v1l) | 0;
      v0h = (v0h + v1h + (((v0l & v1l) | ((v0l | v1l) & ~t)) >>> 31)) | 0;
      v0l = t;
      t = ((v1l << 13) | (v1h >>> 19)) | 0;
      v1h = ((v1h << 13) | (v1l >>> 19)) | 0;
      v1l = (t ^ v0l) | 0;
      v1h = (v1h ^ v0h) | 0;
      t = v0l;
      v0l = v0h;
      v0h = t;
      t = (v2l + v3l) | 0;
      v2h = (v2h + v3h + (((v2l & v3l) | ((v2l | v3l) & ~t)) >>> 31)) | 0;
      v2l = t;
      t = ((v3l << 16) | (v3h >>> 16)) | 0;
      v3h = ((v3h << 16) | (v3l >>> 16)) | 0;
      v3l = (t ^ v2l) | 0;
      v3h = (v3h ^ v2h) | 0;
      t = (v0l + v3l) | 0;
      v0h = (v0h + v3h + (((v0l & v3l) | ((v0l | v3l) & ~t)) >>> 31)) | 0;
      v0l = t;
      t = ((v3l << 21) | (v3h >>> 11)) | 0;
      v3h = ((v3h << 21) | (v3l >>> 11)) | 0;
      v3l = (t ^ v0l) | 0;
      v3h = (v3h ^ v0h) | 0;
      t = (v2l + v1l) | 0;
      v2h = (v2h + v1h + (((v2l & v1l) | ((v2l | v1l) & ~t)) >>> 31)) | 0;
      v2l = t;
      t = ((v1l << 17) | (v1h >>> 15)) | 0;
      v1h = ((v1h << 17) | (v1l >>> 15)) | 0;
      v1l = (t ^ v2l) | 0;
      v1h = (v1h ^ v2h) | 0;
      t = v2l;
      v2l = v2h;
      v2h = t;
    }
    v0l = (v0l ^ ml) | 0;
    v0h = (v0h ^ mh) | 0;
  }
  sipHi = (v0h ^ v1h ^ v2h ^ v3h) >>> 0;
  return (v0l ^ v1l ^ v2l ^ v3l) >>> 0;
}
