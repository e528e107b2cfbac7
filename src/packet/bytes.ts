/** Big-endian reads and writes on a Uint8Array, without DataView or allocation. */

/**
 * A DataView over exactly the bytes of `b` (same offsets): a 16/32-bit field is then one load and a byte swap.
 * Made once per buffer by its holder (the decoded view, the reader, the writer), never per packet.
 */
export function dataViewOf(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

export function rd16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

export function rd32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

export function wr16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}

export function wr32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

/** Little-endian reads (capture file headers written on little-endian hosts). */
export function rd16le(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}

export function rd32le(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

export function wr16le(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
}

export function wr32le(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
  b[o + 2] = v >>> 16;
  b[o + 3] = v >>> 24;
}

/** Read a 16/32-bit field in the byte order given by `le`. */
export function rdU16(b: Uint8Array, o: number, le: boolean): number {
  return le ? rd16le(b, o) : rd16(b, o);
}

export function rdU32(b: Uint8Array, o: number, le: boolean): number {
  return le ? rd32le(b, o) : rd32(b, o);
}

/** Format an address held as 32-bit words (IPv4 = 1 word, IPv6 = 4 words). Not for the packet path. */
export function formatAddr(words: Uint32Array, version: number): string {
  if (version === 4) {
    const a = words[0]!;
    return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
  }
  const g: number[] = [];
  for (let i = 0; i < 4; i++) {
    const w = words[i]!;
    g.push(w >>> 16, w & 0xffff);
  }
  // RFC 5952: compress the longest run (>= 2) of zero groups
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(':');
  const head = hex.slice(0, bestStart).join(':');
  const tail = hex.slice(bestStart + bestLen).join(':');
  return `${head}::${tail}`;
}

/** Equal addresses in the decoder's word form (one word for IPv4, four for IPv6). */
export function sameAddr(a: Uint32Array, b: Uint32Array, v6: boolean): boolean {
  if (a[0] !== b[0]) return false;
  return !v6 || (a[1] === b[1] && a[2] === b[2] && a[3] === b[3]);
}
