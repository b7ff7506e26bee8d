import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseManifest } from '../../src/image/index.ts';
import { reproducibleTar } from '../../src/layers/index.ts';
import { Nix2containerSource } from '../../src/transports/index.ts';
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
  test('onProgress reports bytes since the last call: the reports add up to each layer size', async () => {
    const f = await fixture();
    const src = new Nix2containerSource(f.imageJson);
    const top = await src.topManifest();
    const m = parseManifest(top.bytes, top.mediaType, 'n2c');
    assert.equal(m.kind, 'image');
    if (m.kind !== 'image') return;
    for (const l of m.layers) {
      let reported = 0;
      let read = 0;
      for await (const c of await src.blob(l, { onProgress: (n) => (reported += n) })) read += c.length;
      assert.equal(read, l.size);
      assert.equal(reported, l.size, `${l.digest}: reports sum to the layer size`);
    }
  });

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

/** sha256 and size of a layer as lading's writer makes it (pinned to nix2container's by the upstream vectors). */
async function tarDigest(
  paths: Parameters<typeof reproducibleTar>[0],
): Promise<{ digest: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of reproducibleTar(paths)) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { digest: `sha256:${h.digest('hex')}`, size };
}

describe('nix2container:IMAGE.json with real store paths, written as nix2container writes it', () => {
  test('Go field set and order, perms applied in order (later rules win, uid/gid always), gzip layer-path', async () => {
    requireBin('skopeo');
    requireBin('umoci');
    const { nix } = await import('../helpers/nix.ts');
    const dir = await mkdtemp(join(tmpdir(), 'lading-n2c-real-'));
    const hello = join(dir, 'lading-n2c-hello');
    await mkdir(join(hello, 'bin'), { recursive: true });
    await mkdir(join(hello, 'share'), { recursive: true });
    await writeFile(join(hello, 'bin/hello'), '#!/bin/sh\necho hello from the store\n');
    await chmod(join(hello, 'bin/hello'), 0o755);
    await writeFile(join(hello, 'share/doc.txt'), 'docs\n');
    const lib = join(dir, 'lading-n2c-lib');
    await mkdir(join(lib, 'lib'), { recursive: true });
    await writeFile(join(lib, 'lib/libfoo.so'), 'not really a library\n');
    const helloPath = await nix('nix-store', ['--add', hello]);
    const libPath = await nix('nix-store', ['--add', lib]);
    assert.match(helloPath, /^\/nix\/store\/[0-9a-z]{32}-lading-n2c-hello$/);

    // layers.json `paths` as Go marshals types.Path: `options` only with perms or rewrites, and
    // then every field (rewrite is a struct, so never omitted; Perm fields have no omitempty).
    const helloPaths = [
      {
        path: helloPath,
        options: {
          rewrite: { regex: '', repl: '' },
          perms: [
            { regex: '.*', mode: '0700', uid: 1000, gid: 100, uname: 'app', gname: 'users' },
            { regex: 'bin/hello$', mode: '', uid: 0, gid: 0, uname: '', gname: '' },
          ],
        },
      },
    ];
    const helloLayer = await tarDigest([
      {
        path: helloPath,
        options: {
          perms: [
            { regex: '.*', mode: 0o700, uid: 1000, gid: 100, uname: 'app', gname: 'users' },
            { regex: 'bin/hello$', uid: 0, gid: 0 },
          ],
          permsStyle: 'nix2container',
        },
      },
    ]);
    const libLayer = await tarDigest([{ path: libPath }]);
    // A pulled (or non-reproducible) layer: gzip of a tar(1) archive; digest and diff ID by sha256sum.
    await mkdir(join(dir, 'etc-src/etc'), { recursive: true });
    await writeFile(join(dir, 'etc-src/etc/os-release'), 'NAME=pulled\n');
    const plainTar = join(dir, 'base.tar');
    await run('tar', ['-C', join(dir, 'etc-src'), '-cf', plainTar, 'etc']);
    const diffId = await sha256sum(plainTar);
    await run('gzip', ['-n', '-k', plainTar]);
    const gzLayer = `${plainTar}.gz`;
    const gzDigest = await sha256sum(gzLayer);
    const history = { created_by: 'nix2container' };
    const image = {
      version: 1,
      'image-config': { Env: ['PATH=/bin'], Entrypoint: [`${helloPath}/bin/hello`], WorkingDir: '/' },
      layers: [
        {
          digest: gzDigest,
          size: 0,
          diff_ids: diffId,
          mediatype: 'application/vnd.oci.image.layer.v1.tar+gzip',
          'layer-path': gzLayer,
          History: { created_by: 'pulled', comment: 'base' },
        },
        {
          digest: libLayer.digest,
          size: libLayer.size,
          diff_ids: libLayer.digest,
          paths: [{ path: libPath }],
          mediatype: 'application/vnd.oci.image.layer.v1.tar',
          History: history,
        },
        {
          digest: helloLayer.digest,
          size: helloLayer.size,
          diff_ids: helloLayer.digest,
          paths: helloPaths,
          mediatype: 'application/vnd.oci.image.layer.v1.tar',
          History: history,
        },
      ],
      arch: 'arm64',
      created: '1970-01-01T00:00:01Z',
    };
    // json.MarshalIndent(image, "", "\t"), no trailing newline.
    const imageJson = join(dir, 'image.json');
    await writeFile(imageJson, JSON.stringify(image, null, '\t'));

    const out = join(dir, 'out');
    const r = await runCli(['copy', `nix2container:${imageJson}`, `oci:${out}:v1`]);
    assert.equal(r.code, 0, r.stderr);
    const raw = JSON.parse((await run('skopeo', ['inspect', '--raw', `oci:${out}:v1`])).stdout.toString());
    assert.deepEqual(
      raw.layers.map((l: { digest: string; mediaType: string }) => [l.digest, l.mediaType]),
      [
        [gzDigest, 'application/vnd.oci.image.layer.v1.tar+gzip'],
        [libLayer.digest, 'application/vnd.oci.image.layer.v1.tar'],
        [helloLayer.digest, 'application/vnd.oci.image.layer.v1.tar'],
      ],
    );
    const configFile = join(out, 'blobs/sha256', raw.config.digest.slice(7));
    assert.equal(
      await readFile(configFile, 'utf8'),
      '{"created":"1970-01-01T00:00:01Z","architecture":"arm64","os":"linux",' +
        `"config":{"Env":["PATH=/bin"],"Entrypoint":["${helloPath}/bin/hello"],"WorkingDir":"/"},` +
        `"rootfs":{"type":"layers","diff_ids":["${diffId}","${libLayer.digest}","${helloLayer.digest}"]},` +
        '"history":[{"created_by":"pulled","comment":"base"},{"created_by":"nix2container"},{"created_by":"nix2container"}]}',
    );
    // Owners and modes as nix2container's appendFileToTar gives them: every matching rule in turn;
    // the second sets uid/gid back to 0 and leaves mode and the names of the first.
    const layerFile = join(out, 'blobs/sha256', helloLayer.digest.slice(7));
    const names = (await run('tar', ['-tvf', layerFile])).stdout.toString();
    const ids = (await run('tar', ['-tvf', layerFile, '--numeric-owner'])).stdout.toString();
    assert.match(names, new RegExp(`^-rwx------ app/users .* ${helloPath}/bin/hello$`, 'm'));
    assert.match(ids, new RegExp(`^-rwx------ 0/0 .* ${helloPath}/bin/hello$`, 'm'));
    assert.match(ids, new RegExp(`^-rwx------ 1000/100 .* ${helloPath}/share/doc\\.txt$`, 'm'));
    assert.match(ids, /^drwxr-xr-x 0\/0 .* \/nix\/store$/m);
    const libList = (await run('tar', ['-tvf', join(out, 'blobs/sha256', libLayer.digest.slice(7))])).stdout;
    assert.match(libList.toString(), new RegExp(`^-r--r--r-- root/root .* ${libPath}/lib/libfoo\\.so$`, 'm'));
    const bundle = join(dir, 'bundle');
    await run('umoci', ['unpack', '--rootless', '--image', `${out}:v1`, bundle]);
    const rootfs = join(bundle, 'rootfs');
    assert.equal(await readFile(join(rootfs, 'etc/os-release'), 'utf8'), 'NAME=pulled\n');
    assert.equal(
      await readFile(join(rootfs, helloPath, 'bin/hello'), 'utf8'),
      '#!/bin/sh\necho hello from the store\n',
    );
    assert.equal(await readFile(join(rootfs, libPath, 'lib/libfoo.so'), 'utf8'), 'not really a library\n');

    // Straight to a registry, as `skopeo copy nix:image.json docker://…` would.
    const { sharedRegistry, stopSharedRegistries } = await import('../helpers/registry.ts');
    try {
      const reg = await sharedRegistry('none');
      const ref = `${reg.host}/n2c/hello:1`;
      const pushed = await runCli(['copy', `nix2container:${imageJson}`, `docker://${ref}`]);
      assert.equal(pushed.code, 0, pushed.stderr);
      const config = JSON.parse(
        (
          await run('skopeo', ['inspect', '--config', '--tls-verify=false', `docker://${ref}`])
        ).stdout.toString(),
      );
      assert.deepEqual(config.rootfs.diff_ids, [diffId, libLayer.digest, helloLayer.digest]);
      assert.equal(config.architecture, 'arm64');
    } finally {
      await stopSharedRegistries();
    }
  });
});
