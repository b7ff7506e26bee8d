import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseNixHash, toNix32, toSri } from '../../src/nix/index.ts';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.ts';
import {
  type BuiltLayout,
  bigImage,
  buildLayout,
  type ImageSpec,
  MULTI_ARCH,
  multiArchImage,
  prng,
  pushLayout,
  smallImage,
} from '../helpers/images.ts';
import { nix } from '../helpers/nix.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

let anon: TestRegistry;
let token: TestRegistry;
let proxy: FaultProxy;
const layouts: Record<string, BuiltLayout> = {};

/** What nix-prefetch-docker would compute: skopeo copy to docker-archive / dir:, then nix-hash. */
async function expected(
  reg: TestRegistry,
  repo: string,
  digest: string,
  arch: string,
  nameTag: string,
  creds?: string,
) {
  const dir = await mkdtemp(join(tmpdir(), 'lading-expect-'));
  const archive = join(dir, 'a.tar');
  const base = [
    '--insecure-policy',
    '--override-os',
    'linux',
    '--override-arch',
    arch,
    'copy',
    '-q',
    '--src-tls-verify=false',
    ...(creds ? ['--src-creds', creds] : []),
  ];
  await run(
    'skopeo',
    [...base, `docker://${reg.host}/${repo}@${digest}`, `docker-archive:${archive}:${nameTag}`],
    { env: { ...process.env, HOME: dir } },
  );
  await run('skopeo', [...base, `docker://${reg.host}/${repo}@${digest}`, `dir:${join(dir, 'd')}`], {
    env: { ...process.env, HOME: dir },
  });
  return {
    flat: await nix('nix-hash', ['--flat', '--type', 'sha256', '--base32', archive]),
    nar: await nix('nix-hash', ['--type', 'sha256', '--base32', join(dir, 'd')]),
    archive,
    dir: join(dir, 'd'),
  };
}

function cacheEnv(dir: string): NodeJS.ProcessEnv {
  return { HOME: '/nonexistent', PATH: process.env.PATH, XDG_CACHE_HOME: dir };
}

before(async () => {
  [anon, token] = await Promise.all([sharedRegistry('none'), sharedRegistry('token')]);
  const twice = smallImage('twice');
  twice.layers.push(twice.layers[1]!);
  const specs: Record<string, ImageSpec | ImageSpec[]> = {
    small: smallImage('pin'),
    twice,
    plain: {
      layers: [
        { entries: [{ path: 'p', content: 'plain'.repeat(999) }], compression: 'none' },
        { entries: [{ path: 'q', content: 'q' }] },
      ],
    },
    zstd: {
      ...smallImage('zs'),
      layers: smallImage('zs').layers.map((l) => ({ ...l, compression: 'zstd' as const })),
    },
    zstdtwin: smallImage('zs'),
    // The gzip trailer's size is wrong for a two-member layer: the size hint must be caught.
    members: {
      layers: [
        { entries: [{ path: 'm', content: prng('members', 300_000) }], compression: 'gzip-2' as const },
        { entries: [{ path: 'n', content: 'n' }] },
      ],
    },
    multi: multiArchImage(),
  };
  for (const [k, s] of Object.entries(specs)) layouts[k] = await buildLayout(s);
  await Promise.all([
    pushLayout(layouts.small!, anon, 'pin/small:oci'),
    pushLayout(layouts.small!, anon, 'pin/small:v2s2', { format: 'v2s2' }),
    pushLayout(layouts.twice!, anon, 'pin/twice:1'),
    pushLayout(layouts.plain!, anon, 'pin/plain:1'),
    pushLayout(layouts.zstd!, anon, 'pin/zstd:1'),
    pushLayout(layouts.zstdtwin!, anon, 'pin/zstdtwin:1'),
    pushLayout(layouts.members!, anon, 'pin/members:1'),
    pushLayout(layouts.multi!, anon, 'pin/multi:1'),
    pushLayout(layouts.small!, token, 'private/pin:1.4'),
  ]);
  proxy = await startFaultProxy(anon.url);
});
after(async () => {
  await proxy.stop();
  await stopSharedRegistries();
});

