import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { type GoJson, goField, goTime, parseGoJson } from '../../src/copy/go-decode.ts';

const plain = (j: GoJson): unknown => {
  switch (j.t) {
    case 'null':
      return null;
    case 'bool':
    case 'str':
      return j.v;
    case 'num':
      return Number(j.v);
    case 'arr':
      return j.v.map(plain);
    case 'obj':
      return Object.fromEntries(j.v.map(([k, v]) => [k, plain(v)]));
  }
};

test('parseGoJson reads what JSON.parse reads, keeping key order', () => {
  fc.assert(
    fc.property(fc.json(), (text) => {
      assert.deepEqual(plain(parseGoJson(text, 'x')), JSON.parse(text));
    }),
  );
});

test('parseGoJson refuses what JSON.parse refuses', () => {
  fc.assert(
    fc.property(fc.string(), (text) => {
      let ok = true;
      try {
        JSON.parse(text);
      } catch {
        ok = false;
      }
      if (!ok) assert.throws(() => parseGoJson(text, 'x'), { code: 'E_MANIFEST_INVALID' });
    }),
  );
});

test('repeated keys are kept in order; a lone surrogate becomes U+FFFD as Go decodes it', () => {
  const j = parseGoJson('{"a":1,"A":2,"a":"\\ud800"}', 'x');
  assert.deepEqual(j, {
    t: 'obj',
    v: [
      ['a', { t: 'num', v: '1' }],
      ['A', { t: 'num', v: '2' }],
      ['a', { t: 'str', v: '\ufffd' }],
    ],
  });
});

test('Go field matching: exact first, then case-insensitive (K and ſ fold to k and s)', () => {
  assert.equal(goField(['os', 'OS'], 'OS'), 'OS');
  assert.equal(goField(['architecture'], 'ARCHITECTURE'), 'architecture');
  assert.equal(goField(['Kind'], '\u212aind'), 'Kind');
  assert.equal(goField(['StopSignal'], '\u017ftopSignal'), 'StopSignal');
  assert.equal(goField(['Labels'], 'Label'), undefined);
});

test('goTime: Go re-encoding of RFC 3339 times, refusing what time.Parse refuses', () => {
  assert.equal(goTime('2024-01-02T03:04:05.100000000+00:00'), '2024-01-02T03:04:05.1Z');
  assert.equal(goTime('2024-01-02T03:04:05.1234567891Z'), '2024-01-02T03:04:05.123456789Z');
  assert.equal(goTime('1960-02-29T00:00:00-05:30'), '1960-02-29T00:00:00-05:30');
  assert.equal(goTime('2023-02-29T00:00:00Z'), undefined);
  assert.equal(goTime('2023-01-01 00:00:00Z'), undefined);
  assert.equal(goTime('2023-01-01T24:00:00Z'), undefined);
});

test("numbers of any length parse (Go keeps an unknown field's number as it skips it)", () => {
  const n = `1${'0'.repeat(1000)}.5e-3`;
  assert.deepEqual(parseGoJson(`{"x":${n}}`, 'x'), { t: 'obj', v: [['x', { t: 'num', v: n }]] });
});
