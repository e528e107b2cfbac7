import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { ConnTable, TupleKey } from '../../src/conntrack/table.js';

interface T {
  v6: boolean;
  s: number[];
  d: number[];
  sp: number;
  dp: number;
  p: number;
}

function key(t: T, reverse = false): TupleKey {
  const k = new TupleKey();
  k.v6 = t.v6;
  const s = reverse ? t.d : t.s;
  const d = reverse ? t.s : t.d;
  for (let i = 0; i < 4; i++) {
    k.src[i] = t.v6 ? s[i]! : i === 0 ? s[0]! : 0;
    k.dst[i] = t.v6 ? d[i]! : i === 0 ? d[0]! : 0;
  }
  k.proto = t.p;
  if (t.p === 1) {
    // ICMP: sport = id, dport = type << 8 | code; the reply carries the inverted type
    k.sport = t.sp;
    k.dport = reverse ? 0 << 8 : 8 << 8;
  } else {
    k.sport = reverse ? t.dp : t.sp;
    k.dport = reverse ? t.sp : t.dp;
  }
  return k;
}

/** model identity of a tuple: exactly the fields the key carries */
const name = (t: T) => {
  const k = key(t);
  return `${k.v6}|${[...k.src].join('.')}|${[...k.dst].join('.')}|${k.sport}|${k.dport}|${k.proto}`;
};

// a small domain so that tuples collide, repeat, and are each other's reverse
const tupleArb: fc.Arbitrary<T> = fc.record({
  v6: fc.boolean(),
  s: fc.array(fc.constantFrom(1, 2, 0xffffffff), { minLength: 4, maxLength: 4 }),
  d: fc.array(fc.constantFrom(1, 2, 0x80000000), { minLength: 4, maxLength: 4 }),
  sp: fc.constantFrom(1, 80, 65535),
  dp: fc.constantFrom(1, 80, 443),
  p: fc.constantFrom(6, 17, 1),
});

describe('connection table', function () {
  it('insert/lookup/delete/evict agree with a Map model, both directions (fast-check)', function () {
    type Op = { k: 'ins' | 'del' | 'get'; t: T } | { k: 'evict' };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      { weight: 5, arbitrary: fc.record({ k: fc.constant('ins' as const), t: tupleArb }) },
      { weight: 2, arbitrary: fc.record({ k: fc.constant('del' as const), t: tupleArb }) },
      { weight: 3, arbitrary: fc.record({ k: fc.constant('get' as const), t: tupleArb }) },
      { weight: 1, arbitrary: fc.record({ k: fc.constant('evict' as const) }) },
    );
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 200 }), fc.nat(), (ops, seed) => {
        const cap = 24;
        const tb = new ConnTable(cap, seed, 16);
        const model = new Map<string, { h: number; t: T }>(); // original tuple name → handle
        const byHandle = new Map<number, string>();
        const findModel = (t: T): [number, number] => {
          // a tuple matches a connection's original tuple (dir 0) or its reply tuple (dir 1)
          const m = model.get(name(t));
          if (m) return [m.h, 0];
          for (const { h, t: o } of model.values()) {
            const r = key(o, true);
            const k = key(t);
            if (r.proto === k.proto && r.v6 === k.v6 && r.sport === k.sport && r.dport === k.dport && r.src.every((x, i) => x === k.src[i]) && r.dst.every((x, i) => x === k.dst[i])) return [h, 1];
          }
          return [-1, 0];
        };
        for (const o of ops) {
          if (o.k === 'evict') {
            const victims = [...byHandle.keys()];
            const k = key({ v6: false, s: [1, 0, 0, 0], d: [2, 0, 0, 0], sp: 1, dp: 1, p: 6 });
            tb.hashKey(k);
            const v = tb.findEvictable(k.hash, 1 << 20, (c) => c % 2 === 0);
            const want = victims.some((c) => c % 2 === 0);
            assert.equal(v >= 0, want);
            if (v >= 0) {
              assert.ok(byHandle.has(v));
              model.delete(byHandle.get(v)!);
              byHandle.delete(v);
              tb.remove(v);
            }
            continue;
          }
          const k = key(o.t);
          tb.hashKey(k);
          const e = tb.lookup(k);
          const [mh, mdir] = findModel(o.t);
          assert.equal(e, mh < 0 ? -1 : mh * 2 + mdir, `lookup ${name(o.t)}`);
          if (o.k === 'ins' && e < 0) {
            const c = tb.alloc();
            if (model.size >= cap) {
              assert.equal(c, -1, 'full table gives no handle');
              continue;
            }
            assert.ok(c >= 0 && !byHandle.has(c));
            tb.insert(c, k);
            model.set(name(o.t), { h: c, t: o.t });
            byHandle.set(c, name(o.t));
            // both directions find it now
            const r = key(o.t, true);
            tb.hashKey(r);
            const er = tb.lookup(r);
            assert.ok(er === c * 2 + 1 || er === c * 2, 'reply tuple resolves to the same connection');
          } else if (o.k === 'del' && e >= 0) {
            const c = e >>> 1;
            tb.remove(c);
            model.delete(byHandle.get(c)!);
            byHandle.delete(c);
          }
          assert.equal(tb.count, model.size);
        }
        // every remaining connection is still found from both sides
        for (const { h, t } of model.values()) {
          const k = key(t);
          tb.hashKey(k);
          assert.equal(tb.lookup(k) >>> 1, h);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('a tuple equal to its own reverse resolves to the original direction', function () {
    const tb = new ConnTable(8, 99, 16);
    const k = new TupleKey();
    k.proto = 17;
    k.src[0] = k.dst[0] = 0x0a000001;
    k.sport = k.dport = 5353;
    tb.hashKey(k);
    const c = tb.alloc();
    tb.insert(c, k);
    assert.equal(tb.lookup(k), c * 2);
  });

  it('grows its index incrementally: 200k connections, every one found, several rehashes', function () {
    const n = 200_000;
    const tb = new ConnTable(n, 12345, 16);
    const k = new TupleKey();
    k.proto = 6;
    for (let i = 0; i < n; i++) {
      k.src[0] = 0x0a000000 + i;
      k.dst[0] = 0xc0a80001;
      k.sport = i & 0xffff;
      k.dport = 80;
      tb.hashKey(k);
      const c = tb.alloc();
      tb.insert(c, k);
    }
    assert.ok(tb.rehashes >= 10, `rehashes ${tb.rehashes}`);
    assert.ok(tb.bucketCount >= n / 2);
    for (let i = 0; i < n; i += 997) {
      k.src[0] = 0xc0a80001;
      k.dst[0] = 0x0a000000 + i;
      k.sport = 80;
      k.dport = i & 0xffff;
      tb.hashKey(k);
      assert.equal(tb.lookup(k), i * 2 + 1);
    }
  });
});
