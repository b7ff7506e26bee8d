import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { BlobCache, IndexStore } from '../../src/cache/index.ts';
import { sha256 } from '../../src/digest/index.ts';
import { isLadingError } from '../../src/errors/index.ts';

async function drain(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function allFiles(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String);
}

test('stores verified blobs and reads them back verified', async () => {
  const root = await mkdtemp(join(tmpdir(), 'lading-cache-'));
  const cache = new BlobCache(root);
  const data = randomBytes(3 << 20);
  const d = sha256(data);
  assert.equal(await cache.open(d), undefined);
  await cache.write(d, Readable.from([data.subarray(0, 1000), data.subarray(1000)]), data.length);
  assert.ok(await cache.has(d, data.length));
  const s = await cache.open(d, data.length);
  assert.ok(s);
  assert.ok((await drain(s)).equals(data));
  assert.deepEqual(
    (await cache.list()).map((e) => e.digest),
    [d],
  );
});

test('a stream with the wrong bytes leaves no entry and no temp file', async () => {
  const root = await mkdtemp(join(tmpdir(), 'lading-cache-'));
  const cache = new BlobCache(root);
  const d = sha256('right');
  await assert.rejects(
    cache.write(d, Readable.from([Buffer.from('wrong')])),
    (e: unknown) => isLadingError(e) && e.code === 'E_DIGEST_MISMATCH',
  );
  assert.equal(await cache.has(d), false);
  assert.deepEqual(
    (await allFiles(root)).filter((f) => f.endsWith('.tmp')),
    [],
  );
});

test('a corrupted entry is detected on read and removed (self-heal)', async () => {
  const root = await mkdtemp(join(tmpdir(), 'lading-cache-'));
  const cache = new BlobCache(root);
  const data = Buffer.from('some layer bytes');
  const d = sha256(data);
  await cache.writeBytes(d, data);
  await writeFile(cache.pathFor(d), Buffer.from('some layer bytez'));
  const s = await cache.open(d);
  assert.ok(s);
  await assert.rejects(drain(s), (e: unknown) => isLadingError(e) && e.code === 'E_DIGEST_MISMATCH');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(await cache.has(d), false);
  // In-memory reads heal the same way.
  await cache.writeBytes(d, data);
  await writeFile(cache.pathFor(d), 'xx');
  assert.equal(await cache.read(d), undefined);
  assert.equal(await cache.has(d), false);
});

test('tee commits only a complete, verified stream', async () => {
  const root = await mkdtemp(join(tmpdir(), 'lading-cache-'));
  const cache = new BlobCache(root);
  const data = randomBytes(2 << 20);
  const d = sha256(data);
  const out = await drain(cache.tee(d, Readable.from([data]), data.length));
  assert.ok(out.equals(data));
  for (let i = 0; i < 50 && !(await cache.has(d)); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(await cache.has(d, data.length));
});

test('several processes writing the same digest leave one good entry', async () => {
  const root = await mkdtemp(join(tmpdir(), 'lading-cache-'));
  const data = randomBytes(4 << 20);
  const file = join(root, 'src.bin');
  await writeFile(file, data);
  const d = sha256(data);
  const script = `
    import { BlobCache } from ${JSON.stringify(new URL('../../src/cache/index.ts', import.meta.url).href)};
    import { createReadStream } from 'node:fs';
    await new BlobCache(${JSON.stringify(join(root, 'c'))}).write(${JSON.stringify(d)}, createReadStream(${JSON.stringify(file)}), ${data.length});
  `;
  const runs = Array.from(
    { length: 4 },
    () =>
      new Promise<number>((resolve) => {
        const p = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'inherit' });
        p.on('exit', (code) => resolve(code ?? 1));
      }),
  );
  assert.deepEqual(await Promise.all(runs), [0, 0, 0, 0]);
  const cache = new BlobCache(join(root, 'c'));
  assert.ok((await readFile(cache.pathFor(d))).equals(data));
  assert.deepEqual(
    (await allFiles(join(root, 'c'))).filter((f) => f.endsWith('.tmp')),
    [],
  );
});

