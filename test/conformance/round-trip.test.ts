import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { removeAtExit, requireBin, run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { buildLayout, multiArchImage, pushLayout } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

// The round-trip conformance suite (issue 13): every writer's output is read by the program a
// user would hand it to: skopeo, podman (pull, load), buildah (from), umoci (unpack), GNU tar and
// Python's tarfile. The image is made by the real tools: buildah commits two layers (hardlinks,
// setuid, xattrs and a file capability, a FIFO, a device, a long UTF-8 name, mtimes of 1960 and
// 2300, then whiteouts), GNU tar makes a third layer with an opaque directory, skopeo pushes it as
// OCI and as Docker schema2; skopeo pushes a Docker manifest list. podman and buildah run with
// private storage (vfs) under a temp directory; nothing leaves 127.0.0.1.

const LONG = `${'é'.repeat(60)}${'名'.repeat(20)}`;
const T1960 = -315_619_200;
const T2300 = 10_413_792_000;
const CAP = '0sAQAAAgAgAAAAAAAAAAAAAAAAAAA=';

let reg: TestRegistry;
let work: string;
/** podman refuses a runroot longer than 50 characters: a short directory of its own. */
let runroot: string;
let layout: string;
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

const store = (tool: string) => [
  '--root',
  join(work, `${tool}-root`),
  '--runroot',
  join(runroot, tool),
  '--storage-driver',
  'vfs',
];
const buildah = async (args: string[]) =>
  (await run('buildah', [...store('buildah'), ...args])).stdout.toString().trim();
const podman = async (args: string[]) =>
  (await run('podman', [...store('podman'), '--events-backend', 'none', ...args])).stdout.toString().trim();
const skopeo = async (args: string[]) => (await run('skopeo', args)).stdout.toString();
const lading = async (args: string[]) => {
  const r = await runCli(args, {
    env: { HOME: '/nonexistent', PATH: process.env.PATH, XDG_CACHE_HOME: join(work, 'cache') },
  });
  assert.equal(r.code, 0, `lading ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.toString().trim();
};

/** Two layers committed by buildah (Docker format), pushed by buildah into an OCI layout. */
async function buildahImage(): Promise<string> {
  const c = await buildah(['from', 'scratch']);
  const m = await buildah(['mount', c]);
  for (const d of ['etc', 'bin', 'dir/sub', 'keep']) await mkdir(join(m, d), { recursive: true });
  await writeFile(join(m, 'etc/a'), 'hi\n');
  await run('ln', [join(m, 'etc/a'), join(m, 'etc/a-link')]);
  await writeFile(join(m, 'etc/b'), 'linked\n');
  await run('ln', [join(m, 'etc/b'), join(m, 'keep/b-link')]);
  await writeFile(join(m, 'bin/su'), '#!/bin/sh\n');
  await run('chmod', ['4755', join(m, 'bin/su')]);
  await run('mkfifo', [join(m, 'fifo')]);
  await run('mknod', [join(m, 'null'), 'c', '1', '3']);
  await writeFile(join(m, 'dir/sub/gone'), 'gone\n');
  await writeFile(join(m, 'dir/old'), 'old\n');
  await writeFile(join(m, LONG), 'long\n');
  await run('setfattr', ['-n', 'user.test', '-v', 'hello', join(m, 'etc/a')]);
  await run('setfattr', ['-n', 'security.capability', '-v', CAP, join(m, 'bin/su')]);
  await run('touch', ['-m', '-h', '-d', `@${T1960}`, join(m, 'etc/a')]);
  await run('touch', ['-m', '-h', '-d', `@${T2300}`, join(m, 'bin/su')]);
  await buildah(['commit', '-q', '--format', 'docker', c, 'rt-l1']);
  const c2 = await buildah(['from', 'rt-l1']);
  const m2 = await buildah(['mount', c2]);
  await run('rm', ['-r', join(m2, 'etc/a-link'), join(m2, 'dir/sub')]);
  await writeFile(join(m2, 'dir/new'), 'new\n');
  await buildah(['commit', '-q', '--format', 'docker', c2, 'rt-l2']);
  const dir = join(work, 'buildah-oci');
  await buildah(['push', '-q', '--format', 'oci', 'rt-l2', `oci:${dir}:l2`]);
  return dir;
}

/** Adds a layer made by GNU tar with an opaque directory (`dir/` keeps only `fresh`), tagged `full`. */
async function addOpaqueLayer(dir: string): Promise<void> {
  const src = join(work, 'opaque');
  await mkdir(join(src, 'dir'), { recursive: true });
  await writeFile(join(src, 'dir/.wh..wh..opq'), '');
  await writeFile(join(src, 'dir/fresh'), 'fresh\n');
  const tar = (
    await run('tar', [
      '--format=posix',
      '--no-recursion',
      '-C',
      src,
      '-cf',
      '-',
      'dir',
      'dir/.wh..wh..opq',
      'dir/fresh',
    ])
  ).stdout;
  const gz = gzipSync(tar);
  const blob = (b: Buffer) => writeFile(join(dir, 'blobs', 'sha256', sha(b).slice(7)), b);
  const read = async (d: string) =>
    JSON.parse(await readFile(join(dir, 'blobs', 'sha256', d.slice(7)), 'utf8'));
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
  const manifest = await read(index.manifests[0].digest);
  const config = await read(manifest.config.digest);
  config.rootfs.diff_ids.push(sha(tar));
  config.history = [...(config.history ?? []), { created: '2024-01-01T00:00:00Z', created_by: 'GNU tar' }];
  const cfg = Buffer.from(JSON.stringify(config));
  await blob(gz);
  await blob(cfg);
  manifest.config = { ...manifest.config, digest: sha(cfg), size: cfg.length };
  manifest.layers.push({
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    digest: sha(gz),
    size: gz.length,
  });
  const mb = Buffer.from(JSON.stringify(manifest));
  await blob(mb);
  index.manifests.push({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: sha(mb),
    size: mb.length,
    annotations: { 'org.opencontainers.image.ref.name': 'full' },
  });
  await writeFile(join(dir, 'index.json'), JSON.stringify(index));
}

before(async () => {
  for (const b of ['buildah', 'podman', 'umoci', 'skopeo', 'setfattr', 'python3']) requireBin(b);
  reg = await sharedRegistry('none');
  // Lower-case paths: buildah names an image read from oci:PATH after PATH.
  const id = randomBytes(4).toString('hex');
  work = join(tmpdir(), `lading-round-trip-${id}`);
  runroot = `/tmp/lrt-${id}`;
  for (const d of [work, runroot]) {
    await mkdir(d);
    removeAtExit(d);
  }
  layout = await buildahImage();
  await addOpaqueLayer(layout);
  const push = (extra: string[], to: string) =>
    skopeo([
      'copy',
      '-q',
      '--dest-tls-verify=false',
      ...extra,
      `oci:${layout}:full`,
      `docker://${reg.host}/${to}`,
    ]);
  await Promise.all([
    push([], 'rt/oci:1'),
    push(['--format', 'v2s2'], 'rt/s2:1'),
    pushLayout(await buildLayout(multiArchImage()), reg, 'rt/multi:1', { format: 'v2s2', all: true }),
  ]);
});
after(stopSharedRegistries);

