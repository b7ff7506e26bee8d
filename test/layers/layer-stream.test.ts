import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { gunzipSync, gzipSync, zstdCompressSync } from 'node:zlib';
import { type Digest, sha256 } from '../../src/digest/index.ts';
import { isLadingError } from '../../src/errors/index.ts';
import { syncInflateWorks } from '../../src/layers/inflate-sync.ts';
import { openLayer } from '../../src/layers/layer-stream.ts';

async function drain(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A layer whose stored bytes arrive in small pieces (many inflate calls, blocks split anywhere). */
function layer(stored: Buffer, diffId?: Digest) {
  return {
    digest: sha256(stored),
    diffId,
    open: async () => {
      const pieces: Buffer[] = [];
      for (let i = 0; i < stored.length; i += 1000) pieces.push(stored.subarray(i, i + 1000));
      return Readable.from(pieces);
    },
  };
}

// Half random, half repetitive: several MiB out of a few hundred KiB in (many output blocks).
const plain = Buffer.concat([randomBytes(300_000), Buffer.alloc(3_000_000, 'lading ')]);

test('the synchronous inflater works on this Node.js (else layers fall back to zlib streams)', () => {
  assert.equal(syncInflateWorks('gzip'), true);
  assert.equal(syncInflateWorks('zstd'), true);
});

for (const [kind, packed] of [
  ['gzip', gzipSync(plain)],
  ['zstd', zstdCompressSync(plain)],
  ['none', plain],
] as const) {
  test(`openLayer inflates a ${kind} layer exactly and checks its diff_id`, async () => {
    const out = await drain(await openLayer(layer(packed, sha256(plain)), 'layer 0'));
    assert.ok(out.equals(plain));
  });

  test(`openLayer fails a ${kind} layer whose content is not its diff_id`, async () => {
    const other = sha256(Buffer.from('something else'));
    await assert.rejects(drain(await openLayer(layer(packed, other), 'layer 3')), (err) => {
      assert.ok(isLadingError(err));
      assert.equal(err.code, 'E_DIGEST_MISMATCH');
      assert.match(err.message, /uncompressed layer 3 \(its diff_id in the config\)/);
      return true;
    });
  });
}

test('openLayer reports a damaged gzip layer as an archive error, read to its end', async () => {
  const packed = gzipSync(plain);
  const damaged = Buffer.from(packed);
  // A deflate block of the reserved type 3: the data cannot be inflated.
  damaged.fill(0xff, 10, 20);
  assert.throws(() => gunzipSync(damaged), /invalid block type/);
  let read = 0;
  const l = layer(damaged, sha256(plain));
  const counting = {
    ...l,
    open: async () =>
      (await l.open()).map((b: Buffer) => {
        read += b.length;
        return b;
      }),
  };
  await assert.rejects(drain(await openLayer(counting, 'layer 1')), (err) => {
    assert.ok(isLadingError(err));
    assert.equal(err.code, 'E_ARCHIVE');
    assert.match(err.message, /cannot decompress layer 1/);
    return true;
  });
  // The source is read to the end: its own digest check, when it has one, names a tampered download.
  assert.equal(read, damaged.length);
});

test('a gzip layer damaged where it still inflates is refused by its CRC-32, before its diff_id', async () => {
  const damaged = gzipSync(plain);
  // Inside the random half, stored as is: the bytes inflate, only to something else.
  damaged.fill(0x55, 2000, 2100);
  assert.throws(() => gunzipSync(damaged), /incorrect data check/);
  await assert.rejects(drain(await openLayer(layer(damaged, sha256(plain)), 'layer 1')), (err) => {
    assert.ok(isLadingError(err));
    assert.equal(err.code, 'E_ARCHIVE');
    assert.match(err.message, /cannot decompress layer 1: incorrect data check/);
    return true;
  });
});

test('openLayer passes a source error on to its reader', async () => {
  const failing = {
    digest: sha256(Buffer.from('x')),
    open: async () =>
      Readable.from(
        (async function* () {
          yield gzipSync(plain).subarray(0, 5000);
          throw new Error('the source broke');
        })(),
      ),
  };
  await assert.rejects(drain(await openLayer(failing, 'layer 2')), /the source broke/);
});

for (const [kind, pack] of [
  ['zstd', zstdCompressSync],
  ['gzip', gzipSync],
] as const) {
  test(`openLayer holds little of a ${kind} layer that inflates a thousandfold, until it is read`, async () => {
    // 64 MiB of zeros: a few KiB of zstd (RLE blocks), 64 KiB of gzip, handed on as one piece.
    const zeros = Buffer.alloc(64 << 20);
    const packed = pack(zeros);
    const one = {
      digest: sha256(packed),
      diffId: sha256(zeros),
      open: async () => Readable.from([packed]),
    };
    const s = await openLayer(one, 'layer 0');
    await new Promise<void>((resolve) => s.once('readable', () => resolve()));
    await new Promise((resolve) => setImmediate(resolve));
    // At most twice the readable side's high-water mark (1 MiB), not the whole layer.
    assert.ok(s.readableLength <= 2 << 20, `${s.readableLength} bytes held before any read`);
    // Then a reader slower than the inflater (a file system, a tar parser): what waits for it
    // stays near the two high-water marks.
    let n = 0;
    let most = 0;
    const slow: Writable = new Writable({
      highWaterMark: 1 << 20,
      write(c: Buffer, _enc, cb) {
        most = Math.max(most, s.readableLength + slow.writableLength);
        assert.ok(c.every((b) => b === 0));
        n += c.length;
        setImmediate(cb);
      },
    });
    await pipeline(s, slow);
    assert.ok(most <= 4 << 20, `${most} bytes held while reading`);
    assert.equal(n, zeros.length);
  });
}