async function prefetchJson(args: string[], env?: NodeJS.ProcessEnv) {
  const r = await runCli(['prefetch', '--format', 'json', ...args], {
    env: env ?? cacheEnv(await mkdtemp(join(tmpdir(), 'lading-cache-'))),
  });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.toString());
}

describe('hashes equal skopeo + nix-hash', () => {
  for (const [repo, tag, what] of [
    ['pin/small', 'oci', 'OCI manifest'],
    ['pin/small', 'v2s2', 'Docker schema2 manifest'],
    ['pin/twice', '1', 'the same layer twice'],
    ['pin/plain', '1', 'uncompressed layers'],
    ['pin/members', '1', 'a gzip layer in two members (its trailer understates the size)'],
  ] as const) {
    test(what, async () => {
      const j = await prefetchJson([`${anon.host}/${repo}`, tag]);
      const e = await expected(anon, repo, j.imageDigest, 'amd64', `${anon.host}/${repo}:${tag}`);
      assert.equal(toNix32(parseNixHash(j.dockerTools.hash).bytes), e.flat);
      assert.equal(toNix32(parseNixHash(j.nix2container.sha256).bytes), e.nar);
    });
  }

  test('an image of about 200 MiB', async () => {
    const big = await buildLayout(bigImage(200), '1');
    await pushLayout(big, anon, 'pin/big:1');
    const j = await prefetchJson([`${anon.host}/pin/big`, '1']);
    const e = await expected(anon, 'pin/big', j.imageDigest, 'amd64', `${anon.host}/pin/big:1`);
    assert.equal(toNix32(parseNixHash(j.dockerTools.hash).bytes), e.flat);
    assert.equal(toNix32(parseNixHash(j.nix2container.sha256).bytes), e.nar);
    assert.ok(j.dockerTools.archiveSize > 200 * 1024 * 1024);
  });

  test('every platform of a multi-arch index; the index digest is pinned unless --pin-instance', async () => {
    for (const p of MULTI_ARCH) {
      const plat = `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
      const j = await prefetchJson(['--platform', plat, `${anon.host}/pin/multi`, '1']);
      assert.equal(j.imageDigest, layouts.multi!.digest);
      assert.equal(j.indexDigest, layouts.multi!.digest);
      const inst = layouts.multi!.images[MULTI_ARCH.indexOf(p)]!.manifestDigest;
      assert.equal(j.instanceDigest, inst);
      const e = await expected(anon, 'pin/multi', j.imageDigest, p.architecture, `${anon.host}/pin/multi:1`);
      assert.equal(toNix32(parseNixHash(j.dockerTools.hash).bytes), e.flat, plat);
      assert.equal(toNix32(parseNixHash(j.nix2container.sha256).bytes), e.nar, plat);
      const pinned = await prefetchJson([
        '--pin-instance',
        '--platform',
        plat,
        `${anon.host}/pin/multi`,
        '1',
      ]);
      assert.equal(pinned.imageDigest, inst);
      assert.equal(pinned.dockerTools.hash, j.dockerTools.hash);
    }
  });

  test('zstd layers hash like their gzip twin (skopeo 1.9 cannot write them to a docker-archive)', async () => {
    const z = await prefetchJson([
      `${anon.host}/pin/zstd`,
      '1',
      '--final-image-name',
      'twin',
      '--final-image-tag',
      't',
    ]);
    const g = await prefetchJson([
      `${anon.host}/pin/zstdtwin`,
      '1',
      '--final-image-name',
      'twin',
      '--final-image-tag',
      't',
    ]);
    assert.equal(z.dockerTools.hash, g.dockerTools.hash);
    const e = await expected(anon, 'pin/zstdtwin', g.imageDigest, 'amd64', 'twin:t');
    assert.equal(toNix32(parseNixHash(z.dockerTools.hash).bytes), e.flat);
    // The dir: layout keeps the zstd blobs, so its NAR hash is skopeo's for the zstd image.
    const ez = await (async () => {
      const dir = await mkdtemp(join(tmpdir(), 'lading-zdir-'));
      await run('skopeo', [
        '--insecure-policy',
        'copy',
        '-q',
        '--src-tls-verify=false',
        `docker://${anon.host}/pin/zstd@${z.imageDigest}`,
        `dir:${join(dir, 'd')}`,
      ]);
      return nix('nix-hash', ['--type', 'sha256', '--base32', join(dir, 'd')]);
    })();
    assert.equal(toNix32(parseNixHash(z.nix2container.sha256).bytes), ez);
  });
});

