import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.ts';
import { type BuiltLayout, buildLayout, pushLayout, smallImage } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

let reg: TestRegistry;
let proxy: FaultProxy;
let layout: BuiltLayout;
let work: string;

before(async () => {
  reg = await sharedRegistry('none');
  layout = await buildLayout(smallImage('cache-corrupt'));
  await pushLayout(layout, reg, 'corrupt/app:1');
  proxy = await startFaultProxy(reg.url);
  work = await mkdtemp(join(tmpdir(), 'lading-cache-corrupt-'));
});
after(async () => {
  await proxy.stop();
  await stopSharedRegistries();
});

/** Blob downloads (a Range request for a gzip trailer's 4 bytes is not one). */
const blobGets = () =>
  proxy.log.filter((e) => e.method === 'GET' && /\/blobs\/sha256:/.test(e.path) && !e.range).length;

/** Every blob file of an OCI layout hashes to its name. */
async function assertLayoutSound(dir: string): Promise<void> {
  const blobs = join(dir, 'blobs', 'sha256');
  for (const name of await readdir(blobs)) {
    const hex = createHash('sha256')
      .update(await readFile(join(blobs, name)))
      .digest('hex');
    assert.equal(hex, name, `blob ${name} of ${dir}`);
  }
  const inspect = JSON.parse((await run('skopeo', ['inspect', `oci:${dir}:1`])).stdout.toString());
  assert.equal(inspect.Digest, layout.digest);
}

test('copy from a registry through the cache: a corrupt entry is dropped and fetched again, in the same run', async () => {
  const cache = join(work, 'cache');
  const copy = (dst: string) =>
    runCli(['copy', '-q', '--cache-dir', cache, `${proxy.host}/corrupt/app:1`, dst]);
  proxy.clear();
  let r = await copy(`oci:${join(work, 'o1')}:1`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(blobGets(), 4, 'config and three layers, once each');
  await assertLayoutSound(join(work, 'o1'));

  // Damage one cached layer in place (same size): it must not reach the next destination.
  const layer = layout.images[0]!.layers[0]!;
  const entry = join(cache, 'v1', 'blobs', 'sha256', layer.digest.slice(7, 9), layer.digest.slice(7));
  const bytes = await readFile(entry);
  bytes[bytes.length >> 1]! ^= 0xff;
  await writeFile(entry, bytes);
  proxy.clear();
  r = await copy(`oci:${join(work, 'o2')}:1`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(blobGets(), 1, 'only the damaged layer is fetched again');
  await assertLayoutSound(join(work, 'o2'));
  // The first copy shares nothing with the cache: damage there never reaches it.
  await assertLayoutSound(join(work, 'o1'));

  proxy.clear();
  r = await copy(`dir:${join(work, 'd1')}`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(blobGets(), 0, 'everything from the cache');
  for (const l of layout.images[0]!.layers) {
    const hex = createHash('sha256')
      .update(await readFile(join(work, 'd1', l.digest.slice(7))))
      .digest('hex');
    assert.equal(`sha256:${hex}`, l.digest);
  }
});

test('a cache that cannot be written does not stop the copy', async () => {
  const cache = join(work, 'ro-cache');
  await runCli(['cache', 'ls', '--cache-dir', cache]);
  await chmod(cache, 0o555).catch(() => {});
  const isRoot = process.getuid?.() === 0;
  const r = await runCli([
    'copy',
    '-q',
    '--cache-dir',
    cache,
    `${reg.host}/corrupt/app:1`,
    `oci:${join(work, 'o3')}:1`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  await assertLayoutSound(join(work, 'o3'));
  if (!isRoot) assert.equal((await stat(cache)).mode & 0o777, 0o555);
});

test('prefetch: a corrupt cached layer is dropped and fetched again, and the hash is unchanged', async () => {
  const cache = join(work, 'pcache');
  const prefetch = async (finalName: string) => {
    const r = await runCli([
      'prefetch',
      '--json',
      '--cache-dir',
      cache,
      '--final-image-name',
      finalName,
      `${proxy.host}/corrupt/app`,
      '1',
    ]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout.toString()) as { hash: string };
  };
  const first = await prefetch('one');
  const layer = layout.images[0]!.layers[1]!;
  const entry = join(cache, 'v1', 'blobs', 'sha256', layer.digest.slice(7, 9), layer.digest.slice(7));
  const bytes = await readFile(entry);
  bytes[7]! ^= 0x01;
  await writeFile(entry, bytes);
  const again = await prefetch('one');
  assert.equal(again.hash, first.hash, 'cached result, the blobs are not read');
  proxy.clear();
  const other = await prefetch('two');
  assert.equal(blobGets(), 1, 'the damaged layer is fetched again, nothing else');
  const fresh = await runCli([
    'prefetch',
    '--json',
    '--no-cache',
    '--final-image-name',
    'two',
    `${reg.host}/corrupt/app`,
    '1',
  ]);
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.equal(other.hash, JSON.parse(fresh.stdout.toString()).hash);
});
