import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  closureOf,
  parseBuildSpec,
  planLayers,
  popularityOrder,
  splitLayers,
} from '../../src/build/index.ts';
import { requireBin, run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { startFaultProxy } from '../helpers/fault-proxy.ts';
import { sharedRegistry, stopSharedRegistries } from '../helpers/registry.ts';

after(() => stopSharedRegistries());

interface Fixture {
  dir: string;
  app: string;
  libc: string;
  root: string;
  spec: Record<string, unknown>;
}

async function fixture(): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'lading-build-'));
  const libc = join(dir, 'nix/store/aaaa-libc');
  const app = join(dir, 'nix/store/bbbb-app');
  const root = join(dir, 'root');
  await mkdir(join(libc, 'lib'), { recursive: true });
  await writeFile(join(libc, 'lib/libc.so'), 'not really a libc\n');
  await mkdir(join(app, 'bin'), { recursive: true });
  await writeFile(join(app, 'bin/app'), '#!/bin/sh\necho app\n');
  await chmod(join(app, 'bin/app'), 0o755);
  await symlink('../aaaa-libc/lib', join(app, 'lib'));
  await mkdir(join(root, 'etc'), { recursive: true });
  await writeFile(join(root, 'etc/hello.txt'), 'hello\n');
  await writeFile(
    join(dir, 'graph.json'),
    JSON.stringify([
      { path: app, references: [app, libc] },
      { path: libc, references: [] },
    ]),
  );
  const spec = {
    closureGraph: 'graph.json',
    layers: [{ paths: [app], maxLayers: 2 }],
    copyToRoot: ['root'],
    rewrites: [{ regex: `^${dir}`, repl: '' }],
    perms: [{ regex: 'bin/app$', mode: '0750', uid: 1000, gid: 100, uname: 'app', gname: 'users' }],
    config: { Cmd: ['/nix/store/bbbb-app/bin/app'], Env: ['PATH=/bin'], Labels: { a: 'b' } },
  };
  await writeFile(join(dir, 'spec.json'), JSON.stringify(spec));
  return { dir, app, libc, root, spec };
}

async function build(f: Fixture, dest: string, env: NodeJS.ProcessEnv = {}) {
  const r = await runCli(['build', join(f.dir, 'spec.json'), '-o', dest, '--json'], {
    env: { HOME: '/nonexistent-home', PATH: process.env.PATH, ...env },
  });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.toString()) as { digest: string; config: string; layers: string[] };
}

