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

  describe('bad specs name the field and write nothing', () => {
    const cases: [string, (f: Fixture) => unknown, RegExp][] = [
      ['unknown key', (f) => ({ ...f.spec, colour: 'red' }), /build spec: colour: unknown key/],
      ['unknown config key', (f) => ({ ...f.spec, config: { cmd: [] } }), /config\.cmd: unknown key/],
      [
        'missing path',
        (f) => ({ ...f.spec, layers: [{ paths: [f.app] }, { paths: [f.libc, join(f.dir, 'nope')] }] }),
        /layers\[1\]\.paths\[1\]: .*nope does not exist/,
      ],
      [
        'conflicting perms',
        (f) => ({
          ...f.spec,
          perms: [
            { regex: 'x', mode: '0755' },
            { regex: 'x', mode: '0700' },
          ],
        }),
        /perms\[1\]\.mode: conflicts with perms\[0\]\.mode/,
      ],
      [
        'perms conflicting on one file',
        (f) => ({
          ...f.spec,
          perms: [
            { regex: 'app$', uid: 1 },
            { regex: 'bin/app', uid: 2 },
          ],
        }),
        /perms\[1\]: conflicting perms for .*bin\/app: uid/,
      ],
      ['bad mode', (f) => ({ ...f.spec, perms: [{ regex: 'x', mode: 'rwx' }] }), /perms\[0\]\.mode/],
      [
        'bad maxLayers',
        (f) => ({ ...f.spec, layers: [{ paths: [f.app], maxLayers: 0 }] }),
        /layers\[0\]\.maxLayers/,
      ],
      ['bad created', (f) => ({ ...f.spec, created: 'yesterday' }), /created: must be an RFC 3339 time/],
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

describe('popularity layering (nix2container, compat-nix.md §5.3)', () => {
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
    assert.deepEqual(parse([{ paths: [f.libc] }, { paths: [f.app] }]), [
      ['/nix/store/aaaa-libc'],
      ['/nix/store/bbbb-app'],
    ]);
    assert.deepEqual(parse([{ paths: [f.app] }, { paths: [f.libc] }]), [
      ['/nix/store/aaaa-libc', '/nix/store/bbbb-app'],
    ]);
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
    } finally {
      await proxy.stop();
    }
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
