import assert from 'node:assert/strict';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { removeAtExit, requireBin, run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type BuiltLayout, buildLayout, whiteout } from '../helpers/images.ts';

// A hardlink whose other name an upper layer deleted still has its content (umoci, podman,
// unpack and export all give it); a symlink whose target is missing is named as a symlink.

let image: BuiltLayout;
let work: string;
const env = () => ({ HOME: '/nonexistent', PATH: process.env.PATH });

before(async () => {
  image = await buildLayout({
    layers: [
      {
        entries: [
          { path: 'etc/', type: 'directory' },
          { path: 'etc/original', content: 'the shared content\n', mode: 0o640 },
          { path: 'etc/linked', type: 'link', linkname: 'etc/original', mode: 0o640 },
          { path: 'etc/again', type: 'link', linkname: 'etc/linked', mode: 0o640 },
          { path: 'etc/kept', content: 'kept\n', mode: 0o640 },
          { path: 'etc/kept-link', type: 'link', linkname: 'etc/kept', mode: 0o640 },
          { path: 'bin/', type: 'directory' },
          { path: 'bin/dangling', type: 'symlink', linkname: '/opt/nowhere/tool' },
          { path: 'bin/to-deleted', type: 'symlink', linkname: '../etc/original' },
          { path: 'lib64', type: 'symlink', linkname: 'usr/lib64' },
        ],
      },
      // The upper layer deletes the name the link was made to, and replaces another file.
      { entries: [whiteout('etc/original'), { path: 'etc/kept', content: 'replaced\n' }] },
    ],
  });
  work = await mkdtemp(join(tmpdir(), 'lading-extract-links-'));
  removeAtExit(work);
});

test('a hardlink whose other name an upper layer deleted comes out with the content umoci gives it', async () => {
  const bundle = join(work, 'bundle');
  await run(requireBin('umoci'), ['unpack', '--rootless', '--image', `${image.dir}:${image.tag}`, bundle]);
  assert.equal((await readFile(join(bundle, 'rootfs/etc/linked'))).toString(), 'the shared content\n');
  // A link to a name an upper layer replaced keeps the content it was made with.
  assert.equal((await readFile(join(bundle, 'rootfs/etc/kept-link'))).toString(), 'kept\n');
  for (const path of ['/etc/linked', '/etc/again', '/etc/kept-link']) {
    const out = join(work, path.split('/').pop()!);
    const expected = await readFile(join(bundle, 'rootfs', path));
    const r = await runCli(['extract', '--no-cache', `oci:${image.dir}:${image.tag}`, path, '-o', out], {
      env: env(),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await readFile(out), expected, path);
    assert.equal((await stat(out)).mode & 0o777, 0o640);
  }
  // unpack of the same image agrees.
  const rootfs = join(work, 'rootfs');
  const u = await runCli(['unpack', '--no-cache', `oci:${image.dir}:${image.tag}`, rootfs], { env: env() });
  assert.equal(u.code, 0, u.stderr);
  assert.deepEqual(
    await readFile(join(rootfs, 'etc/linked')),
    await readFile(join(bundle, 'rootfs/etc/linked')),
  );
});

test('a dangling symlink: the link is named as there and its target as missing', async () => {
  for (const [path, message] of [
    [
      '/bin/dangling',
      '/bin/dangling is in the image as a symlink (/bin/dangling -> /opt/nowhere/tool), but /opt/nowhere/tool is not (not in any layer): a dangling link has no content to extract',
    ],
    [
      '/bin/to-deleted',
      '/bin/to-deleted is in the image as a symlink (/bin/to-deleted -> ../etc/original), but its target is not (etc/original was deleted): a dangling link has no content to extract',
    ],
    [
      '/lib64/ld.so',
      '/lib64/ld.so leads through the symlink /lib64 -> usr/lib64, and /usr/lib64/ld.so is not in the image (not in any layer)',
    ],
    ['/etc/original', '/etc/original is not in the image (etc/original was deleted)'],
  ] as const) {
    const r = await runCli(
      ['extract', '--no-cache', `oci:${image.dir}:${image.tag}`, path, '-o', join(work, 'x')],
      { env: env() },
    );
    assert.equal(r.code, 4, r.stderr);
    assert.equal(r.stderr, `lading: error: ${message}\n`);
  }
});

test('a hardlink out of the root or to the root is refused by name, as unpack refuses it', async () => {
  const hostile = await buildLayout({
    layers: [
      {
        entries: [
          { path: 'etc/', type: 'directory' },
          { path: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n' },
          { path: 'etc/up', type: 'link', linkname: '../etc/passwd' },
          { path: 'etc/out', type: 'link', linkname: '../../../../etc/shadow' },
          { path: 'etc/root', type: 'link', linkname: '/' },
        ],
      },
    ],
  });
  const rootfs = join(work, 'hostile-rootfs');
  const u = await runCli(['unpack', '--no-cache', `oci:${hostile.dir}:${hostile.tag}`, rootfs], {
    env: env(),
  });
  // unpack refuses the three entries (exit status 7) and names them.
  assert.equal(u.code, 7, u.stderr);
  assert.match(u.stderr, /3 unsafe entries were refused .*: etc\/up, etc\/out, etc\/root/);
  for (const name of ['up', 'out', 'root']) {
    await assert.rejects(stat(join(rootfs, 'etc', name)), { code: 'ENOENT' }, `unpack made etc/${name}`);
    const out = join(work, `hostile-${name}`);
    const r = await runCli(
      ['extract', '--no-cache', `oci:${hostile.dir}:${hostile.tag}`, `/etc/${name}`, '-o', out],
      { env: env() },
    );
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      new RegExp(
        `^lading: error: /etc/${name} is a hardlink to ".*", which is not inside the image's root; refused`,
        'm',
      ),
    );
    assert.doesNotMatch(r.stderr, /vanished|internal/);
    await assert.rejects(stat(out), { code: 'ENOENT' });
  }
});
