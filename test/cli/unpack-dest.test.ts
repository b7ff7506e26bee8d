import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { type BuiltLayout, buildLayout, smallImage } from '../helpers/images.ts';

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
