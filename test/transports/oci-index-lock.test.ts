import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { requireBin, run, track, untrack } from '../helpers/bins.ts';
import { type BuiltLayout, buildLayout, smallImage } from '../helpers/images.ts';

// Weak spot of issue 12: 10 concurrent `lading copy` into one oci: layout kept 6-9 of the 10 tags,
// all exiting 0 (each read index.json, added its tag and wrote it back over the others').
// index.json is now read, changed and written under an exclusive lock.
const bin = join(import.meta.dirname, '..', '..', 'bin', 'lading');
let work: string;
let sources: BuiltLayout[];

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'lading-ocilock-'));
  sources = await Promise.all([0, 1].map((i) => buildLayout(smallImage(`lock-${i}`))));
});
after(() => rm(work, { recursive: true, force: true }));

function lading(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [bin, ...args], {
      env: { PATH: process.env.PATH, HOME: '/nonexistent', TMPDIR: work },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    track(c);
    let stderr = '';
    c.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    c.on('close', (code) => {
      untrack(c);
      resolve({ code, stderr });
    });
  });
}

test('10 concurrent copies into one new oci: layout keep all 10 tags; skopeo reads each', async () => {
  const dest = join(work, 'layout');
  const tags = Array.from({ length: 10 }, (_, i) => `t${i}`);
  const results = await Promise.all(
    tags.map((t, i) => lading(['copy', '-q', `oci:${sources[i % 2]!.dir}:latest`, `oci:${dest}:${t}`])),
  );
  for (const [i, r] of results.entries()) assert.equal(r.code, 0, `copy ${i}: ${r.stderr}`);
  const index = JSON.parse(await readFile(join(dest, 'index.json'), 'utf8'));
  const names = index.manifests.map(
    (m: { annotations?: Record<string, string> }) => m.annotations?.['org.opencontainers.image.ref.name'],
  );
  assert.deepEqual(names.sort(), tags);
  assert.deepEqual((await readdir(dest)).sort(), ['blobs', 'index.json', 'oci-layout'], 'no lock file left');
  const skopeo = requireBin('skopeo');
  for (const [i, t] of tags.entries()) {
    const r = await run(skopeo, ['inspect', '--raw', `oci:${dest}:${t}`]);
    assert.equal(
      JSON.parse(r.stdout.toString()).config.digest,
      sources[i % 2]!.images[0]!.configDigest,
      `tag ${t}`,
    );
  }
});