describe('nix-prefetch-docker drop-in', () => {
  test('stdout is the pullImage attrset, stderr the -> lines; ImagePath is what nix-store --add-fixed gives', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'lading-cache-'));
    const r = await runCli(['prefetch', '--image-name', `${anon.host}/pin/small`, '--image-tag', 'oci'], {
      env: cacheEnv(cache),
    });
    assert.equal(r.code, 0, r.stderr);
    const attrs = JSON.parse(
      await nix('nix-instantiate', ['--eval', '--strict', '--json', '--expr', r.stdout.toString()]),
    );
    assert.deepEqual(Object.keys(attrs).sort(), [
      'finalImageName',
      'finalImageTag',
      'hash',
      'imageDigest',
      'imageName',
      'tlsVerify',
    ]);
    assert.equal(attrs.imageName, `${anon.host}/pin/small`);
    assert.equal(attrs.finalImageTag, 'oci');
    assert.match(
      r.stdout.toString(),
      // nix-prefetch-docker's five keys, and tlsVerify for this plain-HTTP registry.
      /^\{\n {2}imageName = "[^"]+";\n {2}imageDigest = "sha256:[0-9a-f]{64}";\n {2}hash = "sha256-[A-Za-z0-9+/]{43}=";\n {2}finalImageName = "[^"]+";\n {2}finalImageTag = "oci";\n {2}tlsVerify = false;\n\}\n$/,
    );
    const lines = r.stderr.trim().split('\n');
    assert.deepEqual(
      lines.map((l) => l.split(':')[0]),
      [
        '-> ImageName',
        '-> ImageDigest',
        '-> FinalImageName',
        '-> FinalImageTag',
        '-> ImagePath',
        '-> ImageHash',
      ],
    );
    const e = await expected(anon, 'pin/small', attrs.imageDigest, 'amd64', `${anon.host}/pin/small:oci`);
    const named = join(
      await mkdtemp(join(tmpdir(), 'lading-named-')),
      `docker-image-127.0.0.1-${anon.host.split(':')[1]}-pin-small-oci.tar`,
    );
    await copyFile(e.archive, named);
    const storePath = await nix('nix-store', ['--add-fixed', 'sha256', named]);
    assert.ok(lines[4]!.endsWith(storePath), `${lines[4]} vs ${storePath}`);
    // --json and --legacy-sha256 shapes.
    const j = JSON.parse(
      (
        await runCli(['prefetch', '--json', '--quiet', `${anon.host}/pin/small`, 'oci'], {
          env: cacheEnv(cache),
        })
      ).stdout.toString(),
    );
    assert.deepEqual(Object.keys(j), [
      'imageName',
      'imageDigest',
      'hash',
      'finalImageName',
      'finalImageTag',
      'tlsVerify',
    ]);
    const legacy = await runCli(['prefetch', '--legacy-sha256', '--quiet', `${anon.host}/pin/small`, 'oci'], {
      env: cacheEnv(cache),
    });
    assert.match(legacy.stdout.toString(), new RegExp(`sha256 = "${e.flat}";`));
    assert.equal(legacy.stderr, '');
  });

  test('a digest as the second argument, name:tag forms, and the other formats', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'lading-cache-'));
    const byTag = await prefetchJson([`${anon.host}/pin/small:oci`], cacheEnv(cache));
    const byDigest = await prefetchJson([`${anon.host}/pin/small`, byTag.imageDigest], cacheEnv(cache));
    assert.equal(byDigest.nix2container.sha256, byTag.nix2container.sha256);
    assert.notEqual(
      byDigest.dockerTools.hash,
      byTag.dockerTools.hash,
      'the archive names the tag, so the hashes differ',
    );
    assert.equal(byDigest.finalImageTag, 'latest');
    const m = await runCli(['prefetch', '--format', 'manifest', `${anon.host}/pin/small`, 'oci'], {
      env: cacheEnv(cache),
    });
    assert.ok(m.stdout.equals(layouts.small!.images[0]!.manifest));
    const n2c = await runCli(['prefetch', '--format', 'nix2container', `${anon.host}/pin/small`, 'oci'], {
      env: cacheEnv(cache),
    });
    const v = JSON.parse(
      await nix('nix-instantiate', ['--eval', '--strict', '--json', '--expr', n2c.stdout.toString()]),
    );
    assert.equal(v.sha256, byTag.nix2container.sha256);
    // hocker reads Docker schema2 manifests only.
    const d2n = await runCli(['prefetch', '--format', 'docker2nix', `${anon.host}/pin/small`, 'v2s2'], {
      env: cacheEnv(cache),
    });
    await nix('nix-instantiate', ['--parse', '--expr', d2n.stdout.toString()]);
    for (const b of byTag.blobs.slice(1)) assert.ok(d2n.stdout.toString().includes(b.nix32));
  });

  test('-o writes the same archive skopeo writes; --dir the same dir: layout', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'lading-cache-'));
    const out = join(cache, 'image.tar');
    const d = join(cache, 'dir');
    const j = await prefetchJson(['-o', out, '--dir', d, `${anon.host}/pin/twice`, '1'], cacheEnv(cache));
    const e = await expected(anon, 'pin/twice', j.imageDigest, 'amd64', `${anon.host}/pin/twice:1`);
    assert.ok((await readFile(out)).equals(await readFile(e.archive)));
    assert.equal(await nix('nix-hash', ['--type', 'sha256', '--base32', d]), e.nar);
    await run('diff', ['-r', d, e.dir]);
  });

  test('a second prefetch of the same image only sends a HEAD', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'lading-cache-'));
    const first = await prefetchJson([`${proxy.host}/pin/multi`, '1', '--arch', 'arm64'], cacheEnv(cache));
    proxy.clear();
    const second = await prefetchJson([`${proxy.host}/pin/multi`, '1', '--arch', 'arm64'], cacheEnv(cache));
    assert.equal(second.dockerTools.hash, first.dockerTools.hash);
    assert.equal(second.cached, true);
    const apiCalls = proxy.log.filter((e) => e.path !== '/v2/');
    assert.deepEqual(
      apiCalls.map((e) => e.method),
      ['HEAD'],
    );
  });

  test('each blob is downloaded once; the outputs fetch only what they show', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'lading-cache-'));
    const e = await expected(anon, 'pin/twice', layouts.twice!.digest, 'amd64', `${proxy.host}/pin/twice:1`);
    const blobGets = () =>
      proxy.log
        .filter((x) => x.method === 'GET' && x.path.includes('/blobs/') && !x.range)
        .map((x) => x.path);
    // The manifest for pullImageFromManifest and hocker's expression need no blob at all.
    proxy.clear();
    const m = await runCli(['prefetch', '--format', 'manifest', `${proxy.host}/pin/twice`, '1'], {
      env: cacheEnv(cache),
    });
    assert.equal(m.code, 0, m.stderr);
    const raw = (
      await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${anon.host}/pin/twice:1`])
    ).stdout;
    assert.ok(m.stdout.equals(raw));
    assert.deepEqual(blobGets(), []);
    // The NAR hash alone: every blob once (no decompression needed).
    proxy.clear();
    const n = await runCli(['prefetch', '--format', 'nix2container', `${proxy.host}/pin/twice`, '1'], {
      env: cacheEnv(cache),
    });
    assert.equal(n.code, 0, n.stderr);
    const nar = /sha256 = "([^"]+)"/.exec(n.stdout.toString())?.[1];
    assert.equal(toNix32(parseNixHash(nar!).bytes), e.nar);
    const once = blobGets();
    assert.equal(new Set(once).size, once.length, `a blob was fetched twice: ${once.join(' ')}`);
    assert.equal(once.length, 1 + new Set(layouts.twice!.images[0]!.layers.map((l) => l.digest)).size);
    // Then the flat hash from the same cache: no blob is fetched again.
    proxy.clear();
    const j = await prefetchJson([`${proxy.host}/pin/twice`, '1'], cacheEnv(cache));
    assert.equal(toNix32(parseNixHash(j.dockerTools.hash).bytes), e.flat);
    assert.equal(j.nix2container.sha256, toSri(parseNixHash(nar!)));
    assert.deepEqual(blobGets(), []);
    // Cold, both hashes at once: still one GET per blob (streamed or downloaded ahead, never both).
    proxy.clear();
    const cold = await prefetchJson([`${proxy.host}/pin/twice`, '1']);
    assert.equal(cold.dockerTools.hash, j.dockerTools.hash);
    assert.equal(cold.nix2container.sha256, j.nix2container.sha256);
    const all = blobGets();
    assert.equal(new Set(all).size, all.length, `a blob was fetched twice: ${all.join(' ')}`);
  });

  test('seed 000: a private registry behind Bearer tokens, credentials from a docker config', async () => {
    const home = await mkdtemp(join(tmpdir(), 'lading-home-'));
    await mkdir(join(home, 'docker'));
    await writeFile(
      join(home, 'docker', 'config.json'),
      JSON.stringify({
        auths: { [token.host]: { auth: Buffer.from('alice:wonderland-Secret-1').toString('base64') } },
      }),
    );
    const env = { ...cacheEnv(home), DOCKER_CONFIG: join(home, 'docker') };
    const r = await runCli(['prefetch', `${token.host}/private/pin`, '1.4'], { env });
    assert.equal(r.code, 0, r.stderr);
    const attrs = JSON.parse(
      await nix('nix-instantiate', ['--eval', '--strict', '--json', '--expr', r.stdout.toString()]),
    );
    const e = await expected(
      token,
      'private/pin',
      attrs.imageDigest,
      'amd64',
      `${token.host}/private/pin:1.4`,
      'alice:wonderland-Secret-1',
    );
    assert.equal(toNix32(parseNixHash(attrs.hash).bytes), e.flat);
    const anonTry = await runCli(['prefetch', `${token.host}/private/pin`, '1.4'], { env: cacheEnv(home) });
    assert.equal(anonTry.code, 3);
  });

  test('bad input: unknown tag, wrong platform, unwritable output', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'lading-cache-'));
    const unknown = await runCli(['prefetch', `${anon.host}/pin/small`, 'nope'], { env: cacheEnv(cache) });
    assert.equal(unknown.code, 4);
    assert.equal(unknown.stderr.trim().split('\n').length, 1);
    const plat = await runCli(['prefetch', '--arch', 's390x', `${anon.host}/pin/multi`, '1'], {
      env: cacheEnv(cache),
    });
    assert.equal(plat.code, 4);
    assert.match(plat.stderr, /linux\/amd64, linux\/arm64\/v8, linux\/arm\/v7/);
    // Missing parents are made (README, "Output paths"); a parent that is a file cannot be.
    await writeFile(join(cache, 'a-file'), 'x');
    const target = join(cache, 'a-file', 'x.tar');
    const unwritable = await runCli(['prefetch', '-o', target, `${anon.host}/pin/small`, 'oci'], {
      env: cacheEnv(cache),
    });
    assert.equal(unwritable.code, 2);
    assert.match(unwritable.stderr, /a-file is a file, not a directory/);
    assert.equal(existsSync(target), false);
    assert.equal(unwritable.stdout.length, 0);
  });
});