describe('lading build', () => {
  test('same spec, same digests; one changed file changes only its layer', async () => {
    const f = await fixture();
    const a = await build(f, `oci:${join(f.dir, 'out1')}:v1`);
    const b = await build(f, `oci:${join(f.dir, 'out2')}:v1`);
    assert.deepEqual(a, { ...b, destination: (a as Record<string, unknown>).destination } as typeof a);
    assert.equal(a.layers.length, 3, 'libc, app, copyToRoot');
    await writeFile(join(f.app, 'bin/app'), '#!/bin/sh\necho changed\n');
    const c = await build(f, `oci:${join(f.dir, 'out3')}:v1`);
    assert.equal(c.layers[0], a.layers[0]);
    assert.notEqual(c.layers[1], a.layers[1]);
    assert.equal(c.layers[2], a.layers[2]);
    assert.notEqual(c.digest, a.digest);
  });

  test('another place, other mtimes and inodes, another run: the same digests, gzip included', async () => {
    const a = await fixture();
    const b = await fixture();
    // b's files are touched to other times (and are other inodes in another directory).
    await run('find', [b.dir, '-exec', 'touch', '-h', '-d', '2001-02-03 04:05:06', '{}', '+']);
    const gz = async (f: Fixture, jobs: string) => {
      const r = await runCli([
        'build',
        join(f.dir, 'spec.json'),
        '-o',
        `oci:${join(f.dir, 'gz')}:v1`,
        '--json',
        '--no-cache',
        '--jobs',
        jobs,
        '--dest-compress-format',
        'gzip',
      ]);
      assert.equal(r.code, 0, r.stderr);
      const got = JSON.parse(r.stdout.toString());
      delete got.destination;
      return got;
    };
    const one = await gz(a, '1');
    const two = await gz(b, '6');
    assert.deepEqual(two, one);
    const manifest = JSON.parse(await readFile(join(b.dir, 'gz/blobs/sha256', two.digest.slice(7)), 'utf8'));
    assert.equal(manifest.layers.length, 3);
    assert.ok(manifest.layers.every((l: { mediaType: string }) => l.mediaType.endsWith('+gzip')));
  });

  test('the layer digest cache skips unchanged layers and never hides a change', async () => {
    const f = await fixture();
    const cacheDir = join(f.dir, 'cache');
    const run1 = await runCli([
      'build',
      join(f.dir, 'spec.json'),
      '-o',
      `oci:${join(f.dir, 'o1')}:v1`,
      '--json',
      '--cache-dir',
      cacheDir,
    ]);
    assert.equal(run1.code, 0, run1.stderr);
    const a = JSON.parse(run1.stdout.toString());
    const cached = (await run('find', [join(cacheDir, 'build-layers'), '-name', '*.json'])).stdout
      .toString()
      .trim()
      .split('\n');
    assert.equal(cached.length, 3, 'one entry per layer');
    // Same size, same second: only the content (and so the ctime) differs.
    await writeFile(join(f.root, 'etc/hello.txt'), 'HELLO\n');
    const run2 = await runCli([
      'build',
      join(f.dir, 'spec.json'),
      '-o',
      `oci:${join(f.dir, 'o2')}:v1`,
      '--json',
      '--cache-dir',
      cacheDir,
    ]);
    assert.equal(run2.code, 0, run2.stderr);
    const b = JSON.parse(run2.stdout.toString());
    assert.deepEqual(b.layers.slice(0, 2), a.layers.slice(0, 2));
    assert.notEqual(b.layers[2], a.layers[2]);
    const uncached = await build(f, `oci:${join(f.dir, 'o3')}:v1`);
    assert.deepEqual(uncached.layers, b.layers, 'cached digests equal freshly hashed ones');
    assert.equal(
      await readFile(join(f.dir, 'o2/blobs/sha256', b.layers[2].slice(7)), 'utf8').then((t) =>
        t.includes('HELLO'),
      ),
      true,
    );
  });

  test('--dest-compress-format gzip: compressed layers, the config keeps the built diff IDs', async () => {
    const f = await fixture();
    const out = join(f.dir, 'out');
    const r = await runCli([
      'build',
      join(f.dir, 'spec.json'),
      '-o',
      `oci:${out}:v1`,
      '--json',
      '--dest-compress-format',
      'gzip',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const a = JSON.parse(r.stdout.toString());
    const manifest = JSON.parse(
      (await run('skopeo', ['inspect', '--raw', `oci:${out}:v1`])).stdout.toString(),
    );
    assert.deepEqual(
      manifest.layers.map((l: { mediaType: string }) => l.mediaType),
      Array(3).fill('application/vnd.oci.image.layer.v1.tar+gzip'),
    );
    const config = JSON.parse(
      (await run('skopeo', ['inspect', '--config', `oci:${out}:v1`])).stdout.toString(),
    );
    assert.deepEqual(config.rootfs.diff_ids, a.layers);
    const bad = await runCli([
      'build',
      join(f.dir, 'spec.json'),
      '-o',
      `oci:${out}2:v1`,
      '--dest-compress-level',
      '3',
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--dest-compress-level needs --dest-compress-format/);
  });

  test('SOURCE_DATE_EPOCH sets created when the spec has none', async () => {
    const f = await fixture();
    const out = join(f.dir, 'out');
    const a = await build(f, `oci:${out}:v1`, { SOURCE_DATE_EPOCH: '86400' });
    const cfg = JSON.parse(await readFile(join(out, 'blobs/sha256', a.config.slice(7)), 'utf8'));
    assert.equal(cfg.created, '1970-01-02T00:00:00Z');
    assert.equal(cfg.history.length, 3);
    assert.equal(cfg.rootfs.diff_ids.length, 3);
    assert.deepEqual(cfg.config.Cmd, ['/nix/store/bbbb-app/bin/app']);
  });

  test('skopeo inspects it, umoci unpacks it with the right tree, lading copies it unchanged', async () => {
    requireBin('skopeo');
    requireBin('umoci');
    const f = await fixture();
    const out = join(f.dir, 'out');
    const a = await build(f, `oci:${out}:v1`);
    const inspect = JSON.parse((await run('skopeo', ['inspect', `oci:${out}:v1`])).stdout.toString());
    assert.equal(inspect.Digest, a.digest);
    assert.deepEqual(inspect.Layers, a.layers);
    const raw = (await run('skopeo', ['inspect', '--raw', `oci:${out}:v1`])).stdout;
    const { createHash } = await import('node:crypto');
    assert.equal(`sha256:${createHash('sha256').update(raw).digest('hex')}`, a.digest);
    const bundle = join(f.dir, 'bundle');
    await run('umoci', ['unpack', '--rootless', '--image', `${out}:v1`, bundle]);
    const rootfs = join(bundle, 'rootfs');
    assert.equal(await readFile(join(rootfs, 'nix/store/bbbb-app/bin/app'), 'utf8'), '#!/bin/sh\necho app\n');
    assert.equal(
      await readFile(join(rootfs, 'nix/store/bbbb-app/lib/libc.so'), 'utf8'),
      'not really a libc\n',
    );
    assert.equal(await readFile(join(rootfs, 'etc/hello.txt'), 'utf8'), 'hello\n');
    assert.ok(!existsSync(join(rootfs, 'root')), 'copyToRoot contents go to /, not /root');
    // Layer entries as tar(1) sees them: owners, modes, mtime 1, absolute names.
    const layer = join(out, 'blobs/sha256', a.layers[1]!.slice(7));
    const list = (await run('tar', ['-tvf', layer, '--numeric-owner'])).stdout.toString();
    assert.match(list, /^-rwxr-x--- 1000\/100 .* 1970-01-01 00:00 \/nix\/store\/bbbb-app\/bin\/app$/m);
    assert.match(list, /^lrwxrwxrwx 0\/0 .* \/nix\/store\/bbbb-app\/lib -> \.\.\/aaaa-libc\/lib$/m);
    assert.match(list, /^drwxr-xr-x 0\/0 .* \/nix$/m);
    const copied = await runCli(['copy', `oci:${out}:v1`, `dir:${join(f.dir, 'copy')}`]);
    assert.equal(copied.code, 0, copied.stderr);
    assert.equal(copied.stdout.toString().trim(), a.digest);
  });

  test('spec from stdin; fromImage layers are passed through', async () => {
    const f = await fixture();
    const baseOut = join(f.dir, 'base');
    const base = await build(f, `oci:${baseOut}:b`);
    const spec = {
      fromImage: `oci:${baseOut}:b`,
      copyToRoot: [join(f.dir, 'root/etc')],
      config: { User: '1000' },
    };
    const out = join(f.dir, 'out');
    const r = await runCli(['build', '-', '-o', `oci:${out}:v1`, '--json'], { stdin: JSON.stringify(spec) });
    assert.equal(r.code, 0, r.stderr);
    const got = JSON.parse(r.stdout.toString());
    const inspect = JSON.parse((await run('skopeo', ['inspect', `oci:${out}:v1`])).stdout.toString());
    assert.deepEqual(inspect.Layers.slice(0, 3), base.layers);
    assert.equal(inspect.Layers.length, 4);
    assert.deepEqual(got.layers, [inspect.Layers[3]]);
    const cfg = JSON.parse(await readFile(join(out, 'blobs/sha256', got.config.slice(7)), 'utf8'));
    assert.equal(cfg.config.User, '1000');
    assert.deepEqual(cfg.config.Cmd, ['/nix/store/bbbb-app/bin/app'], 'base config kept');
    assert.equal(cfg.rootfs.diff_ids.length, 4);
  });

  test('fromImage from a registry: the platform picked from a Docker manifest list, Docker layers as OCI', async () => {
    const { buildLayout, multiArchImage, pushLayout } = await import('../helpers/images.ts');
    const reg = await sharedRegistry('none');
    await pushLayout(await buildLayout(multiArchImage()), reg, 'build/base:multi', { format: 'v2s2' });
    const baseRef = `docker://${reg.host}/build/base:multi`;
    const arm = ['--tls-verify=false', '--override-arch', 'arm64', '--override-variant', 'v8'];
    const baseManifest = JSON.parse(
      (await run('skopeo', ['inspect', '--raw', ...arm, baseRef])).stdout.toString(),
    );
    assert.equal(baseManifest.mediaType, 'application/vnd.docker.distribution.manifest.list.v2+json');
    const armDigest = baseManifest.manifests.find(
      (m: { platform: { architecture: string } }) => m.platform.architecture === 'arm64',
    ).digest;
    const armManifest = JSON.parse(
      (
        await run('skopeo', [
          'inspect',
          '--raw',
          '--tls-verify=false',
          `docker://${reg.host}/build/base@${armDigest}`,
        ])
      ).stdout.toString(),
    );
    const armConfig = JSON.parse(
      (await run('skopeo', ['inspect', '--config', ...arm, baseRef])).stdout.toString(),
    );
    const f = await fixture();
    const out = join(f.dir, 'out');
    const r = await runCli(['build', '-', '-o', `oci:${out}:v1`, '--json'], {
      stdin: JSON.stringify({
        fromImage: baseRef,
        architecture: 'arm64',
        variant: 'v8',
        copyToRoot: ['root'],
        config: { User: '1000' },
      }),
      cwd: f.dir,
    });
    assert.equal(r.code, 0, r.stderr);
    const got = JSON.parse(r.stdout.toString());
    const manifest = JSON.parse(await readFile(join(out, 'blobs/sha256', got.digest.slice(7)), 'utf8'));
    assert.equal(armManifest.layers[0].mediaType, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
    assert.deepEqual(manifest.layers[0], {
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      digest: armManifest.layers[0].digest,
      size: armManifest.layers[0].size,
    });
    assert.equal(manifest.layers.length, 2);
    const config = JSON.parse(await readFile(join(out, 'blobs/sha256', got.config.slice(7)), 'utf8'));
    assert.deepEqual(config.rootfs.diff_ids, [...armConfig.rootfs.diff_ids, got.layers[0]]);
    assert.equal(config.config.User, '1000');
    assert.deepEqual([config.architecture, config.variant], ['arm64', 'v8']);
    const bundle = join(f.dir, 'bundle');
    await run('umoci', ['unpack', '--rootless', '--image', `${out}:v1`, bundle]);
    assert.equal(await readFile(join(bundle, 'rootfs/arch.txt'), 'utf8'), 'arm64v8\n');
    assert.equal(await readFile(join(bundle, 'rootfs/etc/hello.txt'), 'utf8'), 'hello\n');
  });

  describe('bad specs name the field and write nothing', () => {
    const cases: [string, (f: Fixture) => unknown, RegExp][] = [
      ['unknown key', (f) => ({ ...f.spec, colour: 'red' }), /build spec: colour: unknown key/],
      ['unknown config key', (f) => ({ ...f.spec, config: { cmd: [] } }), /config\.cmd: unknown key/],
      [
        'missing path',
        (f) => ({ ...f.spec, layers: [{ paths: [f.app] }, { paths: [f.libc, join(f.dir, 'nope')] }] }),
        /layers\[1\]\.paths\[1\]: .*nope does not exist/,
      ],
      ['bad mode', (f) => ({ ...f.spec, perms: [{ regex: 'x', mode: 'rwx' }] }), /perms\[0\]\.mode/],
      [
        'bad maxLayers',
        (f) => ({ ...f.spec, layers: [{ paths: [f.app], maxLayers: 0 }] }),
        /layers\[0\]\.maxLayers/,
      ],
      ['bad created', (f) => ({ ...f.spec, created: 'yesterday' }), /created: must be an RFC 3339 time/],
      ['not an object', () => [], /build spec: \(top level\): must be an object/],
      [
        'unknown group key',
        (f) => ({ ...f.spec, layers: [{ paths: [f.app], max: 2 }] }),
        /layers\[0\]\.max: unknown key/,
      ],
      [
        'unknown perms key',
        (f) => ({ ...f.spec, perms: [{ regex: 'x', owner: 'root' }] }),
        /perms\[0\]\.owner: unknown key/,
      ],
      [
        'missing copyToRoot path',
        (f) => ({ ...f.spec, copyToRoot: ['root', 'gone'] }),
        /copyToRoot\[1\]: .*gone does not exist/,
      ],
      [
        'Env not a list',
        (f) => ({ ...f.spec, config: { Env: 'PATH=/bin' } }),
        /config\.Env: must be an array/,
      ],
      [
        'Cmd of numbers',
        (f) => ({ ...f.spec, config: { Cmd: ['/bin/app', 1] } }),
        /config\.Cmd\[1\]: must be a string/,
      ],
      [
        'ExposedPorts as a list',
        (f) => ({ ...f.spec, config: { ExposedPorts: ['80/tcp'] } }),
        /config\.ExposedPorts: must be an object/,
      ],
      [
        'a port that is no port',
        (f) => ({ ...f.spec, config: { ExposedPorts: { http: {} } } }),
        /config\.ExposedPorts\.http: must be a port/,
      ],
      [
        'a label that is no string',
        (f) => ({ ...f.spec, config: { Labels: { n: 1 } } }),
        /config\.Labels\.n: must be a string/,
      ],
      [
        'fromImage that is no location',
        (f) => ({ ...f.spec, fromImage: 'docker://Bad//ref' }),
        /build spec: fromImage: invalid image reference/,
      ],
      [
        'fromImage that does not exist',
        (f) => ({ ...f.spec, fromImage: `oci:${join(f.dir, 'no-layout')}:1` }),
        /build spec: fromImage: .*no-layout/,
      ],
      [
        'closureGraph object without a graph',
        (f) => ({ ...f.spec, closureGraph: { nodes: [] } }),
        /build spec: closureGraph: an object must be a derivation's \.attrs\.json/,
      ],
      [
        'a closure path that is not there',
        (f) => ({
          ...f.spec,
          closureGraph: [{ path: f.app, references: [join(f.dir, 'nix/store/zzzz-gone')] }],
        }),
        /layers\[0\] closure: cannot read .*zzzz-gone: ENOENT/,
      ],
      [
        'closureGraph entry without a path',
        (f) => ({ ...f.spec, closureGraph: [{ references: [] }] }),
        /closureGraph\[0\]\.path: must be a non-empty string/,
      ],
    ];
    for (const [name, make, re] of cases) {
      test(name, async () => {
        const f = await fixture();
        const out = join(f.dir, 'out');
        const r = await runCli(['build', '-', '-o', `oci:${out}:v1`], {
          stdin: JSON.stringify(make(f)),
          cwd: f.dir,
        });
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, re);
        assert.ok(!existsSync(out), 'nothing written');
      });
    }
  });
});

test('architecture, variant, os, created and history go into the config; two platforms make one index', async () => {
  const reg = await sharedRegistry('none');
  const f = await fixture();
  const spec = {
    ...f.spec,
    created: '2024-05-01T12:00:00Z',
    history: { created_by: 'spec', author: 'me', comment: 'top' },
    layers: [{ paths: [f.app], maxLayers: 2, history: { created_by: 'group', comment: 'store' } }],
  };
  const built: Record<string, { digest: string; layers: string[] }> = {};
  for (const [tag, platform] of [
    ['amd64', { architecture: 'amd64' }],
    ['arm64', { architecture: 'arm64', variant: 'v8' }],
  ] as const) {
    const r = await runCli(['build', '-', '-o', `docker://${reg.host}/build/multi:${tag}`, '--json'], {
      stdin: JSON.stringify({ ...spec, ...platform, os: 'linux' }),
      cwd: f.dir,
      // The spec's own created wins over SOURCE_DATE_EPOCH.
      env: { HOME: '/nonexistent-home', PATH: process.env.PATH, SOURCE_DATE_EPOCH: '86400' },
    });
    assert.equal(r.code, 0, r.stderr);
    built[tag] = JSON.parse(r.stdout.toString());
    const config = JSON.parse(
      (
        await run('skopeo', [
          'inspect',
          '--config',
          '--tls-verify=false',
          `docker://${reg.host}/build/multi:${tag}`,
        ])
      ).stdout.toString(),
    );
    assert.equal(config.architecture, platform.architecture);
    assert.equal(config.variant, 'variant' in platform ? platform.variant : undefined);
    assert.equal(config.os, 'linux');
    assert.equal(config.created, '2024-05-01T12:00:00Z');
    const group = { created: '2024-05-01T12:00:00Z', created_by: 'group', author: 'me', comment: 'store' };
    assert.deepEqual(config.history, [
      group,
      group,
      { created: '2024-05-01T12:00:00Z', created_by: 'spec', author: 'me', comment: 'top' },
    ]);
  }
  assert.deepEqual(built.amd64!.layers, built.arm64!.layers, 'the same files, the same layers');
  assert.notEqual(built.amd64!.digest, built.arm64!.digest);
  const r = await runCli([
    'index',
    'create',
    '-q',
    `docker://${reg.host}/build/multi:all`,
    `docker://${reg.host}/build/multi:amd64`,
    `docker://${reg.host}/build/multi:arm64`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const index = JSON.parse(
    (
      await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/build/multi:all`])
    ).stdout.toString(),
  );
  assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.deepEqual(
    index.manifests.map((m: { digest: string; platform: unknown }) => [m.digest, m.platform]),
    [
      [built.amd64!.digest, { architecture: 'amd64', os: 'linux' }],
      [built.arm64!.digest, { architecture: 'arm64', os: 'linux', variant: 'v8' }],
    ],
  );
  const picked = JSON.parse(
    (
      await run('skopeo', [
        'inspect',
        '--config',
        '--tls-verify=false',
        '--override-arch',
        'arm64',
        '--override-variant',
        'v8',
        `docker://${reg.host}/build/multi:all`,
      ])
    ).stdout.toString(),
  );
  assert.deepEqual([picked.architecture, picked.variant], ['arm64', 'v8'], 'skopeo selects from the index');
  const digest = (
    await run('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/build/multi:all`])
  ).stdout;
  assert.equal(
    JSON.parse(digest.toString()).Digest,
    r.stdout.toString().trim(),
    'the printed digest is the index',
  );
});

test('bad specs to a registry: the error names the field and the registry receives nothing', async () => {
  const reg = await sharedRegistry('none');
  const proxy = await startFaultProxy(reg.url);
  try {
    const f = await fixture();
    const cases: [unknown, RegExp][] = [
      [{ ...f.spec, colour: 'red' }, /colour: unknown key/],
      [
        { ...f.spec, layers: [{ paths: [join(f.dir, 'nope')] }] },
        /layers\[0\]\.paths\[0\]: .*does not exist/,
      ],
      [{ ...f.spec, config: { Entrypoint: '/bin/app' } }, /config\.Entrypoint: must be an array/],
    ];
    for (const [i, [spec, re]] of cases.entries()) {
      proxy.clear();
      const r = await runCli(['build', '-', '-o', `docker://${proxy.host}/build/bad:${i}`], {
        stdin: JSON.stringify(spec),
        cwd: f.dir,
      });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, re);
      assert.deepEqual(
        proxy.log.map((e) => `${e.method} ${e.path}`),
        [],
        `case ${i}: no request reached the registry`,
      );
    }
    const tags = await registryTags(reg.url, 'build/bad');
    assert.equal(tags, 404, 'the repository was never created');
  } finally {
    await proxy.stop();
  }
});

async function registryTags(url: string, repo: string): Promise<number> {
  const res = await fetch(`${url}/v2/${repo}/tags/list`);
  await res.arrayBuffer();
  return res.status;
}

describe('popularity layering (nix2container nix/layers.go)', () => {
  // A→B, A→C, B→C, C→D; E alone. IDs in graph order: A0 B1 C2 D3 E4.
  // Root-to-node path counts: A 1, B 1+A = 2, C 1+A+B = 4, D 1+C = 5, E 1.
  // Descending score, ties by higher ID first: D C B E A.
  const graph = [
    { path: 'A', references: ['A', 'B', 'C'] },
    { path: 'B', references: ['C'] },
    { path: 'C', references: ['D'] },
    { path: 'D', references: [] },
    { path: 'E', references: [] },
  ];
  test('order by score, ties by higher node ID', () => {
    assert.deepEqual(popularityOrder(graph), ['D', 'C', 'B', 'E', 'A']);
  });
  test('maxLayers - 1 single layers, the rest together', () => {
    assert.deepEqual(splitLayers(popularityOrder(graph), 3), [['D'], ['C'], ['B', 'E', 'A']]);
    assert.deepEqual(splitLayers(popularityOrder(graph), 1), [['D', 'C', 'B', 'E', 'A']]);
    assert.deepEqual(splitLayers(['D', 'C'], 5), [['D'], ['C']]);
  });
  test('closure of roots', () => {
    assert.deepEqual([...closureOf(graph, ['B'])].sort(), ['B', 'C', 'D']);
  });
  // Upstream vector: nlewo/nix2container@20d33959 closure/layered_test.go TestPopularities.
  test('the upstream popularity vector', () => {
    const upstream = [
      { path: 'A', references: ['A', 'B', 'G'] },
      { path: 'B', references: ['B', 'C', 'E'] },
      { path: 'C', references: ['C', 'D', 'E'] },
      { path: 'D', references: ['D', 'F'] },
      { path: 'E', references: ['E', 'F'] },
      { path: 'F', references: ['F'] },
      { path: 'G', references: ['G'] },
    ];
    assert.deepEqual(popularityOrder(upstream), ['F', 'E', 'D', 'C', 'G', 'B', 'A']);
  });
  test('the closure graph is taken in path order, as nix2container sorts it: file order does not matter', async () => {
    const f = await fixture();
    // Two unrelated paths score the same; the tie goes to the later node of the sorted graph.
    const plan = (closureGraph: unknown) =>
      planLayers(
        parseBuildSpec(
          { closureGraph, layers: [{ paths: [f.libc, f.app], maxLayers: 2 }] },
          { baseDir: f.dir },
        ),
      ).map((l) => l.paths.map((p) => p.path));
    const libc = { path: f.libc, references: [] };
    const app = { path: f.app, references: [] };
    assert.deepEqual(plan([libc, app]), [[f.app], [f.libc]]);
    assert.deepEqual(plan([app, libc]), [[f.app], [f.libc]]);
  });
});

describe('real Nix store paths', () => {
  test('a store path added with nix-store --add keeps its store modes at /nix/store, mtime 1', async () => {
    const { nix } = await import('../helpers/nix.ts');
    const dir = await mkdtemp(join(tmpdir(), 'lading-nixadd-'));
    const src = join(dir, 'lading-build-test-data');
    await mkdir(join(src, 'bin'), { recursive: true });
    await writeFile(join(src, 'bin/tool'), `#!/bin/sh\necho ${Date.now()}\n`);
    await chmod(join(src, 'bin/tool'), 0o755);
    await writeFile(join(src, 'README'), 'data\n');
    const storePath = await nix('nix-store', ['--add', src]);
    assert.match(storePath, /^\/nix\/store\/[0-9a-z]{32}-lading-build-test-data$/);
    const spec = { layers: [{ paths: [storePath] }], closureGraph: [{ path: storePath, references: [] }] };
    const out = join(dir, 'out');
    const r = await runCli(['build', '-', '-o', `oci:${out}:v1`, '--json'], { stdin: JSON.stringify(spec) });
    assert.equal(r.code, 0, r.stderr);
    const got = JSON.parse(r.stdout.toString());
    const layer = join(out, 'blobs/sha256', got.layers[0].slice(7));
    const list = (await run('tar', ['-tvf', layer, '--numeric-owner', '--full-time'])).stdout.toString();
    const base = storePath.slice('/nix/store/'.length);
    assert.deepEqual(
      list
        .trim()
        .split('\n')
        .map((l) => l.replace(/\s+/g, ' ').replace(/ \d+ 1970/, ' 1970')),
      [
        'drwxr-xr-x 0/0 1970-01-01 00:00:01 /',
        'drwxr-xr-x 0/0 1970-01-01 00:00:01 /nix',
        'drwxr-xr-x 0/0 1970-01-01 00:00:01 /nix/store',
        `dr-xr-xr-x 0/0 1970-01-01 00:00:01 /nix/store/${base}`,
        `-r--r--r-- 0/0 1970-01-01 00:00:01 /nix/store/${base}/README`,
        `dr-xr-xr-x 0/0 1970-01-01 00:00:01 /nix/store/${base}/bin`,
        `-r-xr-xr-x 0/0 1970-01-01 00:00:01 /nix/store/${base}/bin/tool`,
      ],
    );
    assert.equal(await sha256sumOf(layer), got.layers[0]);
  });
});

describe('closureGraph from a real exportReferencesGraph', () => {
  test("a derivation's .attrs.json (structured attrs) and the graph taken out of it give the same layers", async () => {
    const { nix, nixEnv } = await import('../helpers/nix.ts');
    const dir = await mkdtemp(join(tmpdir(), 'lading-erg-'));
    const libSrc = join(dir, 'lading-erg-lib');
    await mkdir(join(libSrc, 'lib'), { recursive: true });
    await writeFile(join(libSrc, 'lib/libx.so'), 'lading exportReferencesGraph test library\n');
    const libPath = await nix('nix-store', ['--add', libSrc]);
    // app's output names lib's store path, so Nix records the reference; graph exports app's closure.
    const expr = join(dir, 'graph.nix');
    await writeFile(
      expr,
      `{ libPath }:
let
  lib = builtins.storePath libPath;
  app = derivation {
    name = "lading-erg-app";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    args = [ "-c" "mkdir -p $out/bin && printf '#!/bin/sh\\ncat \${lib}/lib/libx.so\\n' > $out/bin/app && chmod 755 $out/bin/app" ];
  };
in derivation {
  name = "lading-erg-graph";
  system = builtins.currentSystem;
  builder = "/bin/bash";
  __structuredAttrs = true;
  exportReferencesGraph.closure = [ app ];
  # "; exit $?" keeps bash alive until cp has exited: see NIX_CONFIG in test/helpers/nix.ts.
  args = [ "-c" "source .attrs.sh && /bin/cp .attrs.json \\"\\\${outputs[out]}\\"; exit $?" ];
}
`,
    );
    const built = await run('nix-build', ['--no-out-link', expr, '--argstr', 'libPath', libPath], {
      env: nixEnv(),
    });
    const attrsJson = built.stdout.toString().trim();
    const attrs = JSON.parse(await readFile(attrsJson, 'utf8')) as {
      closure: { path: string; references: string[]; narHash: string; narSize: number }[];
    };
    const app = attrs.closure.find((e) => e.path.endsWith('-lading-erg-app'));
    assert.ok(app, 'the closure holds app');
    assert.deepEqual(app.references, [libPath], 'Nix found the reference to lib');
    assert.match(app.narHash, /^sha256:/, 'the real format: narHash, narSize, … beside path and references');
    assert.deepEqual(attrs.closure.map((e) => e.path).sort(), [app.path, libPath].sort());

    const layers = [{ paths: [app.path], maxLayers: 2 }];
    const results = [];
    for (const [i, closureGraph] of [attrsJson, [...attrs.closure].reverse()].entries()) {
      const out = join(dir, `out${i}`);
      const r = await runCli(['build', '-', '-o', `oci:${out}:v1`, '--json', '--no-cache'], {
        stdin: JSON.stringify({ closureGraph, layers }),
      });
      assert.equal(r.code, 0, r.stderr);
      const got = JSON.parse(r.stdout.toString()) as { digest: string; layers: string[] };
      results.push(got);
      if (i === 0) {
        // Popularity: lib (referred to by app) first, in a layer of its own.
        const names = async (d: string) =>
          (await run('tar', ['-tf', join(out, 'blobs/sha256', d.slice(7))])).stdout
            .toString()
            .trim()
            .split('\n')
            .filter((n) => n.startsWith('/nix/store/'));
        assert.equal(got.layers.length, 2);
        const [first, second] = [await names(got.layers[0]!), await names(got.layers[1]!)];
        assert.ok(first.length > 0 && first.every((n) => n.startsWith(libPath)), first.join(' '));
        assert.ok(second.length > 0 && second.every((n) => n.startsWith(app.path)), second.join(' '));
        const bundle = join(dir, 'bundle');
        await run('umoci', ['unpack', '--rootless', '--image', `${out}:v1`, bundle]);
        assert.equal(
          await readFile(join(bundle, 'rootfs', app.path, 'bin/app'), 'utf8'),
          `#!/bin/sh\ncat ${libPath}/lib/libx.so\n`,
        );
        assert.equal(
          await readFile(join(bundle, 'rootfs', libPath, 'lib/libx.so'), 'utf8'),
          'lading exportReferencesGraph test library\n',
        );
      }
    }
    assert.deepEqual(results[1]!.layers, results[0]!.layers);
    assert.equal(results[1]!.digest, results[0]!.digest);
  });
});

async function sha256sumOf(file: string): Promise<string> {
  return `sha256:${(await run('sha256sum', [file])).stdout.toString().split(' ')[0]}`;
}

describe('layer groups', () => {
  test('a later group leaves out what an earlier group holds; popularity splits a group', async () => {
    const f = await fixture();
    const parse = (layers: unknown) =>
      planLayers(parseBuildSpec({ ...f.spec, copyToRoot: undefined, layers }, { baseDir: f.dir })).map((l) =>
        l.paths.map((p) => p.path.slice(f.dir.length)),
      );
    // app's closure is app + libc; libc is the more popular (app refers to it).
    assert.deepEqual(parse([{ paths: [f.app], maxLayers: 2 }]), [
      ['/nix/store/aaaa-libc'],
      ['/nix/store/bbbb-app'],
    ]);
    assert.deepEqual(parse([{ paths: [f.app] }]), [['/nix/store/aaaa-libc', '/nix/store/bbbb-app']]);
    // The top-level maxLayers is every group's default.
    const split = planLayers(
      parseBuildSpec(
        { ...f.spec, copyToRoot: undefined, maxLayers: 2, layers: [{ paths: [f.app] }] },
        { baseDir: f.dir },
      ),
    );
    assert.equal(split.length, 2);
    assert.deepEqual(parse([{ paths: [f.libc] }, { paths: [f.app] }]), [
      ['/nix/store/aaaa-libc'],
      ['/nix/store/bbbb-app'],
    ]);
    assert.deepEqual(parse([{ paths: [f.app] }, { paths: [f.libc] }]), [
      ['/nix/store/aaaa-libc', '/nix/store/bbbb-app'],
    ]);
  });

  test('rewrites: a group rule for one path beats the top-level one, "" drops a name; copyToRoot files go to /NAME', async () => {
    const f = await fixture();
    await mkdir(join(f.dir, 'extra'));
    await writeFile(join(f.dir, 'extra/motd'), 'welcome\n');
    const spec = {
      ...f.spec,
      layers: [
        {
          paths: [f.app],
          rewrites: [
            { path: f.app, regex: `^${f.dir}/nix/store/bbbb-app`, repl: '/opt/app' },
            { path: f.libc, regex: `^${f.dir}/nix/store/aaaa-libc/lib/libc\\.so$|^${f.dir}`, repl: '' },
          ],
        },
      ],
      copyToRoot: ['root', 'extra/motd'],
    };
    await writeFile(join(f.dir, 'spec.json'), JSON.stringify(spec));
    const out = join(f.dir, 'out');
    const got = await build(f, `oci:${out}:v1`);
    assert.equal(got.layers.length, 2);
    const list = async (d: string) =>
      (await run('tar', ['-tvf', join(out, 'blobs/sha256', d.slice(7))])).stdout.toString();
    const store = await list(got.layers[0]!);
    assert.match(store, /^-rwxr-x--- app\/users .* \/opt\/app\/bin\/app$/m, 'group rule, perms owner names');
    assert.match(store, /^drwxr-xr-x root\/root .* \/nix\/store\/aaaa-libc\/lib$/m, 'top-level rule');
    assert.doesNotMatch(store, /libc\.so/, 'rewritten to "": left out');
    assert.doesNotMatch(store, new RegExp(f.dir), 'every name rewritten');
    const root = await list(got.layers[1]!);
    assert.match(root, /^-rw-r--r-- root\/root .* \/motd$/m);
    assert.match(root, /^-rw-r--r-- root\/root .* \/etc\/hello\.txt$/m);
    assert.doesNotMatch(root, / \/(extra|root)(\/|$)/m);
  });

  test('rebuild and repush after a one-file change uploads only that layer, even with no cache', async () => {
    const reg = await sharedRegistry('none');
    const proxy = await startFaultProxy(reg.url);
    try {
      const f = await fixture();
      const ref = `docker://${proxy.host}/build/repush:v1`;
      const push = async (cacheDir: string) => {
        const r = await runCli([
          'build',
          join(f.dir, 'spec.json'),
          '-o',
          ref,
          '--json',
          '--cache-dir',
          cacheDir,
        ]);
        assert.equal(r.code, 0, r.stderr);
        return JSON.parse(r.stdout.toString()) as { digest: string; layers: string[] };
      };
      // Blob uploads finish with a PUT on an upload URL (monolithic or after PATCHes).
      const uploads = () =>
        proxy.log.filter((e) => e.method === 'PUT' && /\/blobs\/uploads\//.test(e.path)).length;
      const first = await push(join(f.dir, 'cache1'));
      assert.equal(uploads(), 4, 'three layers and the config');
      for (const [n, cacheDir] of [
        [1, join(f.dir, 'cache1')],
        [2, join(f.dir, 'fresh-machine-cache')],
      ] as const) {
        await writeFile(join(f.app, 'bin/app'), `#!/bin/sh\necho change ${n}\n`);
        proxy.clear();
        const next = await push(cacheDir);
        assert.equal(uploads(), 2, `change ${n}: the changed layer and the new config only`);
        assert.equal(next.layers[0], first.layers[0]);
        assert.notEqual(next.layers[1], first.layers[1]);
        assert.equal(next.layers[2], first.layers[2]);
        const inspect = JSON.parse(
          (
            await run('skopeo', [
              'inspect',
              '--config',
              '--tls-verify=false',
              `docker://${proxy.host}/build/repush:v1`,
            ])
          ).stdout.toString(),
        );
        assert.deepEqual(inspect.rootfs.diff_ids, next.layers);
      }
      // A new tag of the same repository from a fresh machine: the layers the other tags hold are
      // found through their configs, so nothing is uploaded (the config is there too).
      proxy.clear();
      const r = await runCli([
        'build',
        join(f.dir, 'spec.json'),
        '-o',
        `docker://${proxy.host}/build/repush:v2`,
        '--json',
        '--cache-dir',
        join(f.dir, 'another-fresh-cache'),
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(uploads(), 0, 'a new tag re-uploads nothing the repository has');
      const v2 = JSON.parse(
        (
          await run('skopeo', ['inspect', '--tls-verify=false', `docker://${proxy.host}/build/repush:v2`])
        ).stdout.toString(),
      );
      const v1 = JSON.parse(
        (
          await run('skopeo', ['inspect', '--tls-verify=false', `docker://${proxy.host}/build/repush:v1`])
        ).stdout.toString(),
      );
      assert.equal(v2.Digest, v1.Digest);
    } finally {
      await proxy.stop();
    }
  });

  test('pushing: blobs the repository has are skipped by HEAD, another repository gets them mounted', async () => {
    const reg = await sharedRegistry('none');
    const proxy = await startFaultProxy(reg.url);
    try {
      const f = await fixture();
      const push = async (ref: string, cacheDir: string, extra: string[] = []) => {
        const r = await runCli([
          'build',
          join(f.dir, 'spec.json'),
          '-o',
          `docker://${proxy.host}/${ref}`,
          '--json',
          '--cache-dir',
          cacheDir,
          ...extra,
        ]);
        assert.equal(r.code, 0, r.stderr);
        return JSON.parse(r.stdout.toString()) as {
          digest: string;
          blobsCopied: number;
          blobsSkipped: number;
        };
      };
      const uploads = () =>
        proxy.log.filter((e) => e.method === 'PUT' && /\/blobs\/uploads\//.test(e.path)).length;
      const mounts = () =>
        proxy.log.filter((e) => e.method === 'POST' && e.path.includes('mount=') && e.status === 201).length;
      const heads = () =>
        proxy.log.filter((e) => e.method === 'HEAD' && /\/blobs\/sha256:/.test(e.path)).length;
      const none = ['--dest-compress-format', 'none'];
      const cache = join(f.dir, 'cache');
      const first = await push('build/skip:a', cache, none);
      assert.equal(uploads(), 4, 'three layers and the config');
      // Another tag of the same repository from a machine that never pushed: HEAD finds every blob.
      proxy.clear();
      const again = await push('build/skip:b', join(f.dir, 'fresh-cache'), none);
      assert.equal(again.digest, first.digest);
      assert.equal(uploads(), 0);
      assert.ok(heads() >= 4, `HEAD per blob (${heads()})`);
      assert.equal(again.blobsSkipped, 4);
      // Another repository on the same registry: the cache knows where the blobs are, so they are
      // mounted (gzip: compressed once for build/gz, mounted from there for build/gz2).
      proxy.clear();
      await push('build/mounted:1', cache, none);
      assert.equal(uploads(), 0);
      assert.equal(mounts(), 4);
      await push('build/gz:1', cache);
      proxy.clear();
      const gz2 = await push('build/gz2:1', cache);
      assert.equal(uploads(), 0);
      assert.equal(mounts(), 4);
      assert.ok(
        proxy.log.filter((e) => e.path.includes('mount=')).every((e) => e.path.includes('from=build%2Fgz')),
      );
      const inspect = JSON.parse(
        (
          await run('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/build/gz2:1`])
        ).stdout.toString(),
      );
      assert.equal(inspect.Digest, gz2.digest);
    } finally {
      await proxy.stop();
    }
  });

  test('a push streams the layers from the files to the registry: no layer is written to disk', async () => {
    const { prng } = await import('../helpers/images.ts');
    const strace = requireBin('strace');
    const reg = await sharedRegistry('none');
    const dir = await mkdtemp(join(tmpdir(), 'lading-build-stream-'));
    const store = join(dir, 'nix/store/ssss-data');
    await mkdir(store, { recursive: true });
    // Random bytes: gzip cannot shrink them, so the upload is as large as the layer.
    const MiB = 1024 * 1024;
    await writeFile(join(store, 'a.bin'), prng('stream-a', 12 * MiB));
    await writeFile(join(store, 'b.bin'), prng('stream-b', 12 * MiB));
    const spec = join(dir, 'spec.json');
    await writeFile(
      spec,
      JSON.stringify({ layers: [{ paths: [store] }], rewrites: [{ regex: `^${dir}`, repl: '' }] }),
    );
    const log = join(dir, 'strace.log');
    const lading = join(import.meta.dirname, '../../bin/lading');
    await run(
      strace,
      [
        '-f',
        '-qq',
        '-y',
        '-e',
        'trace=write,pwrite64,writev,pwritev,pwritev2',
        '-o',
        log,
        process.execPath,
        lading,
      ].concat([
        'build',
        '-q',
        spec,
        '-o',
        `docker://${reg.host}/build/stream:1`,
        '--cache-dir',
        join(dir, 'cache'),
      ]),
      { env: { ...process.env, NODE_DISABLE_COMPILE_CACHE: '1', TMPDIR: dir } },
    );
    // `PID write(FD</path>, …) = N`, or split in `… <unfinished ...>` and `PID <... write resumed>…
    // = N` when threads interleave: sum what went to files and what went to sockets.
    let toFiles = 0;
    let toSockets = 0;
    const pending = new Map<string, string>();
    for (const line of (await readFile(log, 'utf8')).split('\n')) {
      const call = /^(\d+)\s+\w+\(\d+<([^>]*)>/.exec(line);
      let target: string | undefined;
      let n: number;
      if (call && line.endsWith('<unfinished ...>')) {
        pending.set(call[1]!, call[2]!);
        continue;
      }
      const resumed = /^(\d+)\s+<\.\.\. \w+ resumed>.* = (\d+)$/.exec(line);
      if (resumed) {
        target = pending.get(resumed[1]!);
        pending.delete(resumed[1]!);
        n = Number(resumed[2]);
      } else {
        const done = /^\d+\s+\w+\(\d+<([^>]*)>.* = (\d+)$/.exec(line);
        if (!done) continue;
        target = done[1];
        n = Number(done[2]);
      }
      if (target === undefined) continue;
      if (target.startsWith('/') && !target.startsWith('/dev/')) toFiles += n;
      else if (target.startsWith('socket:')) toSockets += n;
    }
    assert.ok(toSockets > 24 * MiB, `the layer went to the registry (${toSockets} bytes to sockets)`);
    assert.ok(toFiles < 256 * 1024, `only small cache entries were written to files (${toFiles} bytes)`);
    const config = JSON.parse(
      (
        await run('skopeo', [
          'inspect',
          '--config',
          '--tls-verify=false',
          `docker://${reg.host}/build/stream:1`,
        ])
      ).stdout.toString(),
    );
    assert.equal(config.rootfs.diff_ids.length, 1);
  });

  test('pushes to a registry; skopeo inspects what was pushed', async () => {
    const reg = await sharedRegistry('none');
    const f = await fixture();
    const ref = `${reg.host}/build/app:v1`;
    const a = await build(f, `docker://${ref}`);
    const inspect = JSON.parse(
      (await run('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`])).stdout.toString(),
    );
    assert.equal(inspect.Digest, a.digest);
    assert.equal(inspect.Layers.length, 3);
    // Registries get the layers compressed; the config still names the built tars' digests.
    const config = JSON.parse(
      (
        await run('skopeo', ['inspect', '--config', '--tls-verify=false', `docker://${ref}`])
      ).stdout.toString(),
    );
    assert.deepEqual(config.rootfs.diff_ids, a.layers);
  });
});
