import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { requireBin, run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { startFaultProxy } from '../helpers/fault-proxy.ts';
import { type BuiltLayout, buildLayout, MULTI_ARCH, multiArchImage, pushLayout } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

let reg: TestRegistry;
let amd64: BuiltLayout;
let arm64: BuiltLayout;
let armv7: BuiltLayout;
let work: string;
let env: NodeJS.ProcessEnv;

before(async () => {
  reg = await sharedRegistry('none');
  const [a, b, c] = multiArchImage();
  [amd64, arm64, armv7] = await Promise.all([buildLayout(a!), buildLayout(b!), buildLayout(c!)]);
  await pushLayout(amd64, reg, 'idx/app:amd64');
  work = await mkdtemp(join(tmpdir(), 'lading-index-test-'));
  env = { HOME: '/nonexistent', PATH: process.env.PATH, XDG_CACHE_HOME: join(work, 'cache') };
});
after(stopSharedRegistries);

const cli = (args: string[]) => runCli(args, { env, cwd: work });

interface Index {
  mediaType: string;
  manifests: { mediaType: string; digest: string; size: number; platform: Record<string, string> }[];
}

async function rawIndex(ref: string): Promise<Index> {
  const r = await run(requireBin('skopeo'), ['inspect', '--tls-verify=false', '--raw', ref]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.toString()) as Index;
}

test('index create assembles an OCI index from a registry image and local layouts', async () => {
  const r = await cli([
    'index',
    'create',
    '-q',
    `docker://${reg.host}/idx/app:multi`,
    `docker://${reg.host}/idx/app:amd64`,
    `oci:${arm64.dir}:latest`,
    `oci:${armv7.dir}:latest`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const index = await rawIndex(`docker://${reg.host}/idx/app:multi`);
  assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.deepEqual(
    index.manifests.map((m) => m.digest),
    [amd64, arm64, armv7].map((l) => l.digest),
  );
  assert.deepEqual(
    index.manifests.map((m) => m.platform),
    MULTI_ARCH.map((p) => ({ ...p })),
  );
  // The whole index is there: skopeo copies every platform.
  const s = await run(requireBin('skopeo'), [
    'copy',
    '--all',
    '--src-tls-verify=false',
    `docker://${reg.host}/idx/app:multi`,
    `oci:${join(work, 'all')}:x`,
  ]);
  assert.equal(s.code, 0, s.stderr);
  // Printed digest is the index's.
  const d = await run(requireBin('skopeo'), [
    'inspect',
    '--tls-verify=false',
    '--format',
    '{{.Digest}}',
    `docker://${reg.host}/idx/app:multi`,
  ]);
  assert.equal(r.stdout.toString().trim(), d.stdout.toString().trim());
});

test('Docker schema 2 images give a Docker manifest list', async () => {
  for (const [l, tag] of [
    [amd64, 'v2-amd64'],
    [arm64, 'v2-arm64'],
  ] as const) {
    const c = await cli([
      'copy',
      '-q',
      '--format',
      'v2s2',
      `oci:${l.dir}:latest`,
      `docker://${reg.host}/idx/v2:${tag}`,
    ]);
    assert.equal(c.code, 0, c.stderr);
  }
  const r = await cli([
    'index',
    'create',
    '-q',
    `docker://${reg.host}/idx/v2:list`,
    `docker://${reg.host}/idx/v2:v2-amd64`,
    `docker://${reg.host}/idx/v2:v2-arm64`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const index = await rawIndex(`docker://${reg.host}/idx/v2:list`);
  assert.equal(index.mediaType, 'application/vnd.docker.distribution.manifest.list.v2+json');
  assert.deepEqual(
    index.manifests.map((m) => m.mediaType),
    [
      'application/vnd.docker.distribution.manifest.v2+json',
      'application/vnd.docker.distribution.manifest.v2+json',
    ],
  );
});

test('two images of the same platform are refused and nothing is pushed', async () => {
  const r = await cli([
    'index',
    'create',
    '-q',
    `docker://${reg.host}/idx/dup:multi`,
    `oci:${amd64.dir}:latest`,
    `docker://${reg.host}/idx/app:amd64`,
  ]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /both linux\/amd64/);
  const s = await run(
    requireBin('skopeo'),
    ['inspect', '--tls-verify=false', '--raw', `docker://${reg.host}/idx/dup:multi`],
    { allowFail: true },
  );
  assert.notEqual(s.code, 0, 'no index was pushed');
});

test('a refused index pushes nothing at all: every image is checked before the first upload', async () => {
  // Through a proxy that logs every request: the destination registry must see only reads.
  const proxy = await startFaultProxy(reg.url);
  try {
    const r = await cli([
      'index',
      'create',
      '-q',
      '--tls-verify=false',
      `docker://${proxy.host}/idx/dup2:multi`,
      `oci:${armv7.dir}:latest`,
      `oci:${arm64.dir}:latest`,
      `oci:${arm64.dir}:latest`,
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /are both linux\/arm64\/v8: an index holds one image per platform \(nothing was written\)/,
    );
    const writes = proxy.log.filter((e) => e.method !== 'GET' && e.method !== 'HEAD');
    assert.deepEqual(
      writes.map((e) => `${e.method} ${e.path}`),
      [],
    );
  } finally {
    await proxy.stop();
  }
  const s = await run(
    requireBin('skopeo'),
    ['inspect', '--tls-verify=false', '--raw', `docker://${reg.host}/idx/dup2@${armv7.digest}`],
    { allowFail: true },
  );
  assert.notEqual(s.code, 0, 'the first image was not pushed either');
});
