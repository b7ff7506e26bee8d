import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { buildLayout, prng, pushLayout } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

// Issue 13.6: the same input and compression level give the same bytes, whatever the cache holds
// (cold, warm with another level's blobs, --no-cache) and whatever the destination tag held.

let reg: TestRegistry;
let work: string;

before(async () => {
  reg = await sharedRegistry('none');
  work = await mkdtemp(join(tmpdir(), 'lading-zstd-repro-'));
  const text = (n: number) => Buffer.from('a log line that repeats with small changes 12345\n'.repeat(n));
  const image = await buildLayout({
    layers: [
      { entries: [{ path: 'a', content: Buffer.concat([prng('zr-a', 200_000), text(8000)]) }] },
      { entries: [{ path: 'b', content: Buffer.concat([text(20_000), prng('zr-b', 50_000)]) }] },
    ],
  });
  await pushLayout(image, reg, 'zr/src:1');
});
after(() => stopSharedRegistries());

async function copy(cache: string | false, level: number, to: string): Promise<string> {
  const env = { HOME: '/nonexistent', PATH: process.env.PATH, XDG_CACHE_HOME: join(work, cache || 'unused') };
  const r = await runCli(
    [
      'copy',
      '-q',
      ...(cache === false ? ['--no-cache'] : []),
      '--dest-compress-format',
      'zstd',
      '--dest-compress-level',
      String(level),
      `docker://${reg.host}/zr/src:1`,
      `docker://${reg.host}/zr/${to}`,
    ],
    { env },
  );
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.toString().trim();
}

test('zstd at one level gives one digest with a cold cache, a warm one, --no-cache, and over an earlier push', async () => {
  const cold12 = await copy('c1', 12, 'cold12:1');
  const cold3 = await copy('c2', 3, 'cold3:1');
  assert.notEqual(cold12, cold3, 'levels 3 and 12 give different bytes here');
  // The cache now knows level-3 blobs of these layers, in this registry.
  assert.equal(await copy('c2', 12, 'warm12:1'), cold12);
  assert.equal(await copy('c2', 3, 'warm3:1'), cold3);
  assert.equal(await copy(false, 12, 'nocache12:1'), cold12);
  // The destination tag holds the level-3 image: its layers are not taken for level 12.
  assert.equal(await copy('c2', 12, 'cold3:1'), cold12);
  assert.equal(await copy('c3', 12, 'warm3:1'), cold12);
});
