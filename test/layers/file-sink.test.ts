import assert from 'node:assert/strict';
import { mkdtemp, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { FileSink } from '../../src/layers/file-sink.ts';

test('FileSink writes every piece, with the mode asked for', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lading-sink-'));
  const pieces = Array.from({ length: 40 }, (_, i) => Buffer.alloc(70_000, i));
  await pipeline(Readable.from(pieces), new FileSink(join(dir, 'f'), 0o600));
  assert.ok((await readFile(join(dir, 'f'))).equals(Buffer.concat(pieces)));
  assert.equal((await stat(join(dir, 'f'))).mode & 0o777, 0o600);
});

test('FileSink never writes over an existing name or through a symlink', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lading-sink-'));
  await writeFile(join(dir, 'there'), 'keep');
  assert.throws(() => new FileSink(join(dir, 'there'), 0o600), { code: 'EEXIST' });
  await symlink(join(dir, 'target'), join(dir, 'link'));
  assert.throws(() => new FileSink(join(dir, 'link'), 0o600), { code: 'EEXIST' });
  await assert.rejects(stat(join(dir, 'target')), { code: 'ENOENT' });
  assert.equal(await readFile(join(dir, 'there'), 'utf8'), 'keep');
});
// A full disk (ENOSPC from writeSync) is tested on a real tmpfs: cli/output-file.test.ts, "unpack".
