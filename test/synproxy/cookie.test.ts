import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { COOKIE_BAD, COOKIE_BAD_DATA, COOKIE_OK, COOKIE_STALE, CookieOpts, Cookies, MSS_TABLE, cookieData, mssIndex } from '../../src/synproxy/cookie.js';

const secret = (b: number) => Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + b) & 255);
const SRC = Uint32Array.of(0xc000020a, 0, 0, 0);
const DST = Uint32Array.of(0xc6336401, 0, 0, 0);
const COUNT = 28_333_333;

describe('SYN cookies', () => {
  it('a cookie validates for its tuple and ISN within 4 counter periods, and gives back the options', () => {
    const c = new Cookies(secret(1));
    const k = c.make(false, SRC, DST, 40000, 80, 1000, COUNT, cookieData(2, 7, true, false));
    for (let age = 0; age < 4; age++) {
      const o = new CookieOpts();
      assert.equal(c.check(false, SRC, DST, 40000, 80, 1000, k, COUNT + age, o), COOKIE_OK, `age ${age}`);
      assert.deepEqual([o.mss, o.wscale, o.sack, o.ts], [MSS_TABLE[2], 7, true, false]);
    }
    const o = new CookieOpts();
    assert.equal(c.check(false, SRC, DST, 40000, 80, 1000, k, COUNT + 4, o), COOKIE_STALE, 'after 4 minutes');
    assert.equal(c.check(false, SRC, DST, 40000, 80, 1000, k, COUNT - 1, o), COOKIE_BAD, 'from the future');
  });

  it('rejects another tuple, another ISN, a changed cookie, another secret', () => {
    const c = new Cookies(secret(1));
    const k = c.make(false, SRC, DST, 40000, 80, 1000, COUNT, cookieData(1, -1, false, true));
    const o = new CookieOpts();
    assert.notEqual(c.check(false, SRC, DST, 40001, 80, 1000, k, COUNT, o), COOKIE_OK);
    assert.notEqual(c.check(false, SRC, DST, 40000, 81, 1000, k, COUNT, o), COOKIE_OK);
    assert.notEqual(c.check(false, Uint32Array.of(0xc000020b, 0, 0, 0), DST, 40000, 80, 1000, k, COUNT, o), COOKIE_OK);
    assert.notEqual(c.check(false, SRC, DST, 40000, 80, 1001, k, COUNT, o), COOKIE_OK);
    for (const d of [1, -1, 100, 1 << 14, 3 << 13, 1 << 24]) assert.notEqual(c.check(false, SRC, DST, 40000, 80, 1000, (k + d) >>> 0, COUNT, o), COOKIE_OK, `cookie + ${d}`);
    assert.notEqual(new Cookies(secret(2)).check(false, SRC, DST, 40000, 80, 1000, k, COUNT, o), COOKIE_OK);
  });

  it('rejects an MSS index beyond the table, even with a valid MAC', () => {
    const c = new Cookies(secret(1));
    const o = new CookieOpts();
    for (const bad of [cookieData(4, -1, false, false), cookieData(5, -1, false, false), cookieData(7, 3, true, true)]) {
      const k = c.make(false, SRC, DST, 40000, 80, 1000, COUNT, bad);
      assert.equal(c.check(false, SRC, DST, 40000, 80, 1000, k, COUNT, o), COOKIE_BAD_DATA);
    }
  });

  it('a rotated secret keeps the previous cookies valid for their lifetime only', () => {
    const c = new Cookies(secret(1));
    const k = c.make(false, SRC, DST, 40000, 80, 1000, COUNT, cookieData(0, -1, false, false));
    c.rotate(secret(9), COUNT + 1);
    const o = new CookieOpts();
    assert.equal(c.check(false, SRC, DST, 40000, 80, 1000, k, COUNT + 2, o), COOKIE_OK);
    assert.notEqual(c.check(false, SRC, DST, 40000, 80, 1000, k, COUNT + 5, o), COOKIE_OK);
    const k2 = c.make(false, SRC, DST, 40000, 80, 1000, COUNT + 2, cookieData(0, -1, false, false));
    assert.notEqual(k2, k);
    assert.equal(c.check(false, SRC, DST, 40000, 80, 1000, k2, COUNT + 3, o), COOKIE_OK);
  });

  it('round trip for any IPv4/IPv6 tuple and options; random cookies almost never validate', () => {
    const c = new Cookies(secret(3));
    const word = fc.integer({ min: 0, max: 0xffffffff });
    fc.assert(
      fc.property(fc.boolean(), fc.array(word, { minLength: 8, maxLength: 8 }), fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }), word, word, fc.integer({ min: 0, max: 3 }), fc.integer({ min: -1, max: 14 }), fc.boolean(), fc.boolean(), (v6, w, sp, dp, isn, count, mi, ws, sack, ts) => {
        const s = Uint32Array.from(w.slice(0, 4));
        const d = Uint32Array.from(w.slice(4));
        const k = c.make(v6, s, d, sp, dp, isn, count, cookieData(mi, ws, sack, ts));
        const o = new CookieOpts();
        assert.equal(c.check(v6, s, d, sp, dp, isn, k, (count + 1) >>> 0, o), COOKIE_OK);
        assert.deepEqual([o.mssIndex, o.wscale, o.sack, o.ts], [mi, ws, sack, ts]);
      }),
      { numRuns: 2000 },
    );
    // forged cookies: over 200k guesses for one tuple, the 2^-21 chance each gives ~0.1 hits
    let ok = 0;
    const o = new CookieOpts();
    for (let i = 0; i < 200_000; i++) if (c.check(false, SRC, DST, 40000, 80, 1000, (i * 2654435761) >>> 0, COUNT, o) === COOKIE_OK) ok++;
    assert.ok(ok <= 1, `${ok} forged cookies accepted`);
  });

  it('mssIndex rounds down to the table', () => {
    assert.deepEqual([100, 536, 1299, 1300, 1452, 1460, 9000].map(mssIndex), [0, 0, 0, 1, 2, 3, 3]);
  });
});
