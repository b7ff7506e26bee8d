import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import {
  type BuiltLayout,
  buildLayout,
  MULTI_ARCH,
  multiArchImage,
  pushLayout,
  smallImage,
} from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries } from '../helpers/registry.ts';

let layout: BuiltLayout;
let work: string;

before(async () => {
  layout = await buildLayout(smallImage('unpack-dest'));
  work = await mkdtemp(join(tmpdir(), 'lading-unpack-dest-'));
});

const src = (dir = layout.dir) => `oci:${dir}:${layout.tag}`;

test('unpack into a directory that holds files: refused, the files untouched', async () => {
  const dest = join(work, 'busy');
  await mkdir(dest);
  await writeFile(join(dest, 'mine.txt'), 'keep me\n');
  const r = await runCli(['unpack', src(), dest]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /busy is not empty: unpack writes into a new or empty directory/);
  assert.deepEqual(await readdir(dest), ['mine.txt']);
  assert.equal(await readFile(join(dest, 'mine.txt'), 'utf8'), 'keep me\n');
});

test('unpack into a new directory or an empty one', async () => {
  const fresh = join(work, 'fresh');
  const r = await runCli(['unpack', '-q', src(), fresh]);
  assert.equal(r.code, 0, r.stderr);
  const empty = join(work, 'empty');
  await mkdir(empty);
  const e = await runCli(['unpack', '-q', src(), empty]);
  assert.equal(e.code, 0, e.stderr);
  assert.deepEqual((await readdir(empty)).sort(), (await readdir(fresh)).sort());
  assert.ok((await readdir(fresh)).length > 0);
  // The image has no entry for its root: a new DIR gets mkdir's usual mode, as an empty one had.
  assert.equal((await stat(fresh)).mode & 0o777, 0o777 & ~process.umask());
  assert.deepEqual(
    (await readdir(work)).filter((n) => n.includes('.lading-')),
    [],
    'no staging directory left',
  );
});

test('a failed unpack leaves nothing at the destination, nor a staging directory', async () => {
  // A copy of the layout with its top layer's blob missing.
  const broken = join(work, 'broken-layout');
  await cp(layout.dir, broken, { recursive: true });
  const top = layout.images[0]!.layers.at(-1)!;
  await rm(join(broken, 'blobs', 'sha256', top.digest.slice(7)));
  const parent = join(work, 'out');
  await mkdir(parent);
  const r = await runCli(['unpack', src(broken), join(parent, 'rootfs')]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /lading: error: .*missing/);
  assert.deepEqual(await readdir(parent), [], 'neither rootfs nor a staging directory');
});

test('unpack, export and extract pick --platform out of an index in a registry; another platform is an error naming what there is', async () => {
  const reg = await sharedRegistry('none');
  await pushLayout(await buildLayout(multiArchImage()), reg, 'unpack/multi:1');
  const ref = `${reg.host}/unpack/multi:1`;
  const env = { HOME: '/nonexistent', PATH: process.env.PATH };
  for (const p of MULTI_ARCH) {
    const platform = [p.os, p.architecture, p.variant].filter(Boolean).join('/');
    const want = `${p.architecture}${p.variant ?? ''}\n`;
    const dest = join(work, `multi-${p.architecture}`);
    const u = await runCli(['unpack', '-q', '--no-cache', '--platform', platform, ref, dest], { env });
    assert.equal(u.code, 0, u.stderr);
    assert.equal(await readFile(join(dest, 'arch.txt'), 'utf8'), want);
    const x = await runCli(
      ['extract', '-q', '--no-cache', '--platform', platform, ref, '/arch.txt', '-o', `${dest}.txt`],
      { env },
    );
    assert.equal(x.code, 0, x.stderr);
    assert.equal(await readFile(`${dest}.txt`, 'utf8'), want);
    const e = await runCli(['export', '-q', '--no-cache', '--platform', platform, ref], { env });
    assert.equal(e.code, 0, e.stderr);
    await writeFile(`${dest}.tar`, e.stdout);
    assert.equal((await run('tar', ['-xOf', `${dest}.tar`, 'arch.txt'])).stdout.toString(), want);
  }
  const none = await runCli(['unpack', '--no-cache', '--platform', 'linux/s390x', ref, join(work, 's390x')], {
    env,
  });
  assert.equal(none.code, 4, none.stderr);
  assert.match(
    none.stderr,
    /no image for platform linux\/s390x .*it has: linux\/amd64, linux\/arm64\/v8, linux\/arm\/v7/,
  );
  assert.deepEqual(
    (await readdir(work)).filter((n) => n.includes('s390x')),
    [],
  );
  await stopSharedRegistries();
});

