import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readlinkSync } from 'node:fs';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { buildLayout, prng, registryFetch, smallImage } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

// Issue 13.5: a docker-archive (and an engine, which gives one) labels every layer gzip while its
// bytes are plain tar. Every layer lading writes must be what its media type says: checked on the
// bytes (magic numbers, gunzip to the config's diff_id) and by skopeo and umoci reading them.

let reg: TestRegistry;
let work: string;
let archive: string;

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

before(async () => {
  reg = await sharedRegistry('none');
  work = await mkdtemp(join(tmpdir(), 'lading-layer-bytes-'));
  const image = await buildLayout({
    ...smallImage('layer-bytes'),
    layers: [
      { entries: [{ path: 'a/one', content: 'one\n' }] },
      { entries: [{ path: 'b/two', content: prng('layer-bytes', 4 << 20) }], compression: 'none' },
    ],
  });
  archive = join(work, 'skopeo.tar');
  // skopeo writes the layers uncompressed into the archive, as docker save does.
  await run('skopeo', ['copy', '-q', `oci:${image.dir}:${image.tag}`, `docker-archive:${archive}:la/app:1`]);
});
after(() => stopSharedRegistries());

interface Written {
  manifest: {
    mediaType: string;
    config: { digest: string };
    layers: { mediaType: string; digest: string }[];
  };
  blob(digest: string): Promise<Buffer>;
}

/** Every layer's bytes match its media type, and decompress to the config's diff_id. */
async function assertLayersMatch(w: Written): Promise<void> {
  const config = JSON.parse((await w.blob(w.manifest.config.digest)).toString());
  assert.equal(w.manifest.layers.length, config.rootfs.diff_ids.length);
  for (const [i, l] of w.manifest.layers.entries()) {
    const bytes = await w.blob(l.digest);
    assert.equal(sha(bytes), l.digest);
    const gz = bytes[0] === 0x1f && bytes[1] === 0x8b;
    if (/gzip$/.test(l.mediaType)) {
      assert.ok(gz, `layer ${i} is labelled ${l.mediaType} but is not gzip`);
      assert.equal(sha(gunzipSync(bytes)), config.rootfs.diff_ids[i]);
    } else {
      assert.match(l.mediaType, /(\.tar|diff\.tar)$/, `layer ${i}: ${l.mediaType}`);
      assert.ok(!gz, `layer ${i} is labelled uncompressed but is gzip`);
      assert.equal(sha(bytes), config.rootfs.diff_ids[i]);
    }
  }
}

function fromRegistry(repo: string, tag: string): Promise<Written> {
  return (async () => {
    const res = await registryFetch(reg, repo, `/v2/${repo}/manifests/${tag}`, {
      headers: {
        accept:
          'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json',
      },
    });
    assert.equal(res.status, 200);
    return {
      manifest: (await res.json()) as Written['manifest'],
      blob: async (d: string) =>
        Buffer.from(await (await registryFetch(reg, repo, `/v2/${repo}/blobs/${d}`)).arrayBuffer()),
    };
  })();
}

async function fromDir(dir: string): Promise<Written> {
  return {
    manifest: JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')),
    blob: (d) => readFile(join(dir, d.slice(7))),
  };
}

async function fromOci(dir: string): Promise<Written> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
  const blob = (d: string) => readFile(join(dir, 'blobs', 'sha256', d.slice(7)));
  return { manifest: JSON.parse((await blob(index.manifests[0].digest)).toString()), blob };
}

describe('layers from a docker-archive are written as their media types say', () => {
  test('to a registry: gzip-compressed, and skopeo and umoci read the image back', async () => {
    const r = await runCli(['copy', '-q', `docker-archive:${archive}`, `docker://${reg.host}/la/pushed:1`]);
    assert.equal(r.code, 0, r.stderr);
    // Reading each layer's first bytes leaves no file of the archive open.
    await new Promise((res) => setTimeout(res, 50));
    const open = (await readdir('/proc/self/fd')).map((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`, { encoding: 'utf8' });
      } catch {
        return ''; // the directory listing's own descriptor, closed by now
      }
    });
    assert.ok(!open.includes(archive), 'the archive is closed');
    await assertLayersMatch(await fromRegistry('la/pushed', '1'));
    const back = join(work, 'back');
    await run('skopeo', [
      'copy',
      '-q',
      '--src-tls-verify=false',
      `docker://${reg.host}/la/pushed:1`,
      `oci:${back}:1`,
    ]);
    await run('umoci', ['unpack', '--rootless', '--image', `${back}:1`, join(work, 'bundle')]);
    assert.equal(await readFile(join(work, 'bundle', 'rootfs', 'a', 'one'), 'utf8'), 'one\n');
  });

  test('--dest-compress-format gzip compresses them (it did nothing before)', async () => {
    const r = await runCli([
      'copy',
      '-q',
      '--dest-compress-format',
      'gzip',
      `docker-archive:${archive}`,
      `docker://${reg.host}/la/gzip:1`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    await assertLayersMatch(await fromRegistry('la/gzip', '1'));
  });

  test('to dir: and oci: (converted to OCI): gzip as labelled; skopeo inspects both', async () => {
    const dir = join(work, 'dir');
    const oci = join(work, 'oci');
    for (const dst of [`dir:${dir}`, `oci:${oci}:1`]) {
      const r = await runCli(['copy', '-q', `docker-archive:${archive}`, dst]);
      assert.equal(r.code, 0, r.stderr);
    }
    await assertLayersMatch(await fromDir(dir));
    const o = await fromOci(oci);
    assert.equal(o.manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    await assertLayersMatch(o);
    await run('skopeo', ['inspect', `dir:${dir}`]);
    await run('skopeo', ['inspect', `oci:${oci}:1`]);
    await run('umoci', ['unpack', '--rootless', '--image', `${oci}:1`, join(work, 'bundle-oci')]);
    assert.ok(existsSync(join(work, 'bundle-oci', 'rootfs', 'b', 'two')));
  });

  test('--dest-compress-format none keeps them plain, labelled as plain tar', async () => {
    const dir = join(work, 'plain');
    const r = await runCli([
      'copy',
      '-q',
      '--dest-compress-format',
      'none',
      `docker-archive:${archive}`,
      `dir:${dir}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const w = await fromDir(dir);
    assert.ok(w.manifest.layers.every((l) => l.mediaType.endsWith('diff.tar')));
    await assertLayersMatch(w);
  });

  test('--preserve-digests refuses when the layers would need new bytes', async () => {
    const r = await runCli([
      'copy',
      '--preserve-digests',
      `docker-archive:${archive}`,
      `docker://${reg.host}/la/preserved:1`,
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--preserve-digests forbids/);
  });
});
