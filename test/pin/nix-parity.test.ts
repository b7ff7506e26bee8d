import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { platformNeedsShowing } from '../../src/pin/index.ts';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type BuiltLayout, buildLayout, type ImageSpec, pushLayout, smallImage } from '../helpers/images.ts';
import { nix, nixEnv } from '../helpers/nix.ts';
import {
  sharedRegistry,
  startRegistry,
  stopSharedRegistries,
  type TestRegistry,
} from '../helpers/registry.ts';

// Every expression lading prints is fed to strict stand-ins of the upstream functions
// (test/pin/upstream/: same formals, same skopeo command lines) and built by real nix-build, which
// checks the fixed-output hashes itself. The registry speaks plain HTTP, as most private ones in
// a lab do: nothing builds unless lading says `tlsVerify = false`.
const UPSTREAM = join(import.meta.dirname, 'upstream');

let reg: TestRegistry;
let work: string;
const layouts: Record<string, BuiltLayout> = {};

/** An index with two variants of one os/arch: skopeo's --override-arch arm alone picks v7. */
function armVariants(): ImageSpec[] {
  return [
    { os: 'linux', architecture: 'amd64' },
    { os: 'linux', architecture: 'arm', variant: 'v6' },
    { os: 'linux', architecture: 'arm', variant: 'v7' },
    { os: 'linux', architecture: 'arm64', variant: 'v8' },
  ].map((p) => ({
    ...p,
    layers: [{ entries: [{ path: 'p', content: `${p.architecture}${p.variant ?? ''}\n` }] }],
  }));
}

before(async () => {
  reg = await sharedRegistry('none');
  work = await mkdtemp(join(tmpdir(), 'lading-nix-parity-'));
  layouts.arm = await buildLayout(armVariants());
  layouts.small = await buildLayout(smallImage('nix-parity'));
  await Promise.all([
    pushLayout(layouts.arm, reg, 'parity/arm:1'),
    pushLayout(layouts.small, reg, 'parity/small:1'),
    pushLayout(layouts.small, reg, 'parity/small:2'),
    // hocker asks for Docker schema2 manifests only.
    pushLayout(layouts.small, reg, 'solo:1', { format: 'v2s2' }),
    pushLayout(layouts.small, reg, 'deep/er/small:1', { format: 'v2s2' }),
    pushLayout(layouts.arm, reg, 'parity/arm:s2', { format: 'v2s2', all: true }),
  ]);
});
after(stopSharedRegistries);

function env(): NodeJS.ProcessEnv {
  return { HOME: '/nonexistent', PATH: process.env.PATH, XDG_CACHE_HOME: join(work, 'cache') };
}

async function cli(args: string[], extra: NodeJS.ProcessEnv = {}) {
  return runCli(args, { env: { ...env(), ...extra }, cwd: work });
}

/** The stand-ins' builders end in "exit $?" (test/pin/upstream/lib.nix), so Nix's defaults hold. */
const buildEnv = () => nixEnv();

let n = 0;
/**
 * nix-build of `body` with `up` bound to the stand-ins; the output paths, or the failure. Outputs
 * already in the store (an earlier run) are deleted first, so every fixed-output derivation is
 * really built and its hash checked (Nix keeps paths that another process is using).
 */
async function build(
  body: string,
  upArgs = '{ }',
): Promise<{ code: number; paths: string[]; stderr: string }> {
  const file = join(work, `expr-${n++}.nix`);
  await writeFile(file, `let up = import ${UPSTREAM} ${upArgs}; in ${body}`);
  const drvs = await run('nix-instantiate', [file], { env: nixEnv(), allowFail: true });
  if (drvs.code === 0) {
    const reqs = await run('nix-store', ['-qR', ...drvs.stdout.toString().trim().split('\n')], {
      env: nixEnv(),
    });
    const fods = reqs.stdout
      .toString()
      .trim()
      .split('\n')
      .filter((p) => p.endsWith('.drv'));
    const outs = await run('nix-store', ['-q', '--outputs', ...fods], { env: nixEnv() });
    for (const o of outs.stdout.toString().trim().split('\n'))
      await run('nix-store', ['--delete', o], { env: nixEnv(), allowFail: true });
  }
  const r = await run('nix-build', ['--no-out-link', file], { env: buildEnv(), allowFail: true });
  return { code: r.code, paths: r.stdout.toString().trim().split('\n').filter(Boolean), stderr: r.stderr };
}