interface TreeChecks {
  /** Whether the consumer restores xattrs (GNU tar with --xattrs, umoci as root). */
  xattrs?: boolean;
  /**
   * umoci 0.4.7 sets mtimes after 2038-01-19 to -2^31 whoever wrote the layer (the same with the
   * layers skopeo pushed, unchanged): checked with the other consumers.
   */
  after2038?: false;
  /**
   * buildah 1.28 (containers/storage) sets mtimes before 1970 (and, in the containers it makes,
   * after 2038) to 0, for its own images too (seen by hand: buildah commit of a 1960 file, then
   * buildah from; here the registry's layers are the bytes skopeo pushed): checked with the others.
   */
  before1970?: false;
}

/** The root filesystem every consumer must see. */
async function checkTree(root: string, how: TreeChecks = {}): Promise<void> {
  const st = (p: string) => lstat(join(root, p));
  const gone = async (p: string) =>
    assert.equal(await st(p).catch(() => undefined), undefined, `${p} is deleted`);
  assert.equal(await readFile(join(root, 'etc/a'), 'utf8'), 'hi\n');
  if (how.before1970 !== false)
    assert.equal(Math.floor((await st('etc/a')).mtimeMs / 1000), T1960, 'etc/a mtime (1960)');
  await gone('etc/a-link');
  await gone('dir/sub');
  await gone('dir/old'); // below the opaque directory
  await gone('dir/new');
  assert.equal(await readFile(join(root, 'dir/fresh'), 'utf8'), 'fresh\n');
  assert.equal((await st('etc/b')).ino, (await st('keep/b-link')).ino, 'hardlink kept');
  const su = await st('bin/su');
  assert.equal(su.mode & 0o7777, 0o4755, 'setuid');
  if (how.after2038 !== false) assert.equal(Math.floor(su.mtimeMs / 1000), T2300, 'bin/su mtime (2300)');
  assert.ok((await st('fifo')).isFIFO(), 'FIFO');
  const dev = await st('null');
  assert.ok(dev.isCharacterDevice(), 'device');
  assert.equal(dev.rdev, 0x103);
  assert.equal(await readFile(join(root, LONG), 'utf8'), 'long\n');
  if (how.xattrs) {
    const x = await run('getfattr', [
      '--absolute-names',
      '-n',
      'user.test',
      '--only-values',
      join(root, 'etc/a'),
    ]);
    assert.equal(x.stdout.toString(), 'hello');
    const c = await run('getfattr', [
      '--absolute-names',
      '-e',
      'base64',
      '-n',
      'security.capability',
      join(root, 'bin/su'),
    ]);
    assert.match(c.stdout.toString(), /security\.capability=0sAQAAAgAgAAAAAAAAAAAAAAAAAAA=/);
  }
}

