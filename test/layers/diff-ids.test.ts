import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { type BuiltLayout, buildLayout, layerTar } from '../helpers/images.ts';

// Weak spot of issue 12: unpack, export and extract read layers by their compressed digest only,
// so a layer whose content differs from the config's diff_id (the image's identity) went through.
// Now every layer read is verified uncompressed too: an integrity error, exit 5.
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
let work: string;
let lying: string;

/** Copies an OCI layout and rewrites its config so that layer 0's diff_id is `diffId`. */
async function withDiffId(layout: BuiltLayout, diffId: string): Promise<string> {
  const dir = await mkdtemp(join(work, 'layout-'));
  await (await import('node:fs/promises')).cp(layout.dir, dir, { recursive: true });
  const blob = (d: string) => join(dir, 'blobs', 'sha256', d.slice('sha256:'.length));
  const put = async (b: Buffer) => {
    await writeFile(blob(sha(b)), b);
    return sha(b);
  };
  const image = layout.images[0]!;
  const config = JSON.parse(image.config.toString());
  config.rootfs.diff_ids[0] = diffId;
  const configBytes = Buffer.from(JSON.stringify(config));
  const manifest = JSON.parse(image.manifest.toString());
  manifest.config = { ...manifest.config, digest: await put(configBytes), size: configBytes.length };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
  index.manifests[0] = {
    ...index.manifests[0],
    digest: await put(manifestBytes),
    size: manifestBytes.length,
  };
  await writeFile(join(dir, 'index.json'), JSON.stringify(index));
  return dir;
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'lading-diffids-'));
  const layout = await buildLayout({
    layers: [
      {
        entries: [
          { path: 'etc/', type: 'directory' },
          { path: 'etc/motd', content: 'the layer the config does not name\n' },
        ],
      },
    ],
  });
  // The config names another tar's digest: what a registry serving a swapped layer looks like.
  const other = await layerTar([{ path: 'etc/motd', content: 'what the image really is\n' }]);
  lying = await withDiffId(layout, sha(other));
});
after(() => rm(work, { recursive: true, force: true }));

test('unpack: a diff_id mismatch is an integrity error (exit 5) and leaves nothing', async () => {
  const box = await mkdtemp(join(work, 'u-'));
  const r = await runCli(['unpack', `oci:${lying}:latest`, join(box, 'rootfs')]);
  assert.equal(r.code, 5, r.stderr);
  assert.match(
    r.stderr,
    /lading: error: digest mismatch for the uncompressed layer 0 .*\(its diff_id in the config\)/,
  );
  assert.deepEqual(await readdir(box), []);
});

test('extract: a diff_id mismatch is an integrity error (exit 5) and leaves nothing', async () => {
  const box = await mkdtemp(join(work, 'x-'));
  const r = await runCli(['extract', `oci:${lying}:latest`, '/etc/motd', '-o', join(box, 'motd')]);
  assert.equal(r.code, 5, r.stderr);
  assert.match(r.stderr, /digest mismatch for the uncompressed layer 0/);
  assert.deepEqual(await readdir(box), []);
});

test('export: a diff_id mismatch is an integrity error (exit 5) and leaves no file', async () => {
  const box = await mkdtemp(join(work, 'e-'));
  const r = await runCli(['export', `oci:${lying}:latest`, '-o', join(box, 'fs.tar')]);
  assert.equal(r.code, 5, r.stderr);
  assert.match(r.stderr, /digest mismatch for the uncompressed layer 0/);
  assert.deepEqual(await readdir(box), []);
});
