import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { Digest } from '../../src/digest/index.ts';
import { extractPaths, type LayerBlob } from '../../src/layers/index.ts';
import { requireBin, run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.ts';
import {
  type BuiltLayout,
  buildLayout,
  type EntrySpec,
  layerTar,
  pushLayout,
  whiteout,
} from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

let reg: TestRegistry;
let proxy: FaultProxy;
let image: BuiltLayout;
let work: string;
const expr = realpathSync(requireBin('expr', 'coreutils'));
const env = () => ({ HOME: '/nonexistent', PATH: process.env.PATH });

before(async () => {
  reg = await sharedRegistry('none');
  image = await buildLayout({
    layers: [
      // A big bottom layer the extraction of a top-layer file must never fetch.
      {
        entries: [
          { path: 'usr/', type: 'directory' },
          { path: 'usr/lib/', type: 'directory' },
          { path: 'usr/lib/big.bin', content: randomBytes(2 << 20) },
          { path: 'usr/lib/tool/', type: 'directory' },
          { path: 'usr/lib/tool/real', content: '#!/bin/sh\necho real tool\n', mode: 0o755 },
          { path: 'etc/', type: 'directory' },
          { path: 'etc/conf.d/', type: 'directory' },
          { path: 'etc/conf.d/a', content: 'a' },
          { path: 'etc/old-secret', content: 'deleted by the top layer' },
          { path: 'usr/lib64/', type: 'directory' },
          { path: 'usr/lib64/ld.so', content: 'the loader', mode: 0o755 },
          { path: 'var/', type: 'directory' },
          { path: 'var/cache/', type: 'directory' },
          { path: 'var/cache/stale', content: 'hidden by an opaque directory' },
        ],
      },
      {
        entries: [
          { path: 'etc/conf.d/b', content: 'b' },
          { path: 'usr/bin/', type: 'directory' },
          { path: 'usr/bin/tool', type: 'symlink', linkname: '../lib/tool/real' },
          { path: 'abs', type: 'symlink', linkname: '/usr/lib/tool/real' },
          { path: 'lib64', type: 'symlink', linkname: '/usr/lib64' },
          // More .. than the link is deep: at the root, .. stays at the root (as the kernel does).
          { path: 'usr/bin/climb', type: 'symlink', linkname: '../../../../usr/lib/tool/real' },
          { path: 'var/cache/.wh..wh..opq', content: '' },
        ],
      },
      {
        entries: [
          { path: 'app/', type: 'directory' },
          // A real ELF executable (the host's expr).
          { path: 'app/agent', content: readFileSync(expr), mode: 0o755 },
          { path: 'etc/.wh.old-secret', content: '' },
          { path: 'loop1', type: 'symlink', linkname: 'loop2' },
          { path: 'loop2', type: 'symlink', linkname: 'loop1' },
        ],
      },
    ],
  });
  await pushLayout(image, reg, 'extract/app:1');
  proxy = await startFaultProxy(reg.url);
  work = await mkdtemp(join(tmpdir(), 'lading-extract-'));
});
after(async () => {
  await proxy.stop();
  await stopSharedRegistries();
});

/** Layer blobs fetched (the config, read for the layers' diff_ids, aside). */
const blobGets = () =>
  proxy.log
    .filter((e) => e.method === 'GET' && /\/blobs\//.test(e.path))
    .map((e) => e.path.split('/').pop())
    .filter((d) => d !== image.images[0]!.configDigest);

describe('extract', () => {
  test('a binary in the top layer: only that layer is downloaded (and the manifest and config), and it runs', async () => {
    proxy.clear();
    const out = join(work, 'agent');
    const r = await runCli(
      ['extract', '--no-cache', '--json', `${proxy.host}/extract/app:1`, '/app/agent', '-o', out],
      { env: env() },
    );
    assert.equal(r.code, 0, r.stderr);
    const top = image.images[0]!.layers[2]!.digest;
    // Every request: the API check, the manifest, the config (its diff_ids verify the layer
    // uncompressed), the top layer; never the lower layers' blobs.
    const config = image.images[0]!.configDigest;
    assert.deepEqual(
      proxy.log.map((e) => `${e.method} ${e.path}`),
      [
        'GET /v2/',
        'GET /v2/extract/app/manifests/1',
        `GET /v2/extract/app/blobs/${config}`,
        `GET /v2/extract/app/blobs/${top}`,
      ],
    );
    const j = JSON.parse(r.stdout.toString());
    assert.equal(j.layersOpened, 1);
    assert.equal(j.layers, 3);
    assert.equal(j.bytesFetched, image.images[0]!.layers[2]!.size + image.images[0]!.config.length);
    assert.equal(
      j.imageBytes,
      image.images[0]!.layers.reduce((n, l) => n + l.size, 0),
    );
    assert.ok(j.bytesFetched < j.imageBytes / 10);
    assert.equal((await stat(out)).mode & 0o777, 0o755);
    assert.ok((await readFile(out)).equals(readFileSync(expr)));
    assert.equal((await run(out, ['6', '*', '7'])).stdout.toString(), '42\n');
  });

  test('reports on stderr what it read and fetched out of the image', async () => {
    const r = await runCli(
      ['extract', '--no-cache', `${reg.host}/extract/app:1`, '/app/agent', '-o', join(work, 'agent2')],
      {
        env: env(),
      },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^\/app\/agent -> .*agent2$/m);
    assert.match(r.stderr, /^read 1 of 3 layers; fetched [\d.]+ KiB of the image's [\d.]+ MiB$/m);
  });

  test('a path deleted (whiteout) or hidden (opaque directory) by an upper layer is not found, and lower layers are not fetched', async () => {
    for (const [path, layersRead, why] of [
      ['/etc/old-secret', 1, /etc\/old-secret was deleted/],
      ['/var/cache/stale', 2, /var\/cache\/stale was deleted/],
    ] as const) {
      proxy.clear();
      const r = await runCli(
        ['extract', '--no-cache', `${proxy.host}/extract/app:1`, path, '-o', join(work, 'gone')],
        {
          env: env(),
        },
      );
      assert.equal(r.code, 4, r.stderr);
      assert.match(r.stderr, new RegExp(`${path} is not in the image`));
      assert.match(r.stderr, why);
      assert.deepEqual(
        blobGets(),
        image.images[0]!.layers.slice(3 - layersRead)
          .reverse()
          .map((l) => l.digest),
      );
    }
  });

  test('symlinks inside the image are followed to the real file (relative and absolute), opening only the layers needed', async () => {
    proxy.clear();
    const r = await runCli(
      [
        'extract',
        '--no-cache',
        '--json',
        `${proxy.host}/extract/app:1`,
        '/usr/bin/tool',
        '/abs',
        '/lib64/ld.so',
        '/usr/bin/climb',
        '-o',
        join(work, 'links'),
      ],
      { env: env() },
    );
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout.toString());
    assert.deepEqual(
      j.results.map((x: { resolvedPath: string }) => x.resolvedPath),
      ['usr/lib/tool/real', 'usr/lib/tool/real', 'usr/lib64/ld.so', 'usr/lib/tool/real'],
    );
    // The targets are in the bottom layer: each layer is read once, top first.
    assert.equal(j.layersOpened, 3);
    assert.deepEqual(blobGets(), image.images[0]!.layers.map((l) => l.digest).reverse());
    assert.equal(await readFile(join(work, 'links', 'ld.so'), 'utf8'), 'the loader');
    assert.equal(await readFile(join(work, 'links', 'climb'), 'utf8'), '#!/bin/sh\necho real tool\n');
    assert.equal(await readFile(join(work, 'links', 'tool'), 'utf8'), '#!/bin/sh\necho real tool\n');
    assert.equal((await stat(join(work, 'links', 'tool'))).mode & 0o777, 0o755);
  });

  test('directories gather every layer; missing paths and loops are clear errors', async () => {
    const r = await runCli(
      ['extract', '--no-cache', `${reg.host}/extract/app:1`, '/etc/conf.d', '-o', join(work, 'conf')],
      { env: env() },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await readFile(join(work, 'conf', 'a'), 'utf8'), 'a');
    assert.equal(await readFile(join(work, 'conf', 'b'), 'utf8'), 'b');
    // Each layer counts once, though a directory reads the layers again to gather it.
    const m = /^read (\d+) of (\d+) layers/m.exec(r.stderr);
    assert.ok(m, r.stderr);
    assert.ok(Number(m[1]) <= Number(m[2]), m[0]);
    const missing = await runCli(
      ['extract', '--no-cache', `${reg.host}/extract/app:1`, '/nope', '-o', join(work, 'n')],
      { env: env() },
    );
    assert.equal(missing.code, 4);
    assert.match(missing.stderr, /\/nope is not in the image/);
    const loop = await runCli(
      ['extract', '--no-cache', `${reg.host}/extract/app:1`, '/loop1', '-o', join(work, 'l')],
      { env: env() },
    );
    assert.notEqual(loop.code, 0);
    assert.match(loop.stderr, /symbolic links|not in the image/);
  });

  test('works from a local OCI layout, an oci-archive and a docker-archive (skopeo wrote them)', async () => {
    const ociArchive = join(work, 'image.oci.tar');
    const dockerArchive = join(work, 'image.docker.tar');
    await run('skopeo', ['copy', `oci:${image.dir}:latest`, `oci-archive:${ociArchive}:latest`]);
    await run('skopeo', ['copy', `oci:${image.dir}:latest`, `docker-archive:${dockerArchive}:extract/app:1`]);
    for (const [i, src] of [
      `oci:${image.dir}:latest`,
      `oci-archive:${ociArchive}`,
      `docker-archive:${dockerArchive}`,
    ].entries()) {
      const out = join(work, `local-agent-${i}`);
      const r = await runCli(['extract', '--json', src, '/app/agent', '/usr/bin/tool', '-o', out], {
        env: env(),
      });
      assert.equal(r.code, 0, `${src}: ${r.stderr}`);
      assert.equal((await run(join(out, 'agent'), [String(i), '+', '1'])).stdout.toString(), `${i + 1}\n`);
      assert.equal(await readFile(join(out, 'tool'), 'utf8'), '#!/bin/sh\necho real tool\n');
      assert.equal(JSON.parse(r.stdout.toString()).layersOpened, 3, src);
    }
  });

  test('works from the cache: a second extract fetches no blob', async () => {
    const cache = join(work, 'cache');
    const args = (out: string) => [
      'extract',
      '--cache-dir',
      cache,
      `${proxy.host}/extract/app:1`,
      '/app/agent',
      '-o',
      out,
    ];
    proxy.clear();
    const first = await runCli(args(join(work, 'cached-1')), { env: env() });
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(blobGets(), [image.images[0]!.layers[2]!.digest]);
    proxy.clear();
    const second = await runCli(args(join(work, 'cached-2')), { env: env() });
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(blobGets(), [], 'the layer comes from the cache');
    assert.deepEqual(
      proxy.log.filter((e) => e.method === 'GET' && /\/manifests\//.test(e.path)),
      [],
      'the manifest too (only a HEAD for the tag)',
    );
    assert.match(second.stderr, /fetched 0 B of the image's/);
    assert.ok((await readFile(join(work, 'cached-2'))).equals(readFileSync(expr)));
  });
});

describe('extract (hostile)', () => {
  test('a directory with entries written through a symlink: the rest comes out, each refused entry is named, exit 7', async () => {
    const root = await mkdtemp(join(tmpdir(), 'lading-extract-hostile-'));
    const canary = join(root, 'canary');
    await mkdir(canary);
    await writeFile(join(canary, 'keep'), 'keep');
    const layout = await buildLayout({
      layers: [
        {
          entries: [
            { path: 'etc/', type: 'directory' },
            { path: 'etc/app/', type: 'directory' },
            { path: 'etc/app/ok.conf', content: 'ok' },
            { path: 'etc/app/link', type: 'symlink', linkname: canary },
          ],
        },
        { entries: [{ path: 'etc/app/link/keep', content: 'overwritten?' }] },
      ],
    });
    const out = join(root, 'out');
    const r = await runCli(['extract', `oci:${layout.dir}:latest`, '/etc/app', '-o', out], { env: env() });
    assert.equal(r.code, 7, r.stderr);
    assert.match(
      r.stderr,
      /lading: warning: entry "etc\/app\/link\/keep" in layer 1 .* written through a symlink; refused/,
    );
    assert.match(r.stderr, /lading: error: 1 unsafe entry was refused/);
    assert.deepEqual(await readdir(canary), ['keep']);
    assert.equal(await readFile(join(canary, 'keep'), 'utf8'), 'keep');
    // One path, a new destination: the directory itself is the destination.
    assert.equal(await readFile(join(out, 'ok.conf'), 'utf8'), 'ok');
    assert.equal(await readlink(join(out, 'link')), canary, 'the symlink itself comes out verbatim');
  });
});

describe('extract (library)', () => {
  const layer = async (entries: EntrySpec[]): Promise<LayerBlob & { opened: () => number }> => {
    const bytes = gzipSync(await layerTar(entries));
    let n = 0;
    return {
      digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest,
      size: bytes.length,
      open: async () => {
        n++;
        return Readable.from([bytes]);
      },
      opened: () => n,
    };
  };

  test('a top layer without entries for the parent directories still decides the path', async () => {
    const bottom = await layer([
      { path: 'opt/', type: 'directory' },
      { path: 'opt/app/', type: 'directory' },
      { path: 'opt/app/tool', content: 'old' },
      { path: 'opt/app/gone', content: 'deleted above' },
    ]);
    const top = await layer([
      { path: 'opt/app/tool', content: 'new', mode: 0o755 },
      whiteout('opt/app/gone'),
    ]);
    const dest = join(await mkdtemp(join(tmpdir(), 'lading-extract-lib-')), 'tool');
    const r = await extractPaths([bottom, top], ['/opt/app/tool'], { dest });
    assert.equal(await readFile(dest, 'utf8'), 'new');
    assert.equal(r.layersOpened, 1);
    assert.deepEqual([top.opened(), bottom.opened()], [1, 0]);
    await assert.rejects(
      extractPaths([bottom, top], ['/opt/app/gone'], { dest: `${dest}-gone` }),
      /\/opt\/app\/gone is not in the image \(opt\/app\/gone was deleted\)/,
    );
    assert.deepEqual([top.opened(), bottom.opened()], [2, 0]);
  });
});
