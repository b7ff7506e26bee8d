import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.ts';
import { type BuiltLayout, buildLayout, pushLayout } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

let reg: TestRegistry;
let proxy: FaultProxy;
let image: BuiltLayout;
let work: string;
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
        ],
      },
      {
        entries: [
          { path: 'etc/conf.d/b', content: 'b' },
          { path: 'usr/bin/', type: 'directory' },
          { path: 'usr/bin/tool', type: 'symlink', linkname: '../lib/tool/real' },
          { path: 'abs', type: 'symlink', linkname: '/usr/lib/tool/real' },
        ],
      },
      {
        entries: [
          { path: 'app/', type: 'directory' },
          { path: 'app/agent', content: '#!/bin/sh\necho agent says hi\n', mode: 0o755 },
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

const blobGets = () =>
  proxy.log.filter((e) => e.method === 'GET' && /\/blobs\//.test(e.path)).map((e) => e.path.split('/').pop());

describe('extract', () => {
  test('a binary in the top layer: only that layer is downloaded, and it runs', async () => {
    proxy.clear();
    const out = join(work, 'agent');
    const r = await runCli(
      ['extract', '--no-cache', '--json', `${proxy.host}/extract/app:1`, '/app/agent', '-o', out],
      { env: env() },
    );
    assert.equal(r.code, 0, r.stderr);
    const top = image.images[0]!.layers[2]!.digest;
    assert.deepEqual(blobGets(), [top]);
    const j = JSON.parse(r.stdout.toString());
    assert.equal(j.layersOpened, 1);
    assert.ok(j.bytesFetched < j.imageBytes / 10);
    assert.equal((await stat(out)).mode & 0o777, 0o755);
    assert.equal((await run(out, [])).stdout.toString(), 'agent says hi\n');
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
        '-o',
        join(work, 'links'),
      ],
      { env: env() },
    );
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout.toString());
    assert.deepEqual(
      j.results.map((x: { resolvedPath: string }) => x.resolvedPath),
      ['usr/lib/tool/real', 'usr/lib/tool/real'],
    );
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

  test('works from a local OCI layout too', async () => {
    const r = await runCli(
      ['extract', `oci:${image.dir}:latest`, '/app/agent', '-o', join(work, 'local-agent')],
      { env: env() },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await run(join(work, 'local-agent'), [])).stdout.toString(), 'agent says hi\n');
  });
});