async function umociTree(image: string, name: string): Promise<string> {
  const bundle = join(work, `umoci-${name}`);
  await run('umoci', ['unpack', '--image', image, bundle]);
  return join(bundle, 'rootfs');
}

const UMOCI: TreeChecks = { xattrs: true, after2038: false };
const BUILDAH: TreeChecks = { before1970: false, after2038: false };

async function buildahTree(image: string, flags: string[] = []): Promise<string> {
  return buildah(['mount', await buildah(['from', ...flags, image])]);
}

async function podmanLayers(ref: string): Promise<number> {
  const j = JSON.parse(await podman(['image', 'inspect', ref])) as { RootFS: { Layers: string[] } }[];
  return j[0]!.RootFS.Layers.length;
}

describe('round trip: every writer read by the real consumers', { concurrency: 2 }, () => {
  test('oci: (from Docker schema2, converted): skopeo, umoci, buildah and podman read it', async () => {
    const dir = join(work, 'w-oci');
    await lading(['copy', '-q', `docker://${reg.host}/rt/s2:1`, `oci:${dir}:1`]);
    const inspect = JSON.parse(await skopeo(['inspect', `oci:${dir}:1`]));
    assert.equal(inspect.Layers.length, 3);
    await checkTree(await umociTree(`${dir}:1`, 'oci'), UMOCI);
    await checkTree(await buildahTree(`oci:${dir}:1`), BUILDAH);
    const id = await podman(['pull', '-q', `oci:${dir}:1`]);
    assert.equal(await podmanLayers(id), 3);
  });

  test('oci-archive: podman load and skopeo copy read it', async () => {
    const file = join(work, 'w.oci.tar');
    await lading(['copy', '-q', `docker://${reg.host}/rt/oci:1`, `oci-archive:${file}:1`]);
    const loaded = await podman(['load', '-q', '-i', file]);
    assert.match(loaded, /Loaded image/);
    const out = join(work, 'from-oci-archive');
    await skopeo(['copy', '-q', `oci-archive:${file}:1`, `oci:${out}:1`]);
    await checkTree(await umociTree(`${out}:1`, 'oci-archive'), UMOCI);
  });

  test('docker-archive: podman load, skopeo and buildah read it', async () => {
    const file = join(work, 'w.docker.tar');
    await lading(['copy', '-q', `docker://${reg.host}/rt/s2:1`, `docker-archive:${file}:rt/archived:1`]);
    const loaded = await podman(['load', '-q', '-i', file]);
    assert.match(loaded, /rt\/archived:1/);
    assert.equal(await podmanLayers('localhost/rt/archived:1').catch(() => podmanLayers('rt/archived:1')), 3);
    assert.equal(JSON.parse(await skopeo(['inspect', `docker-archive:${file}`])).Layers.length, 3);
    await checkTree(await buildahTree(`docker-archive:${file}`), BUILDAH);
  });

  test('dir: skopeo copies it out (verifying every blob) and umoci unpacks the copy', async () => {
    const dir = join(work, 'w-dir');
    await lading(['copy', '-q', `docker://${reg.host}/rt/oci:1`, `dir:${dir}`]);
    const out = join(work, 'from-dir');
    await skopeo(['copy', '-q', `dir:${dir}`, `oci:${out}:1`]);
    await checkTree(await umociTree(`${out}:1`, 'dir'), UMOCI);
  });

  test('docker://: podman pulls what lading pushed, skopeo inspects it', async () => {
    const digest = await lading(['copy', '-q', `oci:${layout}:full`, `docker://${reg.host}/rt/pushed:1`]);
    const inspect = JSON.parse(
      await skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/rt/pushed:1`]),
    );
    assert.equal(inspect.Digest, digest);
    await podman(['pull', '-q', '--tls-verify=false', `${reg.host}/rt/pushed:1`]);
    assert.equal(await podmanLayers(`${reg.host}/rt/pushed:1`), 3);
    await checkTree(await buildahTree(`docker://${reg.host}/rt/pushed:1`, ['--tls-verify=false']), BUILDAH);
  });

  test('--all of a Docker manifest list into oci: an OCI index skopeo copies out whole', async () => {
    const dir = join(work, 'w-multi');
    await lading(['copy', '-q', '--all', `docker://${reg.host}/rt/multi:1`, `oci:${dir}:1`]);
    const raw = JSON.parse(await skopeo(['inspect', '--raw', `oci:${dir}:1`]));
    assert.equal(raw.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.equal(raw.manifests.length, 3);
    await skopeo(['copy', '-q', '--all', `oci:${dir}:1`, `dir:${join(work, 'multi-dir')}`]);
  });

  test('podman: (podman load of a streamed docker-archive) and back out through podman save', async () => {
    // lading runs `podman`; a storage.conf gives it this test's private storage.
    const conf = join(work, 'storage.conf');
    await writeFile(
      conf,
      `[storage]\ndriver = "vfs"\ngraphroot = "${join(work, 'podman-root')}"\nrunroot = "${join(runroot, 'podman')}"\n`,
    );
    const saved = process.env.CONTAINERS_STORAGE_CONF;
    process.env.CONTAINERS_STORAGE_CONF = conf;
    try {
      await lading(['copy', '-q', `docker://${reg.host}/rt/oci:1`, 'podman:rt/engine:1']);
      assert.equal(
        await podmanLayers('localhost/rt/engine:1').catch(() => podmanLayers('docker.io/rt/engine:1')),
        3,
      );
      const back = join(work, 'from-podman');
      await lading(['copy', '-q', 'podman:rt/engine:1', `oci:${back}:1`]);
      await checkTree(await umociTree(`${back}:1`, 'podman'), UMOCI);
    } finally {
      if (saved === undefined) delete process.env.CONTAINERS_STORAGE_CONF;
      else process.env.CONTAINERS_STORAGE_CONF = saved;
    }
  });

  test('build: an image built on the Docker schema2 base, read by umoci and podman', async () => {
    const ctx = join(work, 'build');
    await mkdir(join(ctx, 'root', 'app'), { recursive: true });
    await writeFile(join(ctx, 'root', 'app', 'hello'), 'built\n');
    await writeFile(
      join(ctx, 'spec.json'),
      JSON.stringify({ fromImage: `${reg.host}/rt/s2:1`, copyToRoot: ['root'], config: { User: '0' } }),
    );
    const out = join(work, 'built');
    const r = await runCli(['build', join(ctx, 'spec.json'), '-o', `oci:${out}:1`], {
      env: { HOME: '/nonexistent', PATH: process.env.PATH, XDG_CACHE_HOME: join(work, 'cache') },
      cwd: ctx,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(await skopeo(['inspect', `oci:${out}:1`])).Layers.length, 4);
    const root = await umociTree(`${out}:1`, 'built');
    await checkTree(root, UMOCI);
    assert.equal(await readFile(join(root, 'app', 'hello'), 'utf8'), 'built\n');
    const id = await podman(['pull', '-q', `oci:${out}:1`]);
    assert.equal(await podmanLayers(id), 4);
  });

  test('export: GNU tar extracts the tree (xattrs, devices, 1960 and 2300), Python tarfile reads every entry', async () => {
    const file = join(work, 'fs.tar');
    await lading(['export', '-q', `docker://${reg.host}/rt/oci:1`, '-o', file]);
    const dest = join(work, 'gnu-x');
    await mkdir(dest);
    await run('tar', ['--xattrs', '--xattrs-include=*', '-xf', file, '-C', dest]);
    await checkTree(dest, { xattrs: true });
    const py = await run('python3', [
      '-c',
      [
        'import json,sys,tarfile',
        'with tarfile.open(sys.argv[1]) as t:',
        '  print(json.dumps({m.name.rstrip("/"): [m.type.decode(), int(m.mtime // 1), sorted(m.pax_headers)] for m in t}))',
      ].join('\n'),
      file,
    ]);
    const got = JSON.parse(py.stdout.toString()) as Record<string, [string, number, string[]]>;
    assert.equal(got['etc/a']![1], T1960);
    assert.ok(got['etc/a']![2].includes('SCHILY.xattr.user.test'));
    assert.equal(got['bin/su']![1], T2300);
    assert.ok(got['bin/su']![2].includes('SCHILY.xattr.security.capability'));
    assert.equal(got.fifo![0], '6');
    assert.equal(got.null![0], '3');
    assert.ok(LONG in got);
    const links = [got['etc/b']![0], got['keep/b-link']![0]].sort();
    assert.deepEqual(links, ['0', '1']);
    for (const p of ['etc/a-link', 'dir/old', 'dir/new', 'dir/sub', 'dir/.wh..wh..opq'])
      assert.ok(!(p in got), p);
  });
});