async function built(body: string, upArgs?: string): Promise<string[]> {
  const r = await build(body, upArgs);
  assert.equal(r.code, 0, r.stderr);
  return r.paths;
}

function imagePath(stderr: string): string {
  const line = stderr.split('\n').find((l) => l.startsWith('-> ImagePath: '));
  assert.ok(line, stderr);
  return line.slice('-> ImagePath: '.length);
}

describe('prefetch output pasted into the real functions', () => {
  test('14.1 arm/v6 beside arm/v7: the instance is pinned, pullImage and nix2container build v6', async () => {
    const v6 = layouts.arm!.images[1]!;
    const r = await cli(['prefetch', '--platform', 'linux/arm/v6', `${reg.host}/parity/arm`, '1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), new RegExp(`imageDigest = "${v6.manifestDigest}"`));
    assert.match(r.stdout.toString(), /os = "linux";\n {2}arch = "arm";/);
    const [out] = await built(`up.dockerTools.pullImage (${r.stdout})`);
    assert.equal(out, imagePath(r.stderr));
    // The archive holds v6's config.
    const tar = await run('tar', ['-tf', out!]);
    assert.ok(tar.stdout.toString().includes(`${v6.configDigest.slice(7)}.json`));
    const n2c = await cli([
      'prefetch',
      '--format',
      'nix2container',
      '--platform',
      'linux/arm/v6',
      `${reg.host}/parity/arm`,
      '1',
    ]);
    assert.equal(n2c.code, 0, n2c.stderr);
    const [dir] = await built(`up.nix2container.pullImage (${n2c.stdout})`);
    assert.equal(await readFile(join(dir!, 'manifest.json'), 'utf8'), v6.manifest.toString());
  });

  test('14.7 --arch arm64: os and arch are printed, so an amd64 host builds the arm64 image', async () => {
    const r = await cli(['prefetch', '--arch', 'arm64', `${reg.host}/parity/arm`, '1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), /arch = "arm64";/);
    assert.equal((await built(`up.dockerTools.pullImage (${r.stdout})`))[0], imagePath(r.stderr));
    // Without a platform and on linux/amd64, the five keys of nix-prefetch-docker (+ tlsVerify).
    const plain = await cli(['prefetch', `${reg.host}/parity/small`, '1']);
    assert.equal(plain.stdout.toString().includes('arch ='), process.arch !== 'x64');
    // On an arm64 host, pullImage's default arch is arm64: an amd64 pin must say so.
    assert.equal(platformNeedsShowing({ os: 'linux', arch: 'amd64' }, false, 'arm64'), true);
    assert.equal(platformNeedsShowing({ os: 'linux', arch: 'amd64' }, false, 'amd64'), false);
  });

  test('14.4 plain HTTP: tlsVerify = false is printed, and the stand-ins fail without it', async () => {
    const r = await cli(['prefetch', `${reg.host}/parity/small`, '1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), /tlsVerify = false;/);
    await built(`up.dockerTools.pullImage (${r.stdout})`);
    const without = await build(
      `up.dockerTools.pullImage (builtins.removeAttrs (${r.stdout}) [ "tlsVerify" ])`,
    );
    assert.notEqual(without.code, 0);
    assert.match(
      without.stderr,
      /http: server gave HTTP response to HTTPS client|pinging container registry/,
    );
  });

  test('14.4 HTTPS: no tlsVerify when the certificate was verified; false with --tls-verify=false', async () => {
    const tls = await startRegistry({ auth: 'none', tls: true });
    try {
      await pushLayout(layouts.small!, tls, 'parity/tls:1');
      const certs = await mkdtemp(join(work, 'certs-'));
      await copyFile(tls.certPath!, join(certs, 'ca.crt'));
      const r = await cli(['prefetch', '--cert-dir', certs, `${tls.host}/parity/tls`, '1']);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout.toString(), /tlsVerify/);
      // The builder's skopeo trusts the registry's certificate (SSL_CERT_FILE) and verifies it.
      const trusted = `{ certFile = ${tls.certPath}; }`;
      assert.equal((await built(`up.dockerTools.pullImage (${r.stdout})`, trusted))[0], imagePath(r.stderr));
      const insecure = await cli(['prefetch', '--tls-verify=false', `${tls.host}/parity/tls`, '1']);
      assert.equal(insecure.code, 0, insecure.stderr);
      assert.match(insecure.stdout.toString(), /tlsVerify = false;/);
      // Without the certificate only tlsVerify = false builds.
      assert.equal(
        (await built(`up.dockerTools.pullImage (${insecure.stdout})`))[0],
        imagePath(insecure.stderr),
      );
      const strict = await build(`up.dockerTools.pullImage (${r.stdout})`);
      assert.notEqual(strict.code, 0);
      assert.match(strict.stderr, /certificate/);
    } finally {
      await tls.stop();
    }
  });

  test('14.2 --image-tag T --image-digest D: finalImageTag = T, as nix-prefetch-docker; ImagePath is the build', async () => {
    const digest = layouts.small!.digest;
    const r = await cli([
      'prefetch',
      '--image-name',
      `${reg.host}/parity/small`,
      '--image-tag',
      '2',
      '--image-digest',
      digest,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), /finalImageTag = "2";/);
    assert.match(r.stdout.toString(), new RegExp(`imageDigest = "${digest}"`));
    const [out] = await built(`up.dockerTools.pullImage (${r.stdout})`);
    assert.equal(out, imagePath(r.stderr));
    assert.ok(out!.endsWith('-parity-small-2.tar'));
  });

  test('14.5 a 209-character name: the store path the real derivation gets (last 207 characters)', async () => {
    const base = `docker-image-${reg.host.replace(':', '-')}-`;
    const finalName = `${reg.host}/${'n'.repeat(209 - base.length - '-1.tar'.length)}`;
    const r = await cli(['prefetch', '--final-image-name', finalName, `${reg.host}/parity/small`, '1']);
    assert.equal(r.code, 0, r.stderr);
    const [out] = await built(`up.dockerTools.pullImage (${r.stdout})`);
    assert.equal(out, imagePath(r.stderr));
    assert.equal(out!.length - '/nix/store/'.length - 33, 207);
    // Longer than Nix's 211: still what pullImage builds.
    const longer = await cli([
      'prefetch',
      '--final-image-name',
      `${finalName}xxxxxxxx`,
      `${reg.host}/parity/small`,
      '1',
    ]);
    assert.equal(longer.code, 0, longer.stderr);
    assert.equal((await built(`up.dockerTools.pullImage (${longer.stdout})`))[0], imagePath(longer.stderr));
  });

  test('14.8 NIX_HASH_ALGO, nix32 ImageHash with --legacy-sha256, --json per format', async () => {
    const algo = await cli(['prefetch', `${reg.host}/parity/small`, '1'], { NIX_HASH_ALGO: 'sha512' });
    assert.equal(algo.code, 2);
    assert.match(algo.stderr, /^lading: error: NIX_HASH_ALGO=sha512 is not supported/);
    assert.equal(
      (await cli(['prefetch', `${reg.host}/parity/small`, '1'], { NIX_HASH_ALGO: 'sha256' })).code,
      0,
    );
    const legacy = await cli(['prefetch', '--legacy-sha256', `${reg.host}/parity/small`, '1']);
    const sha = /sha256 = "([0-9a-z]{52})";/.exec(legacy.stdout.toString())?.[1];
    assert.ok(sha, legacy.stdout.toString());
    assert.match(legacy.stderr, new RegExp(`^-> ImageHash: ${sha}$`, 'm'));
    assert.equal(
      (await built(`up.dockerToolsLegacy.pullImage (${legacy.stdout})`))[0],
      imagePath(legacy.stderr),
    );
    const j = await cli(['prefetch', '--json', '--format', 'nix2container', `${reg.host}/parity/small`, '1']);
    assert.equal(j.code, 0, j.stderr);
    const attrs = JSON.parse(j.stdout.toString());
    await built(`up.nix2container.pullImage (builtins.fromJSON ''${JSON.stringify(attrs)}'')`);
    for (const format of ['docker2nix', 'manifest']) {
      const refused = await cli(['prefetch', '--json', '--format', format, `${reg.host}/parity/small`, '1']);
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /^lading: error: --json does not apply/);
    }
  });
});

describe('docker2nix output built by fetchdocker (hocker URLs)', () => {
  for (const [what, repo, extra] of [
    ['a one-component repository on another registry', 'solo', []],
    ['a three-component repository', 'deep/er/small', []],
    ['an index: the instance is pinned as the tag', 'parity/arm', ['--platform', 'linux/arm/v6']],
  ] as const) {
    test(`14.6 ${what}`, async () => {
      const tag = repo === 'parity/arm' ? 's2' : '1';
      const r = await cli(['prefetch', '--format', 'docker2nix', ...extra, `${reg.host}/${repo}`, tag]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout.toString(), /registry = "http:\/\//);
      const paths = await built(
        `(${r.stdout}) { inherit (up) fetchDockerConfig fetchDockerLayer fetchdocker; }`,
      );
      assert.ok(paths.length >= 2);
    });
  }
  test('14.6 an OCI manifest is refused: hocker asks for Docker schema2 only', async () => {
    const r = await cli(['prefetch', '--format', 'docker2nix', `${reg.host}/parity/small`, '1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^lading: error: .*Docker schema2/);
  });
});

describe('lock', () => {
  test('14.1/14.3/14.4 lock nix: v6 pinned, tlsVerify, --legacy-sha256 for the pre-hash pullImage', async () => {
    const dir = await mkdtemp(join(work, 'lock-'));
    const lock = (args: string[]) => runCli(args, { env: env(), cwd: dir });
    const a = await lock([
      'lock',
      'add',
      '--name',
      'v6',
      '--platform',
      'linux/arm/v6',
      `${reg.host}/parity/arm:1`,
    ]);
    assert.equal(a.code, 0, a.stderr);
    const entry = JSON.parse(await readFile(join(dir, 'lading.lock.json'), 'utf8')).images.v6;
    assert.equal(entry.imageDigest, layouts.arm!.images[1]!.manifestDigest);
    assert.equal(entry.tlsVerify, false);
    const current = join(dir, 'images.nix');
    const legacy = join(dir, 'images-legacy.nix');
    assert.equal((await lock(['lock', 'nix', '-o', current])).code, 0);
    assert.equal((await lock(['lock', 'nix', '--legacy-sha256', '-o', legacy])).code, 0);
    const n2cArgs = `{ dockerTools = up.dockerTools; nix2container = up.nix2container; }`;
    await built(
      `let i = (import ${current} ${n2cArgs}).v6; in [ i.dockerTools i.nix2containerPullImage ] ++ i.nix2container`,
    );
    const old = `{ dockerTools = up.dockerToolsLegacy; nix2container = up.nix2container; }`;
    await built(`(import ${legacy} ${old}).v6.dockerTools`);
    // The hash form on a pre-hash nixpkgs fails evaluation, as it does for users.
    const fail = await build(`(import ${current} ${old}).v6.dockerTools`);
    assert.notEqual(fail.code, 0);
    assert.match(fail.stderr, /unexpected argument 'hash'|without required argument 'sha256'/);
  });

  test('13.13 lock add refuses to replace an entry of the same name unless --force', async () => {
    const dir = await mkdtemp(join(work, 'lock-'));
    const lock = (args: string[]) => runCli(args, { env: env(), cwd: dir });
    assert.equal((await lock(['lock', 'add', '--name', 'app', `${reg.host}/parity/small:1`])).code, 0);
    const file = join(dir, 'lading.lock.json');
    const before = await readFile(file, 'utf8');
    const again = await lock(['lock', 'add', '--name', 'app', `${reg.host}/parity/arm:1`]);
    assert.notEqual(again.code, 0);
    assert.match(
      again.stderr,
      /^lading: error: .* already has an entry "app" \(.*parity\/small:1\); choose another with --name, or replace it with --force/,
    );
    assert.equal(await readFile(file, 'utf8'), before);
    assert.equal(
      (await lock(['lock', 'add', '--force', '--name', 'app', `${reg.host}/parity/arm:1`])).code,
      0,
    );
    assert.match(JSON.parse(await readFile(file, 'utf8')).images.app.source, /parity\/arm:1$/);
    // The same name derived from another image is refused before anything is fetched.
    const derived = await lock(['lock', 'add', `${reg.host}/other/app:1`]);
    assert.match(derived.stderr, /already has an entry "app"/);
  });
});

test('the stand-ins are strict: an unknown argument fails evaluation', async () => {
  const r = await build(
    'up.dockerTools.pullImage { imageName = "x"; imageDigest = "sha256:0"; hash = ""; variant = "v6"; }',
  );
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /unexpected argument 'variant'/);
  const both = await build(
    'up.dockerTools.pullImage { imageName = "x"; imageDigest = "d"; hash = "a"; sha256 = "b"; }',
  );
  assert.match(both.stderr, /mutually-incompatible arguments: hash, sha256/);
  assert.ok(
    (await nix('nix-instantiate', [
      '--eval',
      '--expr',
      `(import ${UPSTREAM} {}).lib.sanitizeDerivationName ".a b"`,
    ])) === '"a-b"',
  );
});
