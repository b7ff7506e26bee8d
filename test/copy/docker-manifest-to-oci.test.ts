import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import {
  buildLayout,
  layerTar,
  MEDIA_TYPES,
  multiArchImage,
  pushBlob,
  pushLayout,
  pushManifest,
  smallImage,
} from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

// Issue 13.3/13.4: Docker schema2 images written to an OCI layout are converted to OCI, as skopeo
// does, and the conversion equals skopeo's byte for byte (skopeo re-encodes the config through
// image-spec's Go type). Every expected digest here is the one skopeo 1.9 produces at test time.

let reg: TestRegistry;
let work: string;

before(async () => {
  reg = await sharedRegistry('none');
  await pushLayout(await buildLayout(smallImage('v2s2-to-oci')), reg, 'v2s2/app:1', { format: 'v2s2' });
  await pushLayout(await buildLayout(multiArchImage()), reg, 'v2s2/multi:1', { format: 'v2s2', all: true });
  work = await mkdtemp(join(tmpdir(), 'lading-v2s2-oci-'));
});
after(() => stopSharedRegistries());

interface Layout {
  top: string;
  manifest: { mediaType: string; config?: { digest: string }; manifests: { digest: string }[] };
  config: Buffer;
}

async function readLayout(dir: string): Promise<Layout> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
  const top = index.manifests[0].digest as string;
  const blob = (d: string) => readFile(join(dir, 'blobs', 'sha256', d.slice(7)));
  const manifest = JSON.parse((await blob(top)).toString());
  const config = manifest.config ? await blob(manifest.config.digest) : Buffer.alloc(0);
  return { top, manifest, config };
}

/** Pushes a Docker schema2 image with this exact config text (one gzip layer). */
async function pushS2(repo: string, config: (diffId: string) => string): Promise<void> {
  const tar = await layerTar([{ path: 'etc/hello', content: 'hi\n', mtime: 1_700_000_000 }]);
  const diffId = `sha256:${(await import('node:crypto')).createHash('sha256').update(tar).digest('hex')}`;
  const gz = gzipSync(tar);
  const layer = await pushBlob(reg, repo, gz);
  const cfg = Buffer.from(config(diffId));
  const cfgDigest = await pushBlob(reg, repo, cfg);
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.dockerManifest,
    config: {
      mediaType: 'application/vnd.docker.container.image.v1+json',
      size: cfg.length,
      digest: cfgDigest,
    },
    layers: [
      { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: gz.length, digest: layer },
    ],
  };
  await pushManifest(reg, repo, '1', Buffer.from(JSON.stringify(manifest)), MEDIA_TYPES.dockerManifest);
}

async function skopeo(args: string[]): Promise<void> {
  await run('skopeo', ['copy', '-q', '--src-tls-verify=false', '--dest-tls-verify=false', ...args]);
}

describe('Docker schema2 into an OCI layout', () => {
  test('is converted by default, equal to skopeo, and skopeo and umoci read it', async () => {
    const src = `docker://${reg.host}/v2s2/app:1`;
    const mine = join(work, 'mine');
    const theirs = join(work, 'theirs');
    const r = await runCli(['copy', src, `oci:${mine}:1`]);
    assert.equal(r.code, 0, r.stderr);
    await skopeo([src, `oci:${theirs}:1`]);
    const a = await readLayout(mine);
    const b = await readLayout(theirs);
    assert.equal(a.manifest.mediaType, MEDIA_TYPES.ociManifest);
    assert.equal(a.top, b.top);
    assert.equal(r.stdout.toString().trim(), b.top);
    assert.deepEqual(a.config, b.config);
    const inspect = JSON.parse((await run('skopeo', ['inspect', `oci:${mine}:1`])).stdout.toString());
    assert.equal(inspect.Digest, b.top);
    await run('umoci', ['unpack', '--rootless', '--image', `${mine}:1`, join(work, 'bundle')]);
    assert.ok(existsSync(join(work, 'bundle', 'rootfs')));
  });

  test('--preserve-digests refuses the conversion and writes nothing', async () => {
    const out = join(work, 'preserved');
    const r = await runCli(['copy', '--preserve-digests', `docker://${reg.host}/v2s2/app:1`, `oci:${out}:1`]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /changes its digest, which --preserve-digests forbids/);
    assert.ok(!existsSync(out));
    const arch = join(work, 'preserved.tar');
    const r2 = await runCli([
      'copy',
      '--preserve-digests',
      `docker://${reg.host}/v2s2/app:1`,
      `oci-archive:${arch}`,
    ]);
    assert.equal(r2.code, 2, r2.stderr);
    assert.ok(!existsSync(arch));
    // To a registry nothing needs converting: the digest is kept.
    const r3 = await runCli([
      'copy',
      '-q',
      '--preserve-digests',
      `docker://${reg.host}/v2s2/app:1`,
      `docker://${reg.host}/v2s2/kept:1`,
    ]);
    assert.equal(r3.code, 0, r3.stderr);
  });

  test('--all of a Docker manifest list gives the OCI index skopeo gives', async () => {
    const src = `docker://${reg.host}/v2s2/multi:1`;
    const mine = join(work, 'multi-mine');
    const theirs = join(work, 'multi-theirs');
    const r = await runCli(['copy', '--all', src, `oci:${mine}:1`]);
    assert.equal(r.code, 0, r.stderr);
    await skopeo(['--all', src, `oci:${theirs}:1`]);
    const a = await readLayout(mine);
    const b = await readLayout(theirs);
    assert.equal(a.manifest.mediaType, MEDIA_TYPES.ociIndex);
    assert.equal(a.top, b.top);
    for (const m of b.manifest.manifests)
      assert.ok(existsSync(join(mine, 'blobs', 'sha256', m.digest.slice(7))), m.digest);
  });
});

