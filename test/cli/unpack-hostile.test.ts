import assert from 'node:assert/strict';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { requireBin, run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type BuiltLayout, buildLayout } from '../helpers/images.ts';

const lading = new URL('../../bin/lading', import.meta.url).pathname;

/** A sandbox holding a canary directory beside the places the CLI writes to. */
async function sandbox(): Promise<{ root: string; canary: string }> {
  const root = await mkdtemp(join(tmpdir(), 'lading-cli-hostile-'));
  const canary = join(root, 'canary');
  await mkdir(canary);
  await writeFile(join(canary, 'keep'), 'keep');
  return { root, canary };
}

async function assertCanaryIntact(canary: string): Promise<void> {
  assert.deepEqual(await readdir(canary), ['keep']);
  assert.equal(await readFile(join(canary, 'keep'), 'utf8'), 'keep');
}

describe('hostile images through the CLI: every refused entry is named, the exit status is 7', () => {
  let box: { root: string; canary: string };
  let layout: BuiltLayout;
  before(async () => {
    box = await sandbox();
    layout = await buildLayout({
      layers: [
        {
          entries: [
            { path: 'etc/', type: 'directory' },
            { path: 'etc/hostname', content: 'fine\n' },
            { path: 'link', type: 'symlink', linkname: box.canary },
          ],
        },
        {
          entries: [
            { path: '../canary/evil', content: 'x' },
            { path: 'link/keep', content: 'overwritten?' },
            { path: 'hard', type: 'link', linkname: '../canary/keep' },
          ],
        },
      ],
    });
  });

  test('unpack', async () => {
    const dest = join(box.root, 'rootfs');
    const r = await runCli(['unpack', `oci:${layout.dir}:latest`, dest]);
    assert.equal(r.code, 7, r.stderr);
    for (const name of ['../canary/evil', 'link/keep', 'hard'])
      assert.match(r.stderr, new RegExp(`lading: warning: .*"${name.replace(/\./g, '\\.')}" in layer 1`));
    assert.match(r.stderr, /lading: error: 3 unsafe entries were refused while unpacking into .*rootfs/);
    await assertCanaryIntact(box.canary);
    // What is safe was unpacked, the symlink verbatim.
    assert.equal(await readFile(join(dest, 'etc', 'hostname'), 'utf8'), 'fine\n');
  });

  test('export', async () => {
    const out = join(box.root, 'rootfs.tar');
    const r = await runCli(['export', `oci:${layout.dir}:latest`, '-o', out]);
    assert.equal(r.code, 7, r.stderr);
    for (const name of ['../canary/evil', 'hard'])
      assert.match(r.stderr, new RegExp(`lading: warning: .*"${name.replace(/\./g, '\\.')}" in layer 1`));
    assert.match(r.stderr, /lading: error: 3 unsafe entries were refused/);
    // An incomplete export (exit 7) is not left where a good one is expected.
    await assert.rejects(lstat(out), { code: 'ENOENT' });
    await assertCanaryIntact(box.canary);
  });
});

describe('unpack as a user other than root', () => {
  test('devices are skipped with a warning naming them; owners are recorded and reported, not applied', async () => {
    const setpriv = requireBin('setpriv');
    const layout = await buildLayout({
      layers: [
        {
          entries: [
            { path: 'dev/', type: 'directory' },
            { path: 'dev/null', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 },
            { path: 'dev/fifo', type: 'fifo', mode: 0o600 },
            { path: 'home/', type: 'directory' },
            { path: 'home/user/', type: 'directory', uid: 1000, gid: 1000, mode: 0o750 },
            { path: 'home/user/file', content: 'mine', uid: 1000, gid: 1000 },
            { path: 'bin/', type: 'directory' },
            { path: 'bin/suid', content: 'suid', mode: 0o4755 },
          ],
        },
      ],
    });
    const work = await mkdtemp(join(tmpdir(), 'lading-nonroot-'));
    // Readable and writable by the unprivileged user.
    await run('chmod', ['-R', 'a+rX', layout.dir]);
    await chmod(work, 0o777);
    const dest = join(work, 'rootfs');
    const r = await run(
      setpriv,
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        '--',
        process.execPath,
        lading,
        'unpack',
        '--json',
        `oci:${layout.dir}:latest`,
        dest,
      ],
      { env: { HOME: '/nonexistent', PATH: process.env.PATH }, allowFail: true },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /lading: warning: device "dev\/null" in layer 0 .* skipped: creating devices needs root/,
    );
    assert.match(
      r.stderr,
      /lading: warning: owners not applied \(not running as root\): 2 entries belong to other users than root, e\.g\. \/home\/user \(1000:1000\); --json lists them all/,
    );
    const j = JSON.parse(r.stdout.toString());
    assert.deepEqual(j.owners, { 'home/user/file': '1000:1000', 'home/user': '1000:1000' });
    assert.deepEqual(
      j.problems.map((p: { entry: string; code: string }) => [p.entry, p.code]),
      [['dev/null', 'E_SKIPPED']],
    );
    assert.equal(j.devices, 1, 'the fifo needs no privilege');
    assert.deepEqual((await readdir(join(dest, 'dev'))).sort(), ['fifo']);
    const file = await lstat(join(dest, 'home', 'user', 'file'));
    assert.deepEqual([file.uid, file.gid], [65534, 65534]);
    assert.equal((await lstat(join(dest, 'home', 'user'))).mode & 0o7777, 0o750);
    assert.equal((await lstat(join(dest, 'bin', 'suid'))).mode & 0o7777, 0o4755);
  });
});
