import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { nixString, sanitizeDerivationName } from '../../src/nix/index.ts';
import { nix } from '../helpers/nix.ts';

const UPSTREAM = join(import.meta.dirname, '../pin/upstream');

test('sanitizeDerivationName equals the Nix one (regex, split, last 207 characters) on random names', async () => {
  const names = fc.sample(
    fc.oneof(
      fc.stringMatching(/^[a-z0-9.:/_?=+@ -]{0,40}$/),
      fc.stringMatching(/^[a-z0-9.:/-]{200,260}$/),
      fc.constantFrom('', '.', '..', '...a', 'a'.repeat(207), 'a'.repeat(208), `.${'b'.repeat(210)}`),
    ),
    { numRuns: 300, seed: 14 },
  );
  const expr = `let lib = (import ${UPSTREAM} { }).lib; in builtins.toJSON (map lib.sanitizeDerivationName [ ${names.map(nixString).join(' ')} ])`;
  const got = JSON.parse(JSON.parse(await nix('nix-instantiate', ['--eval', '--expr', expr])));
  assert.deepEqual(
    names.map((n) => sanitizeDerivationName(n)),
    got,
  );
  // And derivations accept every result as a name.
  const drv = `builtins.length (map (n: (derivation { name = n; builder = "x"; system = "x"; }).drvPath) (builtins.fromJSON ${nixString(JSON.stringify(got))}))`;
  assert.equal(await nix('nix-instantiate', ['--eval', '--expr', drv]), String(names.length));
});
