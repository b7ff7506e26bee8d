import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { BlobInfoCache } from '../../src/cache/index.ts';
import type { Digest } from '../../src/digest/index.ts';

const d = (s: string): Digest => `sha256:${createHash('sha256').update(s).digest('hex')}` as Digest;

test('locations are kept most recent first, without duplicates, across instances', async () => {
  const root = await mkdtemp(join(tmpdir(), 'lading-blob-info-'));
  const a = new BlobInfoCache(root);
  await a.addLocation(d('x'), { registry: 'r:5000', repository: 'one' });
  await a.addLocation(d('x'), { registry: 'r:5000', repository: 'two' });
  await a.addLocation(d('x'), { registry: 'r:5000', repository: 'one' });
  assert.deepEqual(await new BlobInfoCache(root).locations(d('x')), [
    { registry: 'r:5000', repository: 'one' },
    { registry: 'r:5000', repository: 'two' },
  ]);
  assert.deepEqual(await a.locations(d('unknown')), []);
});

test('compressed/uncompressed pairs both ways; a damaged record reads as unknown', async () => {
  const root = await mkdtemp(join(tmpdir(), 'lading-blob-info-'));
  const c = new BlobInfoCache(root);
  await c.addPair(d('gz'), 42, d('tar'), 'gzip');
  await c.addPair(d('zst'), 40, d('tar'), 'zstd');
  assert.equal(await c.uncompressedOf(d('gz')), d('tar'));
  assert.deepEqual(await c.compressedOf(d('tar')), [
    { digest: d('zst'), size: 40, compression: 'zstd' },
    { digest: d('gz'), size: 42, compression: 'gzip' },
  ]);
  // Damage the compressed-forms record (an edited size): it then reads as a miss.
  const base = join(root, 'v1', 'index');
  let damaged = 0;
  for (const sub of await readdir(base)) {
    for (const f of await readdir(join(base, sub))) {
      const p = join(base, sub, f);
      const text = await readFile(p, 'utf8');
      if (!text.includes('"blob-compressed:')) continue;
      await writeFile(p, text.replace('"size":42', '"size":43'));
      damaged++;
    }
  }
  assert.equal(damaged, 1);
  assert.equal(await c.uncompressedOf(d('gz')), d('tar'), 'untouched record still reads');
  assert.deepEqual(await c.compressedOf(d('tar')), []);
});
