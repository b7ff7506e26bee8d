import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { buildLayout, smallImage } from '../helpers/images.ts';

test('export: a deterministic tar of the flattened tree, equal to unpack once extracted', async () => {
  const spec = smallImage('export');
  spec.layers.push({
    entries: [
      { path: 'etc/.wh.os-release', content: '' },
      { path: 'usr/bin/hello-link', type: 'link', linkname: 'usr/bin/hello' },
    ],
  });
  const layout = await buildLayout(spec);
  const work = await mkdtemp(join(tmpdir(), 'lading-export-'));
  const env = { HOME: '/nonexistent', PATH: process.env.PATH };
  const a = join(work, 'a.tar');
  const b = join(work, 'b.tar');
  assert.equal((await runCli(['export', `oci:${layout.dir}:latest`, '-o', a], { env })).code, 0);
  const second = await runCli(['export', `oci:${layout.dir}:latest`], { env });
  assert.equal(second.code, 0, second.stderr);
  const { writeFile } = await import('node:fs/promises');
  await writeFile(b, second.stdout);
  const sha = (x: Buffer) => createHash('sha256').update(x).digest('hex');
  assert.equal(sha(await readFile(a)), sha(await readFile(b)), 'two exports are byte-identical');
  const listing = (await run('tar', ['-tvf', a])).stdout.toString();
  assert.doesNotMatch(listing, /os-release/);
  assert.doesNotMatch(listing, /\.wh\./);
  assert.match(listing, /usr\/bin\/hello-link link to usr\/bin\/hello/);
  // Extracted, it is the same tree as unpack gives.
  const x = join(work, 'x');
  await mkdir(x);
  await run('tar', ['-xpf', a, '-C', x]);
  const u = join(work, 'u');
  assert.equal((await runCli(['unpack', `oci:${layout.dir}:latest`, u], { env })).code, 0);
  await run('diff', ['-r', '--no-dereference', x, u]);
});
