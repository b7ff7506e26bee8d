import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { test } from 'node:test';
import { reproducibleTar } from '../../src/layers/index.ts';

async function hashOf(s: Readable): Promise<{ digest: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of s) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { digest: `sha256:${h.digest('hex')}`, size };
}

// Upstream vector (nix2container nix/tar_test.go, compat-nix.md §5.4): tarring
// `../data/tar-directory` (a 0755 dir holding `file1` = "content file1", 0644, and `symlink` → file1).
test('the nix2container tar test vector is reproduced', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'lading-vector-'));
  const cwd = join(tmp, 'nix');
  const dir = join(tmp, 'data', 'tar-directory');
  await mkdir(cwd);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'file1'), 'content file1');
  await chmod(join(dir, 'file1'), 0o644);
  await symlink('file1', join(dir, 'symlink'));
  await chmod(dir, 0o755);
  const got = await hashOf(reproducibleTar([{ path: '../data/tar-directory' }], { cwd }));
  assert.deepEqual(got, {
    digest: 'sha256:1ea63d00b937dc24c711265b80444cc9e7e63751fb7f349b160be61d31381983',
    size: 4096,
  });
});
