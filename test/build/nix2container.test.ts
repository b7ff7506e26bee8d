import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { reproducibleTar } from '../../src/layers/index.ts';
import { requireBin, run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';

async function sha256sum(file: string): Promise<string> {
  const out = (await run('sha256sum', [file])).stdout.toString();
  return `sha256:${out.split(' ')[0]}`;
}

/** A fake store path, a nix2container image.json with one `paths` layer and one `layer-path` layer. */
async function fixture() {
  const dir = await mkdtemp(join(tmpdir(), 'lading-n2c-'));
  const store = join(dir, 'nix/store/cccc-hello');
  await mkdir(join(store, 'bin'), { recursive: true });
  await writeFile(join(store, 'bin/hello'), '#!/bin/sh\necho hello\n');
  await chmod(join(store, 'bin/hello'), 0o555);
  await symlink('hello', join(store, 'bin/hi'));
  const paths = [
    {
      path: store,
      options: {
        rewrite: { regex: `^${dir}`, repl: '' },
        perms: [{ regex: 'bin/hello$', mode: '0755', uid: 1, gid: 2, uname: 'u', gname: 'g' }],
      },
    },
  ];
  // The paths layer's digest: sha256 of the tar, hashed here once by the writer (whose output is
  // pinned to nix2container's by the §5.4 vector test).
  const h = createHash('sha256');
  let size = 0;
  for await (const c of reproducibleTar(
    paths.map((p) => ({ ...p, options: { ...p.options, perms: [{ ...p.options.perms[0]!, mode: 0o755 }] } })),
  )) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  const pathsDigest = `sha256:${h.digest('hex')}`;
  // A pulled layer: a tar file made by tar(1), hashed by sha256sum.
  await mkdir(join(dir, 'etc-src/etc'), { recursive: true });
  await writeFile(join(dir, 'etc-src/etc/os-release'), 'NAME=test\n');
  const layerFile = join(dir, 'layer.tar');
  await run('tar', ['-C', join(dir, 'etc-src'), '-cf', layerFile, 'etc']);
  const fileDigest = await sha256sum(layerFile);
  const image = {
    version: 1,
    'image-config': {
      Env: ['X=<b>&c'],
      Cmd: ['/nix/store/cccc-hello/bin/hello'],
      Labels: { z: '1', a: '2' },
    },
    layers: [
      {
        digest: fileDigest,
        size: 0,
        diff_ids: fileDigest,
        mediatype: 'application/vnd.oci.image.layer.v1.tar',
        'layer-path': layerFile,
        History: { created_by: 'pulled' },
      },
      {
        digest: pathsDigest,
        size,
        diff_ids: pathsDigest,
        paths,
        mediatype: 'application/vnd.oci.image.layer.v1.tar',
        History: { created_by: 'nix2container', comment: 'store paths' },
      },
    ],
    arch: 'amd64',
    created: '0001-01-01T00:00:00Z',
  };
  const imageJson = join(dir, 'image.json');
  await writeFile(imageJson, JSON.stringify(image, null, '\t'));
  return { dir, store, imageJson, image, pathsDigest, fileDigest };
}

describe('nix2container:IMAGE.json source', () => {
  test('lading copy reads it; skopeo and umoci accept the result; config as Go marshals it', async () => {
    requireBin('skopeo');
    requireBin('umoci');
    const f = await fixture();
    const out = join(f.dir, 'out');
    const r = await runCli(['copy', `nix2container:${f.imageJson}`, `oci:${out}:v1`]);
    assert.equal(r.code, 0, r.stderr);
    const digest = r.stdout.toString().trim();
    const inspect = JSON.parse((await run('skopeo', ['inspect', `oci:${out}:v1`])).stdout.toString());
    assert.equal(inspect.Digest, digest);
    assert.deepEqual(inspect.Layers, [f.fileDigest, f.pathsDigest]);
    const manifest = JSON.parse(
      (await run('skopeo', ['inspect', '--raw', `oci:${out}:v1`])).stdout.toString(),
    );
    const configFile = join(out, 'blobs/sha256', manifest.config.digest.slice(7));
    assert.equal(await sha256sum(configFile), manifest.config.digest);
    assert.equal(manifest.layers[0].size, (await stat(join(f.dir, 'layer.tar'))).size);
    assert.equal(
      await readFile(configFile, 'utf8'),
      '{"created":"0001-01-01T00:00:00Z","architecture":"amd64","os":"linux","config":{"Env":["X=\\u003cb\\u003e\\u0026c"],' +
        '"Cmd":["/nix/store/cccc-hello/bin/hello"],"Labels":{"a":"2","z":"1"}},' +
        `"rootfs":{"type":"layers","diff_ids":["${f.fileDigest}","${f.pathsDigest}"]},` +
        '"history":[{"created_by":"pulled"},{"created_by":"nix2container","comment":"store paths"}]}',
    );
    const bundle = join(f.dir, 'bundle');
    await run('umoci', ['unpack', '--rootless', '--image', `${out}:v1`, bundle]);
    const rootfs = join(bundle, 'rootfs');
    assert.equal(await readFile(join(rootfs, 'etc/os-release'), 'utf8'), 'NAME=test\n');
    assert.equal(
      await readFile(join(rootfs, 'nix/store/cccc-hello/bin/hello'), 'utf8'),
      '#!/bin/sh\necho hello\n',
    );
    assert.equal(
      (await stat(join(rootfs, 'nix/store/cccc-hello/bin/hello'))).mode & 0o777,
      0o755,
      'perms mode applied',
    );
  });

  test('a store file changed since image.json was made fails the copy and writes nothing', async () => {
    const f = await fixture();
    await writeFile(join(f.store, 'bin/hello'), '#!/bin/sh\necho HELLO\n');
    const out = join(f.dir, 'out');
    const r = await runCli(['copy', `nix2container:${f.imageJson}`, `oci:${out}:v1`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /digest|mismatch/i);
    assert.ok(!existsSync(join(out, 'index.json')), 'no image written');
  });

  test('a missing image.json or layer file is named', async () => {
    const f = await fixture();
    const missing = await runCli([
      'copy',
      `nix2container:${join(f.dir, 'nope.json')}`,
      `oci:${join(f.dir, 'o')}:v1`,
    ]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /nope\.json/);
    const bad = { ...f.image, layers: [{ ...f.image.layers[0], 'layer-path': join(f.dir, 'gone.tar') }] };
    await writeFile(f.imageJson, JSON.stringify(bad));
    const r = await runCli(['copy', `nix2container:${f.imageJson}`, `oci:${join(f.dir, 'o')}:v1`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /layers\[0\]\.layer-path: cannot read .*gone\.tar/);
  });
});

test('nix2container: locations parse and print', async () => {
  const { parseLocation, formatLocation } = await import('../../src/transports/index.ts');
  const loc = parseLocation('nix2container:/nix/store/x-image.json');
  assert.deepEqual(loc, { transport: 'nix2container', path: '/nix/store/x-image.json' });
  assert.equal(formatLocation(loc), 'nix2container:/nix/store/x-image.json');
  assert.throws(() => parseLocation('nix2container:'), /needs the image.json path/);
});
