import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseDigest, sha256 } from '../../src/digest/index.ts';
import { hasCode } from '../../src/errors/index.ts';
import {
  formatNixHash,
  fromDigest,
  hashSize,
  NIX_HASH_ALGOS,
  type NixHash,
  type NixHashAlgo,
  type NixHashFormat,
  nixHashEquals,
  parseNixHash,
  toBase64,
  toDigest,
  toHex,
  toNix32,
  toSri,
} from '../../src/nix/index.ts';
import { nix, nixTry } from '../helpers/nix.ts';

const FORMATS: NixHashFormat[] = ['sri', 'nix32', 'base16', 'base64'];

const anyHash = fc
  .constantFrom(...NIX_HASH_ALGOS)
  .chain((algo) =>
    fc
      .uint8Array({ minLength: hashSize(algo), maxLength: hashSize(algo) })
      .map((b): NixHash => ({ algo, bytes: Buffer.from(b) })),
  );

test('property: every format, with and without the algorithm, parses back to the same hash', () => {
  fc.assert(
    fc.property(anyHash, fc.constantFrom(...FORMATS), (h, fmt) => {
      assert.ok(nixHashEquals(parseNixHash(formatNixHash(h, fmt, { includeAlgo: true })), h));
      assert.ok(nixHashEquals(parseNixHash(formatNixHash(h, fmt), h.algo), h));
      if (fmt === 'base16')
        assert.ok(nixHashEquals(parseNixHash(formatNixHash(h, fmt).toUpperCase(), h.algo), h));
    }),
    { numRuns: 400 },
  );
});

test('formatters agree with each other', () => {
  const h: NixHash = { algo: 'sha256', bytes: randomBytes(32) };
  assert.equal(formatNixHash(h, 'sri'), toSri(h));
  assert.equal(formatNixHash(h, 'sri', { includeAlgo: true }), toSri(h));
  assert.equal(formatNixHash(h, 'nix32'), toNix32(h.bytes));
  assert.equal(formatNixHash(h, 'base16', { includeAlgo: true }), `sha256:${toHex(h)}`);
  assert.equal(formatNixHash(h, 'base64'), toBase64(h));
  assert.equal(toSri(h), `sha256-${toBase64(h)}`);
});

test('SRI, nix32 and base16 equal what nix hash to-sri / to-base32 / to-base16 print', async () => {
  await Promise.all(
    NIX_HASH_ALGOS.map(async (algo) => {
      const hs = Array.from({ length: 10 }, (): NixHash => ({ algo, bytes: randomBytes(hashSize(algo)) }));
      const hex = hs.map(toHex);
      const [sri, b32, b16] = await Promise.all([
        nix('nix', ['hash', 'to-sri', '--type', algo, ...hex]),
        nix('nix', ['hash', 'to-base32', '--type', algo, ...hex]),
        nix('nix', ['hash', 'to-base16', ...hs.map(toSri)]),
      ]);
      assert.deepEqual(hs.map(toSri), sri.split('\n'), algo);
      assert.deepEqual(
        hs.map((h) => formatNixHash(h, 'nix32')),
        b32.split('\n'),
        algo,
      );
      assert.deepEqual(hex, b16.split('\n'), algo);
    }),
  );
});

test('parseNixHash accepts and rejects what Nix accepts and rejects', async () => {
  const h: NixHash = { algo: 'sha256', bytes: randomBytes(32) };
  const b64 = toBase64(h);
  const inputs: [string, NixHashAlgo | undefined][] = [
    [toSri(h), undefined],
    [`sha256-${b64.replace(/=+$/, '')}`, undefined], // SRI without padding
    [`sha256:${b64}`, undefined],
    [`sha256:${toHex(h).toUpperCase()}`, undefined],
    [`sha256:${toNix32(h.bytes)}`, undefined],
    [toNix32(h.bytes), 'sha256'],
    [toHex(h), 'sha256'],
    [b64, 'sha256'],
    [`sha256:${b64.replace(/=+$/, '')}`, undefined], // algo: base64 needs its padding
    [`sha256:${toHex(h).slice(2)}`, undefined],
    [`sha256:${toNix32(h.bytes).replace(/./, 'e')}`, undefined],
    [`sha257:${toHex(h)}`, undefined],
    [`sha256-${toHex(h)}`, undefined], // SRI is base64 only
    [`md5-${b64}`, undefined],
    [toSri(h), 'sha512'],
  ];
  await Promise.all(
    inputs.map(async ([s, hint]) => {
      const theirs = await nixTry('nix', ['hash', 'to-base16', ...(hint ? ['--type', hint] : []), s]);
      let ours: string | undefined;
      try {
        ours = toHex(parseNixHash(s, hint));
      } catch (e) {
        assert.ok(hasCode(e, 'E_BAD_ARGUMENT'), String(e));
        assert.ok((e as Error).message.includes(JSON.stringify(s)), (e as Error).message);
      }
      assert.equal(ours !== undefined, theirs.code === 0, `${s} (${hint}): nix: ${theirs.stderr.trim()}`);
      if (ours !== undefined) assert.equal(ours, theirs.stdout, s);
    }),
  );
});

test('bare hashes need an algorithm; errors are E_BAD_ARGUMENT naming the input', () => {
  for (const s of [
    '',
    'abc',
    'sha256',
    'sha256:',
    'sha256-',
    'md4:00',
    'x'.repeat(64),
    `${'e'.repeat(52)}`,
  ]) {
    assert.throws(
      () => parseNixHash(s),
      (e: unknown) => hasCode(e, 'E_BAD_ARGUMENT') && e.message.includes(JSON.stringify(s)),
      s,
    );
  }
});

test('OCI digests convert both ways', () => {
  const d = sha256('lading');
  const h = fromDigest(d);
  assert.equal(h.algo, 'sha256');
  assert.equal(`sha256:${toHex(h)}`, d);
  assert.equal(toDigest(h), d);
  const d512 = parseDigest(`sha512:${randomBytes(64).toString('hex')}`);
  assert.equal(toDigest(fromDigest(d512)), d512);
  assert.equal(fromDigest(d512).bytes.length, 64);
  assert.throws(
    () => toDigest({ algo: 'md5', bytes: randomBytes(16) }),
    (e: unknown) => hasCode(e, 'E_BAD_ARGUMENT'),
  );
});