describe('the converted config equals skopeo byte for byte', () => {
  const configs: [string, (diffId: string) => string][] = [
    [
      'trailing newline, other key order, extra fields',
      (d) =>
        `{"rootfs":{"diff_ids":["${d}"],"type":"layers"},"os":"linux","docker_version":"20.10","architecture":"amd64","container_config":{"Hostname":"x"},"config":{"Hostname":"h","Env":["PATH=/bin"],"Cmd":["sh"],"Labels":{"z":"1","a":"<&>"},"ExposedPorts":{"80/tcp":{}},"Volumes":{},"Healthcheck":{"Test":["x"]}},"created":"2024-05-06T07:08:09.120000000Z","history":[{"created":"2024-05-06T07:08:09+02:00","created_by":"RUN x","empty_layer":false,"comment":"c","extra":1}],"id":"abc"}\n`,
    ],
    [
      'keys of another case, repeated keys, times with +00:00 and 12 fraction digits, null fields',
      (d) =>
        `{\n  "OS": "linux",\n  "Architecture": "arm64", "Variant": "v8",\n  "os.version": "1", "config": {"Env": null, "User": "u", "User": "v", "ArgsEscaped": true, "StopSignal": "SIGTERM", "Entrypoint": []},\n  "created": "2023-01-01T00:00:00.123456789999+00:00",\n  "rootfs": {"type": "layers", "diff_ids": ["${d}"]},\n  "author": "\\u2028 é"\n}\n\n`,
    ],
  ];
  for (const [name, config] of configs) {
    test(name, async () => {
      const repo = `v2s2/cfg-${configs.findIndex((c) => c[0] === name)}`;
      await pushS2(repo, config);
      const src = `docker://${reg.host}/${repo}:1`;
      const mine = join(work, `${repo.replace('/', '-')}-mine`);
      const theirs = join(work, `${repo.replace('/', '-')}-theirs`);
      const r = await runCli(['copy', src, `oci:${mine}:1`]);
      assert.equal(r.code, 0, r.stderr);
      await skopeo(['--format', 'oci', src, `oci:${theirs}:1`]);
      const a = await readLayout(mine);
      const b = await readLayout(theirs);
      assert.equal(a.config.toString(), b.config.toString());
      assert.equal(a.top, b.top);
      // The same conversion into a registry (--format oci): the same digest as skopeo's.
      const rr = await runCli([
        'copy',
        '-q',
        '--format',
        'oci',
        src,
        `docker://${reg.host}/${repo}:oci-mine`,
      ]);
      assert.equal(rr.code, 0, rr.stderr);
      await skopeo(['--format', 'oci', src, `docker://${reg.host}/${repo}:oci-theirs`]);
      const digest = async (tag: string) =>
        JSON.parse(
          (
            await run('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/${repo}:${tag}`])
          ).stdout.toString(),
        ).Digest;
      assert.equal(rr.stdout.toString().trim(), await digest('oci-theirs'));
      assert.equal(await digest('oci-mine'), await digest('oci-theirs'));
    });
  }
});
