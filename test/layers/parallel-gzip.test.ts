import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import { GZIP_BLOCK, parallelGzip } from '../../src/layers/index.ts';
import { run } from '../helpers/bins.ts';

async function drain(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** `data` cut into pieces of `piece` bytes, each handed out in a buffer that is then overwritten. */
async function* reusedPieces(data: Buffer, piece: number): AsyncGenerator<Buffer> {
  const buf = Buffer.alloc(piece);
  for (let off = 0; off < data.length; off += piece) {
    const n = data.copy(buf, 0, off, off + piece);
    yield buf.subarray(0, n);
    buf.fill(0xee);
  }
}

function sample(size: number): Buffer {
  const half = size >> 1;
  return Buffer.concat([randomBytes(half), Buffer.alloc(size - half, 'a rather repetitive line\n')]);
}

for (const size of [0, 1, GZIP_BLOCK - 1, GZIP_BLOCK, GZIP_BLOCK + 1, 3 * GZIP_BLOCK + 12345]) {
  test(`parallel gzip of ${size} bytes: gzip -d gives the input back, and the trailer checks`, async () => {
    const data = sample(size);
    const out = await drain(parallelGzip(reusedPieces(data, 65_537)));
    assert.deepEqual(out.subarray(0, 3), Buffer.from([0x1f, 0x8b, 8]));
    // gzip -t and -d check the CRC-32 and the length in the trailer.
    const back = await run('gzip', ['-dc'], { input: out });
    assert.equal(back.stdout.length, data.length);
    assert.ok(back.stdout.equals(data), 'gzip -d output differs from the input');
    assert.equal(out.readUInt32LE(out.length - 8), crc32(data));
    assert.equal(out.readUInt32LE(out.length - 4), data.length);
  });
}

test('parallel gzip output depends only on the input and level, not on threads or chunking', async () => {
  const data = sample(5 * GZIP_BLOCK + 999);
  const a = await drain(parallelGzip(Readable.from([data]), { jobs: 4 }));
  const b = await drain(parallelGzip(reusedPieces(data, 4096), { jobs: 1 }));
  const c = await drain(parallelGzip(reusedPieces(data, 3 * GZIP_BLOCK), { jobs: 2 }));
  assert.ok(a.equals(b) && a.equals(c), 'different bytes for the same input');
  const fast = await drain(parallelGzip(Readable.from([data]), { level: 1 }));
  assert.ok(!fast.equals(a), 'the level is applied');
});

test('parallel gzip compresses about as well as gzip -6', async () => {
  const text = Buffer.from('the quick brown fox jumps over the lazy dog, again and again\n'.repeat(200_000));
  const out = await drain(parallelGzip(Readable.from([text])));
  const single = await run('gzip', ['-6', '-c'], { input: text });
  assert.ok(
    out.length < single.stdout.length * 1.05 + 64,
    `${out.length} bytes vs gzip's ${single.stdout.length}`,
  );
});

test('a source error ends the gzip stream with that error', async () => {
  async function* broken(): AsyncGenerator<Buffer> {
    yield randomBytes(GZIP_BLOCK + 10);
    throw new Error('disk went away');
  }
  await assert.rejects(drain(parallelGzip(broken())), /disk went away/);
});

test('blocks of already-compressed data are stored: no growth beyond framing, still exact', async () => {
  const data = Buffer.concat([randomBytes(4 * GZIP_BLOCK), Buffer.alloc(GZIP_BLOCK, 'text text text ')]);
  const out = await drain(parallelGzip(Readable.from([data])));
  const back = await run('gzip', ['-dc'], { input: out });
  assert.ok(back.stdout.equals(data));
  // Stored blocks add 5 bytes per 64 KiB; the text block shrinks to almost nothing.
  assert.ok(out.length < 4 * GZIP_BLOCK + 1000 + 5000, `${out.length} bytes`);
  assert.ok(out.length > 4 * GZIP_BLOCK, 'random data cannot shrink');
});
