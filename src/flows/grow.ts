/** Typed arrays that grow: a copy with more room, and the power-of-two sizes hash buckets take. */
export type Row = Int32Array | Uint32Array | Uint8Array | Float64Array;

/** a copy of `a` in an array of the same type with room for n */
export function grown<T extends Row>(a: T, n: number): T {
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}

/** the least power of two >= n (16 at least) */
export function pow2(n: number): number {
  let p = 16;
  while (p < n) p *= 2;
  return p;
}
