import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { requireBin, run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type BuiltLayout, bigImage, buildLayout, smallImage } from '../helpers/images.ts';

// Every `-o` goes through one writer (src/util/output-file.ts): what the user names is never
// replaced by a file of another kind.
let root: string;
let small: BuiltLayout;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'lading-output-'));
  small = await buildLayout(smallImage('out'));
});
after(() => rm(root, { recursive: true, force: true }));

/** Reads a FIFO to its end while `write` runs. */
async function throughFifo(fifo: string, write: () => Promise<{ code: number; stderr: string }>) {
  await run(requireBin('mkfifo'), [fifo]);
  const cat = spawn('cat', [fifo]);
  const chunks: Buffer[] = [];
  cat.stdout.on('data', (c: Buffer) => chunks.push(c));
  const closed = new Promise((resolve) => cat.on('close', resolve));
  const r = await write();
  await closed;
  return { ...r, data: Buffer.concat(chunks) };
}

describe('-o never replaces a FIFO, a device or a symlink', () => {
  test('export -o a character device writes into it and leaves it a device (as root)', async () => {
    const dev = join(root, 'null');
    await run(requireBin('mknod'), ['-m', '666', dev, 'c', '1', '3']);
    const r = await runCli(['export', `oci:${small.dir}:latest`, '-o', dev]);
    assert.equal(r.code, 0, r.stderr);
    const st = await lstat(dev);
    assert.ok(st.isCharacterDevice(), 'still a character device');
    assert.equal(st.rdev, (await stat('/dev/null')).rdev);
    assert.deepEqual(
      (await readdir(root)).filter((n) => n.includes('lading')),
      [],
      'no temp file left beside it',
    );
  });

  test('export -o a FIFO streams into the pipe (GNU tar reads it) and the FIFO stays', async () => {
    const fifo = join(root, 'pipe');
    const r = await throughFifo(fifo, () => runCli(['export', `oci:${small.dir}:latest`, '-o', fifo]));
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await lstat(fifo)).isFIFO());
    const tarFile = join(root, 'from-fifo.tar');
    await writeFile(tarFile, r.data);
    const listing = (await run('tar', ['-tf', tarFile])).stdout.toString();
    assert.match(listing, /usr\/bin\/hello/);
  });

  test('extract -o a FIFO writes the file into the pipe', async () => {
    const fifo = join(root, 'pipe2');
    const r = await throughFifo(fifo, () =>
      runCli(['extract', `oci:${small.dir}:latest`, '/usr/bin/hello', '-o', fifo]),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.data.toString(), '#!/bin/sh\necho hello\n');
    assert.ok((await lstat(fifo)).isFIFO());
  });

  test('a symlink to a file: the target gets the content, the link stays a link', async () => {
    const target = join(root, 'real.nix');
    const link = join(root, 'link.tar');
    await writeFile(target, 'old');
    await symlink(target, link);
    const r = await runCli(['export', `oci:${small.dir}:latest`, '-o', link]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await lstat(link)).isSymbolicLink());
    assert.equal(await readlink(link), target);
    assert.match((await run('tar', ['-tf', target])).stdout.toString(), /etc\/os-release/);
    const e = await runCli(['extract', `oci:${small.dir}:latest`, '/etc/os-release', '-o', link]);
    assert.equal(e.code, 0, e.stderr);
    assert.ok((await lstat(link)).isSymbolicLink());
    assert.equal(await readFile(target, 'utf8'), 'ID=out\n');
  });

  test('a dangling symlink is refused before anything is read, and left as it is', async () => {
    const link = join(root, 'dangling');
    await symlink(join(root, 'nowhere', 'x'), link);
    for (const args of [
      ['export', 'oci:/nonexistent-layout:latest', '-o', link],
      ['extract', 'oci:/nonexistent-layout:latest', '/etc/os-release', '-o', link],
    ]) {
      const r = await runCli(args);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /^lading: error: .*dangling is a symlink to a file that does not exist/m);
      assert.ok((await lstat(link)).isSymbolicLink());
    }
  });

  test('unpack into a dangling symlink fails first, without a stack trace', async () => {
    const link = join(root, 'rootfs-link');
    await symlink(join(root, 'no-such-dir'), link);
    // The image does not exist: the destination is judged before the image is opened.
    const r = await runCli(['unpack', 'oci:/nonexistent-layout:latest', link]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^lading: error: .*rootfs-link is a symlink to a directory that does not exist/m);
    assert.doesNotMatch(r.stderr, /internal error|\n\s+at /);
    assert.ok((await lstat(link)).isSymbolicLink());
  });

  test('-o a directory is refused and the directory kept', async () => {
    const dir = join(root, 'adir');
    await mkdir(dir);
    await writeFile(join(dir, 'keep'), 'k');
    const r = await runCli(['export', `oci:${small.dir}:latest`, '-o', dir]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /adir is a directory: name a file to write/);
    assert.deepEqual(await readdir(dir), ['keep']);
  });
});

describe('export -o FILE with refused entries (exit 7) leaves no FILE', () => {
  test('no file, no temp file', async () => {
    const bad = await buildLayout({
      layers: [
        {
          entries: [
            { path: 'ok', content: 'fine' },
            { path: '../evil', content: 'x' },
          ],
        },
      ],
    });
    const dir = await mkdtemp(join(root, 'x7-'));
    const out = join(dir, 'fs.tar');
    const r = await runCli(['export', `oci:${bad.dir}:latest`, '-o', out]);
    assert.equal(r.code, 7, r.stderr);
    assert.deepEqual(await readdir(dir), []);
  });
});

// A real full disk: a small tmpfs (needs root and mount(8); a refusal fails the test).
describe('disk full: "no space left on DEVICE writing PATH", and nothing left behind', () => {
  let mnt: string;
  let big: BuiltLayout;
  let mounted = false;
  before(async () => {
    big = await buildLayout(bigImage(8));
    mnt = await mkdtemp(join(tmpdir(), 'lading-outfull-'));
    const r = await run(requireBin('mount'), ['-t', 'tmpfs', '-o', 'size=1m', 'ladingfull', mnt]);
    assert.equal(r.code, 0, `mount -t tmpfs failed (root needed): ${r.stderr}`);
    mounted = true;
  });
  after(async () => {
    if (mounted) await run('umount', [mnt]);
    await rm(mnt, { recursive: true, force: true });
  });
  const cases: [string, (dest: string) => string[]][] = [
    ['export', (d) => ['export', `oci:${big.dir}:latest`, '-o', d]],
    ['extract', (d) => ['extract', `oci:${big.dir}:latest`, '/data', '-o', d]],
    ['oci-archive', (d) => ['copy', '-q', `oci:${big.dir}:latest`, `oci-archive:${d}`]],
    ['unpack', (d) => ['unpack', `oci:${big.dir}:latest`, d]],
  ];
  for (const [name, args] of cases) {
    test(name, async () => {
      const dest = join(mnt, `${name}.out`);
      const r = await runCli(args(dest));
      assert.notEqual(r.code, 0);
      assert.match(
        r.stderr,
        new RegExp(
          `^lading: error: no space left on ladingfull \\(tmpfs, mounted at ${mnt}\\) writing ${dest}`,
          'm',
        ),
      );
      assert.doesNotMatch(r.stderr, /internal error/);
      assert.deepEqual(await readdir(mnt), [], 'nothing half-written');
    });
  }
});
