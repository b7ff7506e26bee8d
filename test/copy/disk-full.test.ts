import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { requireBin, run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type BuiltLayout, bigImage, buildLayout } from '../helpers/images.ts';

// A real full disk: a 2 MiB tmpfs (needs root and mount(8); a refusal fails the test, never skips).
let mnt: string;
let big: BuiltLayout;
let mounted = false;

before(async () => {
  big = await buildLayout(bigImage(8));
  mnt = await mkdtemp(join(tmpdir(), 'lading-diskfull-'));
  const r = await run(requireBin('mount'), ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt]);
  assert.equal(r.code, 0, `mount -t tmpfs failed (root needed): ${r.stderr}`);
  mounted = true;
});
after(async () => {
  if (mounted) await run('umount', [mnt]);
  await rm(mnt, { recursive: true, force: true });
});

for (const compress of [undefined, 'zstd'] as const) {
  test(`copy into a full disk fails with ENOSPC and leaves nothing${compress ? ` (recompressing to ${compress})` : ''}`, async () => {
    const dest = join(mnt, compress ? 'y' : 'x');
    const r = await runCli([
      'copy',
      '-q',
      '--no-cache',
      ...(compress ? ['--dest-compress-format', compress] : []),
      `oci:${big.dir}:latest`,
      `oci:${dest}:latest`,
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /ENOSPC|no space left/i);
    assert.deepEqual(await readdir(mnt), [], 'nothing half-written under the destination');
  });
}
