import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { nix } from '../helpers/nix.ts';

const root = join(import.meta.dirname, '..', '..');

test('default.nix and flake.nix parse with nix-instantiate', async () => {
  for (const f of ['default.nix', 'flake.nix']) {
    const out = await nix('nix-instantiate', ['--parse', join(root, f)]);
    assert.ok(out.length > 0, f);
  }
});
