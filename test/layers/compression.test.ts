import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { test } from 'node:test';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { decompressRing } from '../../src/layers/index.ts';

async function drain(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** `data` in chunks that take turns in two reused buffers (each valid until the next-but-one). */
async function* twoBufferRing(data: Buffer, size: number): AsyncGenerator<Buffer> {
  const bufs = [Buffer.alloc(size), Buffer.alloc(size)];
  for (let off = 0, turn = 0; off < data.length; off += size, turn ^= 1) {
    const n = data.copy(bufs[turn]!, 0, off, Math.min(off + size, data.length));
    yield bufs[turn]!.subarray(0, n);
  }
}

// Half random, half repetitive: several MiB out of a few hundred KiB in.
const plain = Buffer.concat([randomBytes(300_000), Buffer.alloc(3_000_000, 'lading ')]);

for (const [kind, packed] of [
  ['gzip', gzipSync(plain)],
  ['zstd', zstdCompressSync(plain)],
  ['none', plain],
] as const) {
  test(`decompressRing inflates ${kind} read through a two-buffer ring exactly`, async () => {
    // Small buffers: many turns of the ring while the decompressor still holds earlier input.
    const out = await drain(decompressRing(twoBufferRing(packed, 4096)));
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
