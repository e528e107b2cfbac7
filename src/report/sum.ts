/**
 * Several engines' answers as one (replay lanes' results, live workers' replies): numbers added field by
 * field, lists and objects merged by place and key.
 */

/** numbers summed, strings and flags kept from the first, lists and objects merged by place and key; `keep`: keys not summed */
export function sumInto(a: unknown, b: unknown, keep: ReadonlySet<string>): unknown {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (Array.isArray(a) && Array.isArray(b)) return a.map((x, i) => (i < b.length ? sumInto(x, b[i], keep) : x)).concat(b.slice(a.length));
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    const o: Record<string, unknown> = { ...(a as Record<string, unknown>) };
    for (const [k, v] of Object.entries(b as Record<string, unknown>)) o[k] = k in o ? (keep.has(k) ? o[k] : sumInto(o[k], v, keep)) : v;
    return o;
  }
  return a === undefined ? b : a;
}
