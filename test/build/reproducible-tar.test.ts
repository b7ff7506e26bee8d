import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { test } from 'node:test';
import { reproducibleTar } from '../../src/layers/index.ts';
import { run } from '../helpers/bins.ts';

async function hashOf(s: Readable): Promise<{ digest: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of s) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { digest: `sha256:${h.digest('hex')}`, size };
}

// Upstream vector (nix2container nix/tar_test.go): tarring
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

// Upstream vectors (nlewo/nix2container@20d33959 nix/layers_test.go, TestNewLayers and TestPerms):
// the single file `../data/layer1/file1` (empty, 0644 as git checks it out), without perms and with
// `{ regex: ".*file1", mode: "0641" }` (uid/gid their Go zero values).
test('the nix2container layer test vectors are reproduced, with and without perms', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'lading-vector-'));
  const cwd = join(tmp, 'nix');
  await mkdir(cwd);
  await mkdir(join(tmp, 'data', 'layer1'), { recursive: true });
  await writeFile(join(tmp, 'data', 'layer1', 'file1'), '');
  await chmod(join(tmp, 'data', 'layer1', 'file1'), 0o644);
  const plain = await hashOf(reproducibleTar([{ path: '../data/layer1/file1' }], { cwd }));
  assert.deepEqual(plain, {
    digest: 'sha256:cc45bd46eca903b0900ebb997dffd5778904dca9ec02e7375dd1e653dfb61e2e',
    size: 3072,
  });
  const perms = await hashOf(
    reproducibleTar(
      [
        {
          path: '../data/layer1/file1',
          options: {
            perms: [{ regex: '.*file1', mode: 0o641, uid: 0, gid: 0, uname: '', gname: '' }],
            permsStyle: 'nix2container',
          },
        },
      ],
      { cwd },
    ),
  );
  assert.deepEqual(perms, {
    digest: 'sha256:adf74a52f9e1bcd7dab77193455fa06743b979cf5955148010e5becedba4f72d',
    size: 3072,
  });
});

test('two inputs with one destination: the later one is written (as nix2container does)', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'lading-dup-'));
  for (const [d, text] of [
    ['a', 'from a\n'],
    ['b', 'from b\n'],
  ] as const) {
    await mkdir(join(tmp, d, 'etc'), { recursive: true });
    await writeFile(join(tmp, d, 'etc', 'motd'), text);
  }
  const layer = async (order: string[]) => {
    const file = join(tmp, `${order.join('')}.tar`);
    const paths = order.map((d) => ({
      path: join(tmp, d),
      options: { rewrite: { regex: `^${join(tmp, d)}`, repl: '' } },
    }));
    const parts: Buffer[] = [];
    for await (const c of reproducibleTar(paths)) parts.push(c as Buffer);
    await writeFile(file, Buffer.concat(parts));
    return (await run('tar', ['-xOf', file, '/etc/motd'])).stdout.toString();
  };
  assert.equal(await layer(['a', 'b']), 'from b\n');
  assert.equal(await layer(['b', 'a']), 'from a\n');
  // A different size for the same name is refused, naming both sources.
  await writeFile(join(tmp, 'b', 'etc', 'motd'), 'longer, from b\n');
  await assert.rejects(async () => {
    for await (const _ of reproducibleTar([
      { path: join(tmp, 'a'), options: { rewrite: { regex: `^${join(tmp, 'a')}`, repl: '' } } },
      { path: join(tmp, 'b'), options: { rewrite: { regex: `^${join(tmp, 'b')}`, repl: '' } } },
    ]));
  }, /b\/etc\/motd and .*a\/etc\/motd both go to \/etc\/motd/);
});