test('unpack reads a docker-archive (written by skopeo) into the tree the OCI layout gives', async () => {
  const archive = join(work, 'image.docker.tar');
  await run('skopeo', ['copy', `oci:${layout.dir}:${layout.tag}`, `docker-archive:${archive}:unpack/dest:1`]);
  const fromArchive = join(work, 'from-archive');
  const fromLayout = join(work, 'from-layout');
  for (const [from, dest] of [
    [`docker-archive:${archive}`, fromArchive],
    [src(), fromLayout],
  ]) {
    const r = await runCli(['unpack', '-q', from!, dest!]);
    assert.equal(r.code, 0, r.stderr);
  }
  await run('diff', ['-r', '--no-dereference', fromArchive, fromLayout]);
  assert.equal(await readFile(join(fromArchive, 'usr', 'bin', 'hello'), 'utf8'), '#!/bin/sh\necho hello\n');
});

test('a single-platform image of another platform than --platform asks for is an error; without --platform it unpacks', async () => {
  const s390x = await buildLayout({
    architecture: 's390x',
    layers: [{ entries: [{ path: 'a', content: 'a' }] }],
  });
  const from = `oci:${s390x.dir}:latest`;
  for (const args of [
    ['unpack', '--platform', 'linux/amd64', from, join(work, 'wrong-platform')],
    ['export', '--override-arch', 'arm64', from, '-o', join(work, 'wrong-platform.tar')],
    ['extract', '--platform', 'linux/arm64', from, '/a', '-o', join(work, 'wrong-platform-a')],
  ]) {
    const r = await runCli(args);
    assert.equal(r.code, 4, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, /is a single-platform image for linux\/s390x, not linux\/(amd64|arm64)/);
  }
  assert.deepEqual(
    (await readdir(work)).filter((n) => n.startsWith('wrong-platform')),
    [],
  );
  const ok = await runCli(['unpack', '-q', '--platform', 'linux/s390x', from, join(work, 's390x-ok')]);
  assert.equal(ok.code, 0, ok.stderr);
  const any = await runCli(['unpack', '-q', from, join(work, 's390x-default')]);
  assert.equal(any.code, 0, any.stderr);
  assert.equal(await readFile(join(work, 's390x-default', 'a'), 'utf8'), 'a');
});

test('a truncated or corrupt layer fails unpack with exit 5 naming the blob, leaving nothing (no hang)', {
  timeout: 30_000,
}, async () => {
  const big = await buildLayout({
    layers: [
      {
        entries: [
          { path: 'big', content: Buffer.alloc(3 << 20, 'lading') },
          { path: 'after', content: 'a' },
        ],
      },
    ],
  });
  const digest = big.images[0]!.layers[0]!.digest;
  const blob = join(big.dir, 'blobs', 'sha256', digest.slice(7));
  const good = await readFile(blob);
  const flipped = Buffer.from(good);
  flipped[flipped.length >> 1]! ^= 0xff;
  for (const [what, bytes, message] of [
    ['truncated', good.subarray(0, good.length >> 1), /size mismatch|unexpected end|damaged/],
    ['corrupt', flipped, /digest mismatch|damaged/],
  ] as const) {
    await writeFile(blob, bytes);
    const parent = join(work, `bad-${what}`);
    await mkdir(parent);
    const r = await runCli(['unpack', `oci:${big.dir}:latest`, join(parent, 'rootfs')]);
    assert.equal(r.code, 5, `${what}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.ok(r.stderr.includes(digest.slice(7)), r.stderr);
    assert.deepEqual(await readdir(parent), [], what);
  }
});
