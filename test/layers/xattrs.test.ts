import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { requireBin, run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type BuiltLayout, buildLayout } from '../helpers/images.ts';

// Issue 12.9 and 13.9: which extended attributes of an image reach the host, and what happens
// when the tool that writes them is missing. Checked with getfattr (Debian attr), as root.
const bin = join(import.meta.dirname, '..', '..', 'bin', 'lading');
let work: string;
let layout: BuiltLayout;
const big = 'v'.repeat(5000);

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'lading-xattrs-'));
  layout = await buildLayout({
    layers: [
      {
        entries: [
          { path: 'dir/', type: 'directory', pax: { 'SCHILY.xattr.trusted.overlay.opaque': 'y' } },
          {
            path: 'file',
            content: 'x',
            pax: {
              'SCHILY.xattr.user.note': 'hello',
              'SCHILY.xattr.user.empty': '',
              'SCHILY.xattr.trusted.overlay.redirect': '/elsewhere',
              'SCHILY.xattr.security.selinux': 'system_u:object_r:shadow_t:s0',
              'SCHILY.xattr.security.ima': 'forged',
            },
          },
        ],
      },
    ],
  });
});
after(() => rm(work, { recursive: true, force: true }));

/** `NAME=VALUE` of every attribute in every namespace (getfattr -m -). */
async function attrs(path: string): Promise<string[]> {
  const r = await run(requireBin('getfattr', 'attr'), [
    '--absolute-names',
    '-h',
    '-d',
    '-m',
    '-',
    '-e',
    'text',
    path,
  ]);
  return r.stdout
    .toString()
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .sort();
}

describe('extended attributes', () => {
  test('trusted.* and security.* are skipped with one summary warning; user.* kept, an empty value too', async () => {
    const dest = join(work, 'rootfs');
    const r = await runCli(['unpack', `oci:${layout.dir}:latest`, dest]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await attrs(join(dest, 'file')), ['user.empty=""', 'user.note="hello"']);
    assert.deepEqual(await attrs(join(dest, 'dir')), []);
    const warnings = r.stderr.split('\n').filter((l) => l.startsWith('lading: warning:'));
    assert.equal(warnings.length, 1, r.stderr);
    assert.match(
      warnings[0]!,
      /4 extended attributes of the host's trusted\.\* or security\.\* namespaces skipped, as umoci does .*security\.ima, security\.selinux, trusted\.overlay\.opaque, trusted\.overlay\.redirect/,
    );
  });

  test('without setfattr, an image with xattrs is an error that says what to install; --no-xattrs unpacks without them', async () => {
    // A PATH with node and nothing else: no setfattr.
    const path = join(work, 'bin');
    await mkdir(path);
    await symlink(process.execPath, join(path, 'node'));
    const exec = (args: string[]) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const c = spawn(process.execPath, [bin, ...args], { env: { PATH: path, HOME: '/nonexistent' } });
        let stderr = '';
        c.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
        });
        c.on('close', (code) => resolve({ code, stderr }));
      });
    const dest = join(work, 'no-setfattr');
    const r = await exec(['unpack', `oci:${layout.dir}:latest`, dest]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /lading: error: the image has extended attributes \(user\.(note|empty) on "file"\) and setfattr is not installed \(Debian\/Ubuntu package attr\): install it, or pass --no-xattrs/,
    );
    await assert.rejects(run('ls', [dest]), 'nothing left at the destination');
    const ok = await exec(['unpack', '--no-xattrs', `oci:${layout.dir}:latest`, dest]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /lading: warning: 6 extended attributes not applied \(--no-xattrs\)/);
    assert.deepEqual(await attrs(join(dest, 'file')), []);
  });

  test('a failed attribute is warned about with its value cut short', async () => {
    // user.* attributes cannot be set on a symlink: setfattr fails for this one.
    const l = await buildLayout({
      layers: [
        {
          entries: [
            { path: 'target', content: 't' },
            { path: 'link', type: 'symlink', linkname: 'target', pax: { 'SCHILY.xattr.user.big': big } },
          ],
        },
      ],
    });
    const r = await runCli(['unpack', `oci:${l.dir}:latest`, join(work, 'failed')]);
    assert.equal(r.code, 0, r.stderr);
    const line = r.stderr.split('\n').find((x) => x.includes('user.big'));
    assert.ok(line, r.stderr);
    assert.match(line, /extended attribute user\.big="v{120}… \(5000 characters\)" on "link" not set: /);
    assert.ok(line.length < 400, `${line.length} characters`);
  });
});
