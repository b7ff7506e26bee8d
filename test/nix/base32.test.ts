import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { hasCode } from '../../src/errors/index.ts';
import {
  fromNix32,
  hashSize,
  NIX32_ALPHABET,
  type NixHashAlgo,
  nix32Length,
  toNix32,
} from '../../src/nix/index.ts';
import { nix, nixTry } from '../helpers/nix.ts';

const ALGOS: NixHashAlgo[] = ['md5', 'sha1', 'sha256', 'sha512'];

test('lengths are those of Nix: 26, 32, 52, 103', () => {
  assert.deepEqual(
    ALGOS.map((a) => nix32Length(hashSize(a))),
    [26, 32, 52, 103],
  );
});

test('property: fromNix32(toNix32(b)) === b for every length', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 80 }), (arr) => {
      const s = toNix32(arr);
      assert.equal(s.length, nix32Length(arr.length));
      assert.match(s, /^[0-9a-df-np-sv-z]*$/);
      assert.deepEqual(fromNix32(s, arr.length), Buffer.from(arr));
    }),
    { numRuns: 500 },
  );
});

test('property: a character outside the alphabet is rejected', () => {
  const bad = fc.constantFrom(...'eoutEOUTA-_=+/ .é');
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.nat(51), bad, (arr, at, c) => {
      const s = toNix32(arr);
      const t = s.slice(0, at) + c + s.slice(at + 1);
      assert.throws(
        () => fromNix32(t, 32),
        (e: unknown) => hasCode(e, 'E_BAD_ARGUMENT') && e.message.includes(JSON.stringify(t)),
      );
    }),
  );
});

test('property: the leading character may only carry bits that fit (non-zero overflow is an error)', () => {
  fc.assert(
    fc.property(fc.constantFrom(...ALGOS), fc.nat(31), (algo, digit) => {
      const size = hashSize(algo);
      const len = nix32Length(size);
      const spare = len * 5 - size * 8; // bits of the first character beyond the hash
      const s = NIX32_ALPHABET[digit]! + '0'.repeat(len - 1);
      if (digit < 1 << (5 - spare)) assert.equal(fromNix32(s, size).length, size);
      else
        assert.throws(
          () => fromNix32(s, size),
          (e: unknown) => hasCode(e, 'E_BAD_ARGUMENT'),
        );
    }),
  );
});

test('nix32 equals nix-hash --to-base32 and decodes like --to-base16, for every algorithm', async () => {
  await Promise.all(
    ALGOS.map(async (algo) => {
      const hashes = Array.from({ length: 20 }, () => randomBytes(hashSize(algo)));
      // Include the extremes: all zero and all ones.
      hashes.push(Buffer.alloc(hashSize(algo)), Buffer.alloc(hashSize(algo), 0xff));
      const hex = hashes.map((h) => h.toString('hex'));
      const b32 = (await nix('nix-hash', ['--type', algo, '--to-base32', ...hex])).split('\n');
      assert.deepEqual(
        hashes.map((h) => toNix32(h)),
        b32,
        algo,
      );
      const back = (await nix('nix-hash', ['--type', algo, '--to-base16', ...b32])).split('\n');
      assert.deepEqual(
        b32.map((s) => fromNix32(s, hashSize(algo)).toString('hex')),
        back,
        algo,
      );
    }),
  );
});

test('overflowing leading characters are rejected by Nix exactly where we reject them', async () => {
  const cases: [NixHashAlgo, string][] = [
    ['sha256', '1'],
    ['sha256', '2'],
    ['md5', '7'],
    ['md5', '8'],
    ['sha512', '3'],
    ['sha512', '4'],
  ];
  await Promise.all(
    cases.map(async ([algo, first]) => {
      const size = hashSize(algo);
      const s = first + '0'.repeat(nix32Length(size) - 1);
      const theirs = await nixTry('nix-hash', ['--type', algo, '--to-base16', s]);
      let ours: string | undefined;
      try {
        ours = fromNix32(s, size).toString('hex');
      } catch {
        ours = undefined;
      }
      assert.equal(ours !== undefined, theirs.code === 0, `${algo} ${s}: nix says ${theirs.stderr}`);
      if (ours !== undefined) assert.equal(ours, theirs.stdout);
    }),
  );
});
