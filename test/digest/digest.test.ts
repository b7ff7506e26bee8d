import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import fc from 'fast-check';
import { isDigest, parseDigest, readAtMost, sha256, VerifyStream } from '../../src/digest/index.ts';
import { isLadingError } from '../../src/errors/index.ts';

test('digests are validated before use in URLs or paths (CVE-2024-3727)', () => {
  const ok = `sha256:${'0'.repeat(64)}`;
  assert.equal(parseDigest(ok), ok);
  assert.ok(isDigest(`sha512:${'f'.repeat(128)}`));
  for (const bad of [
    `sha256:${'0'.repeat(63)}`,
    `sha256:${'A'.repeat(64)}`,
    `sha256:../../${'0'.repeat(58)}`,
    `sha256:${'0'.repeat(64)}/../x`,
    `md5:${'0'.repeat(32)}`,
    'sha256',
    '',
    `SHA256:${'0'.repeat(64)}`,
  ]) {
    assert.throws(
      () => parseDigest(bad),
      (e: unknown) => isLadingError(e) && e.code === 'E_BAD_DIGEST',
      bad,
    );
  }
});

test('property: any string is either a valid digest or rejected; valid ones are safe path segments', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.stringMatching(/^sha256:[0-9a-f]{60,66}$/)), (s) => {
      if (isDigest(s)) {
        assert.match(s, /^sha(256|512):[0-9a-f]+$/);
      }
    }),
  );
});

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

test('VerifyStream passes good bytes and fails wrong digest or size before end', async () => {
  const data = Buffer.from('hello world');
  const d = sha256(data);
  const out = await collect(Readable.from([data]).pipe(new VerifyStream({ digest: d, size: data.length })));
  assert.deepEqual(out, data);

  const tampered = Buffer.from('hello worle');
  await assert.rejects(
    pipeline(
      Readable.from([tampered]),
      new VerifyStream({ digest: d, size: data.length, source: 'test' }),
      async (s: AsyncIterable<Buffer>) => {
        for await (const _ of s) {
          // drain
        }
      },
    ),
    (e: unknown) =>
      isLadingError(e) &&
      e.code === 'E_DIGEST_MISMATCH' &&
      e.message.includes(d) &&
      e.message.includes(createHash('sha256').update(tampered).digest('hex')),
  );
  await assert.rejects(
    collect(Readable.from([data]).pipe(new VerifyStream({ digest: d, size: 5 }))),
    (e: unknown) => isLadingError(e) && e.code === 'E_SIZE_MISMATCH',
  );
  await assert.rejects(
    collect(Readable.from([data.subarray(0, 5)]).pipe(new VerifyStream({ digest: d, size: data.length }))),
    (e: unknown) => isLadingError(e) && e.code === 'E_SIZE_MISMATCH',
  );
});

test('readAtMost caps in-memory reads', async () => {
  assert.equal((await readAtMost(Readable.from([Buffer.alloc(10)]), 10, 'x')).length, 10);
  await assert.rejects(
    readAtMost(Readable.from([Buffer.alloc(6), Buffer.alloc(6)]), 10, 'manifest'),
    (e: unknown) => isLadingError(e) && e.code === 'E_TOO_LARGE' && e.message.includes('manifest'),
  );
});
