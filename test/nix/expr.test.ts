import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { hasCode } from '../../src/errors/index.ts';
import { nixAttrName, nixAttrs, nixExpr, nixString, nixValue } from '../../src/nix/index.ts';
import { nix } from '../helpers/nix.ts';

const evalJson = async (expr: string): Promise<unknown> =>
  JSON.parse(await nix('nix-instantiate', ['--eval', '--strict', '--json', '--expr', expr]));

test('nixString round-trips awkward strings through nix-instantiate --eval', async () => {
  const samples = [
    '',
    'plain',
    'quote " and \\ backslash',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${ is what is tested
    '${interp} and $x and $${y} and $$',
    '${',
    '$',
    '\\${',
    '\\',
    '$\\',
    'end with $',
    "''",
    "''${",
    'line\nbreak\ttab\rcr\r\n',
    'ünï ☃ 𝄞',
    '\u0001\u001f\u007f',
  ];
  assert.deepEqual(await evalJson(`[ ${samples.map(nixString).join(' ')} ]`), samples);
});

test('property: random strings survive nix-instantiate (a few batched evaluations)', async () => {
  // Weighted towards the characters that need escaping, plus any Unicode except NUL.
  const tricky = fc.string({
    unit: fc.constantFrom('$', '{', '}', '\\', '"', "'", '\n', '\r', '\t', ' ', 'a'),
    maxLength: 12,
  });
  const anyText = fc.string({ unit: 'binary', maxLength: 16 }).filter((s) => !s.includes('\0'));
  const arb = fc.oneof(
    tricky,
    anyText,
    fc.tuple(tricky, anyText).map(([a, b]) => a + b),
  );
  for (let batch = 0; batch < 4; batch++) {
    const strings = fc.sample(arb, 100);
    assert.deepEqual(await evalJson(`[ ${strings.map(nixString).join(' ')} ]`), strings);
  }
});

test('nixAttrs prints a 2-space-indented attrset, quoting names that need it', () => {
  const out = nixAttrs(
    {
      imageName: 'a"b',
      'odd-key': 1,
      'with space': true,
      in: 'keyword',
      '1st': null,
      skipped: undefined,
      list: ['x', nixExpr('f x')],
      nested: { a: {} },
    },
    1,
  );
  assert.equal(
    out,
    [
      '{',
      '    imageName = "a\\"b";',
      '    odd-key = 1;',
      '    "with space" = true;',
      '    "in" = "keyword";',
      '    "1st" = null;',
      '    list = [',
      '      "x"',
      '      (f x)',
      '    ];',
      '    nested = {',
      '      a = { };',
      '    };',
      '  }',
    ].join('\n'),
  );
  assert.equal(nixAttrName("x_y'-1"), "x_y'-1");
  assert.equal(nixAttrName('a.b'), '"a.b"');
  assert.equal(nixAttrName(''), '""');
});

test('nixValue output parses back in Nix to the same JSON', async () => {
  const v = {
    imageName: 'a"b',
    'odd-key': 1,
    'with space': true,
    if: 'rec',
    '${x}': 'interp key',
    list: ['x', null, -1, [], {}],
    nested: { in: 'rec', n: -42, big: 9007199254740991, f: 1.5, neg: -0.25 },
  };
  assert.deepEqual(await evalJson(nixValue(v)), v);
  const ints = [2n ** 63n - 1n, -(2n ** 63n), -1n, 0n];
  assert.deepEqual(await evalJson(`map builtins.toString ${nixValue(ints)}`), ints.map(String));
  // Floats in exponent form are written so Nix parses them.
  const floats = [1e-7, 1.25e-15, -2.5e-10, 0.5];
  const back = (await evalJson(nixValue(floats))) as number[];
  for (const [i, f] of floats.entries())
    assert.ok(Math.abs(back[i]! - f) <= Math.abs(f) * 1e-6, `${f} vs ${back[i]}`);
  assert.deepEqual(await evalJson(nixValue({ ok: nixExpr('builtins.toString 42') })), { ok: '42' });
});

test('numbers Nix cannot hold are errors', () => {
  for (const n of [Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60, 2n ** 63n])
    assert.throws(
      () => nixValue(n),
      (e: unknown) => hasCode(e, 'E_BAD_ARGUMENT'),
      String(n),
    );
});