test('index records round-trip and a torn record reads as a miss', async () => {
  const root = await mkdtemp(join(tmpdir(), 'lading-cache-'));
  const idx = new IndexStore(root);
  await idx.set('tag:docker.io/library/alpine:latest', { digest: 'sha256:x' });
  assert.deepEqual(await idx.get('tag:docker.io/library/alpine:latest'), { digest: 'sha256:x' });
  const files = (await allFiles(join(root, 'v1', 'index'))).filter((f) => f.endsWith('.json'));
  assert.equal(files.length, 1);
  const p = join(root, 'v1', 'index', files[0]!);
  const text = await readFile(p, 'utf8');
  await writeFile(p, text.replace('sha256:x', 'sha256:y'));
  assert.equal(await idx.get('tag:docker.io/library/alpine:latest'), undefined);
});

test('forEachChunk() reads an entry through one buffer; a corrupt entry fails at its end and is removed', async () => {
  const root = await mkdtemp(join(tmpdir(), 'lading-cache-'));
  const data = randomBytes(10_000);
  const d = sha256(data);
  await new BlobCache(root).write(d, Readable.from([data]), data.length);
  // A fresh instance does not trust the entry: it hashes while reading, and the bytes are right.
  const cache = new BlobCache(root);
  const copies: Buffer[] = [];
  await cache.forEachChunk(
    d,
    data.length,
    (c) => {
      copies.push(Buffer.from(c));
    },
    1024,
  );
  assert.equal(copies.length, 10);
  assert.ok(Buffer.concat(copies).equals(data));
  // Corrupt the file on disk (a new mtime, so no longer trusted): the read fails and drops it.
  const path = cache.pathFor(d);
  const bad = Buffer.from(data);
  bad.writeUInt8(bad.readUInt8(5000) ^ 0xff, 5000);
  await writeFile(path, bad);
  await assert.rejects(
    new BlobCache(root).forEachChunk(d, data.length, () => {}, 1024),
    (err: unknown) => isLadingError(err) && err.code === 'E_DIGEST_MISMATCH' && err.message.includes(path),
  );
  assert.equal(await cache.has(d), false);
});

test('a chunk kept past its forEachChunk call is detached, never overwritten under its keeper', async () => {
  // The trap of issue 17 item 7: a consumer that keeps the piece instead of copying it. With a
  // reused buffer its bytes would turn into later bytes of the blob; here they are gone at once.
  const root = await mkdtemp(join(tmpdir(), 'lading-cache-'));
  const data = randomBytes(5000);
  const d = sha256(data);
  const cache = new BlobCache(root);
  await cache.write(d, Readable.from([data]), data.length);
  const kept: Buffer[] = [];
  await cache.forEachChunk(d, data.length, (c) => kept.push(c), 1024);
  assert.equal(kept.length, 5);
  for (const c of kept) {
    assert.equal(c.length, 0, 'a kept chunk reads as empty');
    assert.equal(c.buffer.byteLength, 0, 'its memory is detached');
  }
  // So a keeper fails loudly, instead of getting a plausible mix of the blob's later bytes.
  assert.throws(() => Buffer.concat(kept), /detached/);
});

test('copies() hands out chunks a consumer may keep: each owns its memory', async () => {
  const root = await mkdtemp(join(tmpdir(), 'lading-cache-'));
  const data = randomBytes(10_000);
  const d = sha256(data);
  await new BlobCache(root).write(d, Readable.from([data]), data.length);
  const kept: Buffer[] = [];
  for await (const c of new BlobCache(root).copies(d, data.length, 1024)) kept.push(c);
  assert.equal(kept.length, 10);
  assert.equal(new Set(kept.map((c) => c.buffer)).size, 10, 'no two chunks share memory');
  assert.ok(Buffer.concat(kept).equals(data));
  const path = new BlobCache(root).pathFor(d);
  await writeFile(path, Buffer.concat([data.subarray(0, 9999), Buffer.from([data[9999]! ^ 1])]));
  await assert.rejects(
    (async () => {
      for await (const _ of new BlobCache(root).copies(d, data.length, 1024)) {
        // read through
      }
    })(),
    (err: unknown) => isLadingError(err) && err.code === 'E_DIGEST_MISMATCH',
  );
  assert.equal(await new BlobCache(root).has(d), false);
});
