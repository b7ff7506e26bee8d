import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { createIndex } from '../../src/copy/index.ts';
import { copyImage, ErrorCode, hasCode } from '../../src/index.ts';
import { OciLayoutSink, OciLayoutSource } from '../../src/transports/index.ts';
import { type BuiltLayout, buildLayout, uncompressedImage } from '../helpers/images.ts';

// Issue 17.6: the compression-level rule lived in the CLI, so the library's copyImage took a gzip
// level of 50 (a zlib RangeError mid-copy) or a level without a format (silently ignored).
// createIndex copies with the same ImageCopier, which checks the level; before, it failed half-way
// with E_IO ("options.level is out of range") after creating the staging directory.

let image: BuiltLayout;
let work: string;
before(async () => {
  image = await buildLayout(uncompressedImage('levels'));
  work = await mkdtemp(join(tmpdir(), 'lading-levels-'));
});

for (const [name, opts, message] of [
  [
    'a gzip level out of range',
    { compress: 'gzip', compressLevel: 50 },
    /compressLevel: expected 1-9 for gzip, got 50/,
  ],
  ['a zstd level that is not an integer', { compress: 'zstd', compressLevel: 2.5 }, /expected 1-22 for zstd/],
  ['a level without a format', { compressLevel: 3 }, /compressLevel needs compress gzip or zstd/],
] as const) {
  test(`library copyImage refuses ${name} before writing anything`, async () => {
    const dst = join(work, name.replaceAll(' ', '-'));
    await assert.rejects(
      copyImage(new OciLayoutSource(image.dir, image.tag), new OciLayoutSink(dst, 'x'), opts),
      (err: unknown) => hasCode(err, ErrorCode.BadArgument) && message.test((err as Error).message),
    );
    assert.ok(!existsSync(dst), 'nothing written');
  });
}

test('library createIndex refuses a gzip level out of range before writing anything', async () => {
  const dst = join(work, 'index-level');
  await assert.rejects(
    createIndex([new OciLayoutSource(image.dir, image.tag)], new OciLayoutSink(dst, 'x'), {
      compress: 'gzip',
      compressLevel: 50,
    }),
    (err: unknown) =>
      hasCode(err, ErrorCode.BadArgument) &&
      /compressLevel: expected 1-9 for gzip, got 50/.test((err as Error).message),
  );
  assert.ok(!existsSync(dst), 'nothing written');
});
