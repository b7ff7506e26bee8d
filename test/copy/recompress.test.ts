import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import { requireBin, run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.ts';
import { type BuiltLayout, buildLayout, smallImage, uncompressedImage } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

let reg: TestRegistry;
let proxy: FaultProxy;
let plain: BuiltLayout;
let gz: BuiltLayout;
let work: string;
let env: NodeJS.ProcessEnv;

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

before(async () => {
  reg = await sharedRegistry('none');
  proxy = await startFaultProxy(reg.url);
  plain = await buildLayout(uncompressedImage('recompress'));
  gz = await buildLayout(smallImage('recompress'));
  work = await mkdtemp(join(tmpdir(), 'lading-recompress-test-'));
  env = { HOME: '/nonexistent', PATH: process.env.PATH, XDG_CACHE_HOME: join(work, 'cache') };
});
after(async () => {
  await proxy.stop();
  await stopSharedRegistries();
});

const cli = (args: string[]) => runCli(args, { env, cwd: work });

interface Manifest {
  mediaType?: string;
  config: { digest: string };
  layers: { mediaType: string; digest: string; size: number }[];
}

async function skopeoRaw(ref: string): Promise<Manifest> {
  const r = await run(requireBin('skopeo'), ['inspect', '--tls-verify=false', '--raw', ref]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.toString()) as Manifest;
}

async function skopeoConfig(ref: string): Promise<{ rootfs: { diff_ids: string[] } }> {
  const r = await run(requireBin('skopeo'), ['inspect', '--tls-verify=false', '--config', '--raw', ref]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.toString()) as { rootfs: { diff_ids: string[] } };
}

/** Blob bytes from the registry (through the proxy), to check digests independently. */
async function registryBlob(repo: string, digest: string): Promise<Buffer> {
  const res = await fetch(`${reg.url}/v2/${repo}/blobs/${digest}`);
  assert.equal(res.status, 200);
  return Buffer.from(await res.arrayBuffer());
}

describe('recompression on copy', () => {
  test('uncompressed layers pushed to a registry are gzip-compressed by default', async () => {
    proxy.clear();
    const r = await cli(['copy', '-q', `oci:${plain.dir}:latest`, `docker://${proxy.host}/rc/plain:1`]);
    assert.equal(r.code, 0, r.stderr);
    const m = await skopeoRaw(`docker://${reg.host}/rc/plain:1`);
    const cfg = await skopeoConfig(`docker://${reg.host}/rc/plain:1`);
    assert.equal(m.layers.length, 3);
    const src = plain.images[0]!;
    for (const [i, l] of m.layers.entries()) {
      assert.equal(l.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
      const bytes = await registryBlob('rc/plain', l.digest);
      assert.equal(sha(bytes), l.digest);
      assert.equal(bytes.length, l.size);
      // The uncompressed content is the source layer; the config's diff_ids still name it.
      assert.equal(sha(gunzipSync(bytes)), src.layers[i]!.diffId);
      assert.equal(cfg.rootfs.diff_ids[i], src.layers[i]!.diffId);
      assert.notEqual(l.digest, src.layers[i]!.digest);
    }
    assert.equal(m.config.digest, src.configDigest);
    const res = await fetch(`${reg.url}/v2/rc/plain/manifests/1`, {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    assert.equal(r.stdout.toString().trim(), sha(Buffer.from(await res.arrayBuffer())));
    const uploads = proxy.log.filter((e) => e.method === 'PUT' && e.path.includes('/blobs/uploads/'));
    assert.equal(uploads.length, 4, 'three recompressed layers and the config were uploaded');
    // The layers were compressed straight into the upload: one streamed PATCH each, digest at the end.
    const patches = proxy.log.filter((e) => e.method === 'PATCH' && e.path.includes('/blobs/uploads/'));
    assert.equal(patches.length, 3);
  });

  test('a streamed upload that fails (a 500 to a PATCH, a connection dropped mid-body) starts over', async () => {
    proxy.clear();
    proxy.addRule({ method: 'PATCH', path: /\/v2\/rc\/retry\/blobs\/uploads\//, status: 500, times: 1 });
    proxy.addRule({
      method: 'PATCH',
      path: /\/v2\/rc\/retry\/blobs\/uploads\//,
      dropRequestAfterBytes: 1000,
      times: 1,
    });
    const r = await cli([
      'copy',
      '-q',
      '--retry-delay',
      '10ms',
      // No blob-info cache: earlier tests pushed these layers, which would be mounted, not uploaded.
      '--no-cache',
      `oci:${plain.dir}:latest`,
      `docker://${proxy.host}/rc/retry:1`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const patches = proxy.log.filter((e) => e.method === 'PATCH');
    assert.ok(
      patches.some((e) => e.status === 500),
      'the first PATCH failed',
    );
    assert.ok(
      patches.some((e) => e.fault === 'drop'),
      'a later PATCH lost its connection half-way through the body',
    );
    assert.equal(patches.length, 5, 'three layers plus the two failed attempts');
    const m = await skopeoRaw(`docker://${reg.host}/rc/retry:1`);
    const cfg = await skopeoConfig(`docker://${reg.host}/rc/retry:1`);
    for (const [i, l] of m.layers.entries()) {
      const bytes = await registryBlob('rc/retry', l.digest);
      assert.equal(sha(bytes), l.digest);
      assert.equal(sha(gunzipSync(bytes)), cfg.rootfs.diff_ids[i]);
    }
  });

  test('--dest-compress-format none keeps uncompressed layers as they are', async () => {
    const r = await cli([
      'copy',
      '-q',
      '--dest-compress-format',
      'none',
      `oci:${plain.dir}:latest`,
      `docker://${reg.host}/rc/keep:1`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString().trim(), plain.digest);
    const m = await skopeoRaw(`docker://${reg.host}/rc/keep:1`);
    assert.deepEqual(
      m.layers.map((l) => l.digest),
      plain.images[0]!.layers.map((l) => l.digest),
    );
  });

  test('--dest-compress-format zstd recompresses gzip layers into an OCI layout', async () => {
    const out = join(work, 'zstd');
    const r = await cli([
      'copy',
      '-q',
      '--dest-compress-format',
      'zstd',
      '--dest-compress-level',
      '3',
      `oci:${gz.dir}:latest`,
      `oci:${out}:z`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const m = await skopeoRaw(`oci:${out}:z`);
    const src = gz.images[0]!;
    for (const [i, l] of m.layers.entries()) {
      assert.equal(l.mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
      const bytes = await readFile(join(out, 'blobs', 'sha256', l.digest.slice(7)));
      assert.equal(sha(bytes), l.digest);
      assert.equal(bytes.length, l.size);
      assert.equal(sha(zstdDecompressSync(bytes)), src.layers[i]!.diffId);
    }
    const digest = r.stdout.toString().trim();
    const raw = await readFile(join(out, 'blobs', 'sha256', digest.slice(7)));
    assert.equal(sha(raw), digest);
    // And back to gzip into a registry, readable by skopeo as a whole.
    const back = await cli([
      'copy',
      '-q',
      '--dest-compress-format',
      'gzip',
      `oci:${out}:z`,
      `docker://${reg.host}/rc/back:1`,
    ]);
    assert.equal(back.code, 0, back.stderr);
    const copied = join(work, 'back-dir');
    const s = await run(requireBin('skopeo'), [
      'copy',
      '--src-tls-verify=false',
      `docker://${reg.host}/rc/back:1`,
      `dir:${copied}`,
    ]);
    assert.equal(s.code, 0, s.stderr);
  });

  test('zstd into a Docker schema 2 manifest is refused before anything is written', async () => {
    proxy.clear();
    const r = await cli([
      'copy',
      '-q',
      '--format',
      'v2s2',
      '--dest-compress-format',
      'zstd',
      `oci:${gz.dir}:latest`,
      `docker://${proxy.host}/rc/refused:1`,
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /zstd/);
    assert.match(r.stderr, /--format oci/);
    assert.equal(proxy.log.filter((e) => e.method !== 'GET' && e.method !== 'HEAD').length, 0);
  });

  test('a level without a format is a usage error', async () => {
    const r = await cli(['copy', '--dest-compress-level', '5', `oci:${gz.dir}:latest`, `oci:${work}/lvl`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--dest-compress-level needs --dest-compress-format/);
    const bad = await cli([
      'copy',
      '--dest-compress-format',
      'gzip',
      '--dest-compress-level',
      '12',
      `oci:${gz.dir}:latest`,
      `oci:${work}/lvl`,
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /expected 1-9 for gzip, got "12"/);
  });
});
