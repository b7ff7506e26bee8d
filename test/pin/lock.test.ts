import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type BuiltLayout, buildLayout, multiArchImage, pushLayout, smallImage } from '../helpers/images.ts';
import { nix, nixEnv } from '../helpers/nix.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

let anon: TestRegistry;
let small: BuiltLayout;
let multi: BuiltLayout;
let work: string;
let env: NodeJS.ProcessEnv;

before(async () => {
  anon = await sharedRegistry('none');
  small = await buildLayout(smallImage('lock'));
  multi = await buildLayout(multiArchImage());
  await Promise.all([pushLayout(small, anon, 'lock/small:1'), pushLayout(multi, anon, 'lock/multi:1')]);
  work = await mkdtemp(join(tmpdir(), 'lading-lock-'));
  env = { HOME: '/nonexistent', PATH: process.env.PATH, XDG_CACHE_HOME: join(work, 'cache') };
});
after(stopSharedRegistries);

const cli = (args: string[]) => runCli([...args], { env, cwd: work });

/** Stand-ins for the two pull functions that let real Nix check lading's hashes. */
function standIns(archives: Record<string, string>): string {
  return `{
  dockerTools.pullImage = args: derivation {
    name = builtins.replaceStrings [ "/" ":" ] [ "-" "-" ] "docker-image-\${args.finalImageName}-\${args.finalImageTag}.tar";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "/bin/cp \${(${nixAttrs(archives)}).\${args.finalImageName}} $out" ];
    outputHash = args.hash;
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
  };
  nix2container = {
    pullImageFromManifest = args:
      let m = builtins.fromJSON (builtins.readFile args.imageManifest);
      in map (d: derivation {
        name = builtins.substring 7 64 d.digest;
        builder = "builtin:fetchurl";
        system = "builtin";
        url = "http://\${args.registryUrl}/v2/\${args.imageName}/blobs/\${d.digest}";
        outputHash = d.digest;
        outputHashAlgo = "sha256";
        outputHashMode = "flat";
      }) ([ m.config ] ++ m.layers);
    pullImage = args: derivation {
      name = "docker-image-nix2container";
      system = builtins.currentSystem;
      builder = "/bin/sh";
      args = [ "-c" "HOME=/tmp /usr/bin/skopeo --insecure-policy --override-arch \${args.arch} copy -q --src-tls-verify=false docker://\${args.imageName}@\${args.imageDigest} dir:$out" ];
      outputHash = args.sha256;
      outputHashMode = "recursive";
      outputHashAlgo = "sha256";
    };
  };
}`;
}

function nixAttrs(o: Record<string, string>): string {
  return `{ ${Object.entries(o)
    .map(([k, v]) => `"${k}" = "${v}";`)
    .join(' ')} }`;
}

describe('lock files', () => {
  test('add, ls, update (HEAD only when unchanged), nix; a real Nix build accepts the hashes and rejects a wrong one', async () => {
    const a = await cli(['lock', 'add', `${anon.host}/lock/small:1`]);
    assert.equal(a.code, 0, a.stderr);
    const b = await cli([
      'lock',
      'add',
      '--name',
      'multi',
      '--platform',
      'linux/arm64',
      `${anon.host}/lock/multi:1`,
    ]);
    assert.equal(b.code, 0, b.stderr);
    const lockPath = join(work, 'lading.lock.json');
    const lock = JSON.parse(await readFile(lockPath, 'utf8'));
    assert.equal(lock.version, 1);
    assert.deepEqual(Object.keys(lock.images), ['multi', 'small']);
    assert.equal(lock.images.multi.imageDigest, multi.digest);
    assert.equal(lock.images.multi.instanceDigest, multi.images[1]!.manifestDigest);
    assert.equal((await cli(['lock', 'ls'])).stdout.toString().trim().split('\n').length, 2);

    const same = await cli(['lock', 'update']);
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stdout.toString(), /multi: unchanged/);
    assert.match(same.stdout.toString(), /small: unchanged/);

    // Move the tag: update re-pins only that image.
    const moved = await buildLayout(smallImage('lock-moved'));
    await pushLayout(moved, anon, 'lock/small:1');
    const upd = await cli(['lock', 'update']);
    assert.match(
      upd.stdout.toString(),
      new RegExp(`small: ${lock.images.small.imageDigest} -> ${moved.digest}`),
    );
    assert.match(upd.stdout.toString(), /multi: unchanged/);

    const nixFile = join(work, 'images.nix');
    assert.equal((await cli(['lock', 'nix', '-o', nixFile])).code, 0);
    await nix('nix-instantiate', ['--parse', nixFile]);

    // The archives pullImage would build, made by skopeo (independent of lading).
    const updated = JSON.parse(await readFile(lockPath, 'utf8'));
    const archives: Record<string, string> = {};
    for (const [name, e] of Object.entries(updated.images) as [
      string,
      {
        imageDigest: string;
        arch: string;
        finalImageName: string;
        finalImageTag: string;
        repository: string;
      },
    ][]) {
      const out = join(work, `${name}.tar`);
      await run('skopeo', [
        '--insecure-policy',
        '--override-arch',
        e.arch,
        'copy',
        '-q',
        '--src-tls-verify=false',
        `docker://${anon.host}/${e.repository}@${e.imageDigest}`,
        `docker-archive:${out}:${e.finalImageName}:${e.finalImageTag}`,
      ]);
      archives[e.finalImageName] = out;
    }
    const expr = join(work, 'build.nix');
    await writeFile(
      expr,
      `let pkgs = ${standIns(archives)}; images = import ${nixFile} pkgs; in
       [ images.small.dockerTools images.multi.dockerTools images.small.nix2containerPullImage images.multi.nix2containerPullImage ]
       ++ images.small.nix2container ++ images.multi.nix2container`,
    );
    const built = await run('nix-build', ['--no-out-link', expr], { env: nixEnv() });
    const paths = built.stdout.toString().trim().split('\n');
    assert.ok(paths.length >= 6, built.stderr);
    assert.ok(paths[0]!.endsWith(`-docker-image-${anon.host.replace(':', '-')}-lock-small-1.tar`));

    // A wrong hash is refused by Nix.
    const broken = (await readFile(nixFile, 'utf8')).replace(
      updated.images.small.dockerTools.hash,
      'sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
    );
    await writeFile(join(work, 'broken.nix'), broken);
    await writeFile(
      expr,
      `let pkgs = ${standIns(archives)}; in (import ${join(work, 'broken.nix')} pkgs).small.dockerTools`,
    );
    const fail = await run('nix-build', ['--no-out-link', expr], { env: nixEnv(), allowFail: true });
    assert.notEqual(fail.code, 0);
    assert.match(fail.stderr, /hash mismatch/);
  });

  test('lock errors: bad names, missing entries, digests instead of tags', async () => {
    assert.equal((await cli(['lock', 'add', '--name', '9bad name', `${anon.host}/lock/small:1`])).code, 2);
    assert.equal((await cli(['lock', 'update', 'nope'])).code, 4);
    assert.equal((await cli(['lock', 'add', `${anon.host}/lock/small@${small.digest}`])).code, 2);
  });
});
