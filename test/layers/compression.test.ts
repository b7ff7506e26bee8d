import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { BlobCache } from '../../src/cache/index.ts';
import { sha256 } from '../../src/digest/index.ts';
import { decompressRing } from '../../src/layers/index.ts';

async function drain(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

// Half random, half repetitive: several MiB out of a few hundred KiB in.
const plain = Buffer.concat([randomBytes(300_000), Buffer.alloc(3_000_000, 'lading ')]);

for (const [kind, packed] of [
  ['gzip', gzipSync(plain)],
  ['zstd', zstdCompressSync(plain)],
  ['none', plain],
] as const) {
  test(`decompressRing inflates ${kind} read through the cache's two-buffer ring exactly`, async () => {
    const root = await mkdtemp(join(tmpdir(), 'lading-ring-'));
    const cache = new BlobCache(root);
    const d = sha256(packed);
    await cache.write(d, Readable.from([packed]), packed.length);
    // Small buffers: many turns of the ring while the decompressor still holds earlier input.
    const out = await drain(decompressRing(cache.chunks(d, packed.length, 4096)));
    assert.equal(out.length, plain.length);
    assert.ok(out.equals(plain));
  });
}

test('decompressRing passes a source error on to its reader', async () => {
  async function* failing(): AsyncGenerator<Buffer> {
    yield gzipSync(plain).subarray(0, 1000);
    throw new Error('disk went away');
  }
  await assert.rejects(drain(decompressRing(failing())), /disk went away/);
});
