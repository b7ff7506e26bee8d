import assert from 'node:assert/strict';
import { lstat, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { type BuiltLayout, buildLayout } from '../helpers/images.ts';

// Weak spot of issue 12: a PAX uid/gid no system can have aborted the whole unpack (lchown threw).
// Now that entry is refused and named, the rest unpacks, and the exit status is 7.
let work: string;
let layout: BuiltLayout;
before(async () => {
  work = await mkdtemp(join(tmpdir(), 'lading-paxowner-'));
  layout = await buildLayout({
    layers: [
      {
        entries: [
          { path: 'huge-uid', content: 'a', pax: { uid: '99999999999999999999999' } },
          { path: 'huge-gid', content: 'b', pax: { gid: '4294967296' } },
          { path: 'minus-one', content: 'c', pax: { uid: '4294967295' } },
          { path: 'ok', content: 'fine', uid: 1000, gid: 1000, pax: { uid: '4294967294' } },
        ],
      },
    ],
  });
});
after(() => rm(work, { recursive: true, force: true }));

test('unpack refuses entries with impossible PAX owners, names them, and goes on', async () => {
  const dest = join(work, 'rootfs');
  const r = await runCli(['unpack', `oci:${layout.dir}:latest`, dest]);
  assert.equal(r.code, 7, r.stderr);
  for (const name of ['huge-uid', 'huge-gid', 'minus-one'])
    assert.match(
      r.stderr,
      new RegExp(`lading: warning: entry "${name}" in layer 0 .* has an owner no system can have`),
    );
  assert.doesNotMatch(r.stderr, /internal error|ERR_OUT_OF_RANGE/);
  assert.deepEqual(await readdir(dest), ['ok']);
  assert.equal(await readFile(join(dest, 'ok'), 'utf8'), 'fine');
  // The largest valid uid is applied as it is (running as root).
  assert.equal((await lstat(join(dest, 'ok'))).uid, 4294967294);
});
