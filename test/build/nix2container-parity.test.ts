import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { BuiltImage, hostArchitecture, mergeConfig, parseBuildSpec } from '../../src/build/index.ts';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { buildLayout } from '../helpers/images.ts';
import { nixEnv } from '../helpers/nix.ts';

// `lading build` against nix2container's buildImage semantics (issue 14, docs/nix-parity.md).

async function tree() {
  const dir = await mkdtemp(join(tmpdir(), 'lading-n2c-parity-'));
  const libc = join(dir, 'nix/store/aaaa-libc');
  const env = join(dir, 'nix/store/cccc-env');
  await mkdir(join(libc, 'lib'), { recursive: true });
  await writeFile(join(libc, 'lib/libc.so'), 'libc\n');
  await mkdir(join(env, 'bin'), { recursive: true });
  await writeFile(join(env, 'bin/app'), '#!/bin/sh\n');
  await chmod(join(env, 'bin/app'), 0o755);
  await writeFile(
    join(dir, 'graph.json'),
    JSON.stringify([
      { path: env, references: [env, libc] },
      { path: libc, references: [] },
    ]),
  );
  return { dir, libc, env };
}

async function buildTo(
  dir: string,
  spec: unknown,
): Promise<{ config: Record<string, any>; layers: string[]; out: string }> {
  await writeFile(join(dir, 'spec.json'), JSON.stringify(spec));
  const out = join(dir, `out-${Math.random().toString(36).slice(2)}`);
  const r = await runCli(['build', join(dir, 'spec.json'), '-o', `oci:${out}:t`, '--json'], {
    env: { HOME: '/nonexistent-home', PATH: process.env.PATH },
  });
  assert.equal(r.code, 0, r.stderr);
  const got = JSON.parse(r.stdout.toString());
  const config = JSON.parse(await readFile(join(out, 'blobs/sha256', got.config.slice(7)), 'utf8'));
  return { config, layers: got.layers, out };
}

/** `tar -tv` of a layer blob, as GNU tar lists it. */
async function listing(out: string, digest: string): Promise<string> {
  return (
    await run('tar', ['--numeric-owner', '-tvf', join(out, 'blobs/sha256', digest.slice(7))])
  ).stdout.toString();
}

test('copyToRoot brings its closure, as nix2container does: the referenced store path is in the layer', async () => {
  const t = await tree();
  const b = await buildTo(t.dir, {
    closureGraph: 'graph.json',
    copyToRoot: [t.env],
    rewrites: [{ regex: `^${t.dir}`, repl: '' }],
  });
  assert.equal(b.layers.length, 1);
  const l = await listing(b.out, b.layers[0]!);
  assert.match(l, / \/bin\/app$/m, 'copyToRoot at /');
  assert.match(l, / \/nix\/store\/aaaa-libc\/lib\/libc\.so$/m, 'its dependency at its store path');
  // An earlier layer holding the dependency keeps it out of the copyToRoot layer.
  const c = await buildTo(t.dir, {
    closureGraph: 'graph.json',
    layers: [{ paths: [t.libc] }],
    copyToRoot: [t.env],
    rewrites: [{ regex: `^${t.dir}`, repl: '' }],
  });
  assert.equal(c.layers.length, 2);
  assert.doesNotMatch(await listing(c.out, c.layers[1]!), /libc\.so/);
});

test('perms: the last matching rule wins and resets uid/gid to 0 (nix2container appendFileToTar)', async () => {
  const t = await tree();
  const b = await buildTo(t.dir, {
    copyToRoot: [t.env],
    perms: [
      { regex: 'bin/app$', mode: '0750', uid: 1000, gid: 1000 },
      { regex: 'bin/app$', mode: '0700' },
    ],
  });
  assert.match(await listing(b.out, b.layers[0]!), /^-rwx------ 0\/0 .* \/bin\/app$/m);
});

test("fromImage: a new Entrypoint drops the base's Cmd (Docker's rule); other keys are merged", async () => {
  const t = await tree();
  const base = await buildLayout({
    layers: [{ entries: [{ path: 'base.txt', content: 'b' }] }],
    config: { Cmd: ['/base-cmd'], Env: ['A=1'], WorkingDir: '/w' },
  });
  const from = `oci:${base.dir}:${base.tag}`;
  const b = await buildTo(t.dir, {
    fromImage: from,
    copyToRoot: [t.env],
    config: { Entrypoint: ['/bin/app'] },
  });
  assert.deepEqual(b.config.config.Entrypoint, ['/bin/app']);
  assert.equal(b.config.config.Cmd, undefined);
  assert.deepEqual(b.config.config.Env, ['A=1']);
  assert.equal(b.config.config.WorkingDir, '/w');
  const both = await buildTo(t.dir, {
    fromImage: from,
    copyToRoot: [t.env],
    config: { Entrypoint: ['/bin/app'], Cmd: ['x'] },
  });
  assert.deepEqual(both.config.config.Cmd, ['x']);
  assert.deepEqual(mergeConfig({ Cmd: ['c'] }, { Env: [] }), { Cmd: ['c'], Env: [] });
});

test("architecture defaults to the building host's (nix2container's arch ? go.GOARCH), never a silent amd64", async () => {
  assert.equal(hostArchitecture('x64'), 'amd64');
  assert.equal(hostArchitecture('arm64'), 'arm64');
  assert.equal(hostArchitecture('arm'), 'arm');
  const t = await tree();
  const spec = parseBuildSpec({ copyToRoot: [t.env] }, { baseDir: t.dir });
  const img = await BuiltImage.build(spec, 'arm64 host', { hostArchitecture: 'arm64' });
  const config = JSON.parse(
    (
      await img.blob({ digest: img.configDigest, size: 0, mediaType: '' }).then(async (s) => {
        const chunks: Buffer[] = [];
        for await (const c of s) chunks.push(c as Buffer);
        return Buffer.concat(chunks);
      })
    ).toString(),
  );
  assert.equal(config.architecture, 'arm64');
  // The CLI passes this host's.
  const b = await buildTo(t.dir, { copyToRoot: [t.env] });
  assert.equal(b.config.architecture, hostArchitecture(process.arch));
  // created stays the Unix epoch (documented in docs/nix-parity.md), not Go's zero time.
  assert.equal(b.config.created, '1970-01-01T00:00:00Z');
});

test('initializeNixDatabase: nix-store --verify --check-contents inside the unpacked image accepts it; nixUid/nixGid own /nix', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lading-nixdb-'));
  const salt = Math.random().toString(36).slice(2);
  await writeFile(
    join(dir, 'paths.nix'),
    `let
      dep = derivation { name = "lading-db-dep"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo dep-${salt} > $out" ]; };
    in derivation {
      name = "lading-db-top"; system = builtins.currentSystem; builder = "/bin/sh";
      args = [ "-c" "/bin/mkdir $out && echo \${dep} > $out/ref && echo hi > $out/x" ];
    }`,
  );
  const top = (await run('nix-build', ['--no-out-link', join(dir, 'paths.nix')], { env: nixEnv() })).stdout
    .toString()
    .trim();
  const q = async (...args: string[]) =>
    (await run('nix-store', args, { env: nixEnv() })).stdout.toString().trim().split('\n').filter(Boolean);
  const closure = await q('-qR', top);
  const graph = await Promise.all(
    closure.map(async (p) => ({ path: p, references: await q('-q', '--references', p) })),
  );
  const dep = closure.find((p) => p !== top)!;
  const b = await buildTo(dir, {
    closureGraph: graph,
    layers: [{ paths: [top] }],
    initializeNixDatabase: true,
    nixUid: 1000,
    nixGid: 100,
  });
  const bundle = join(dir, 'bundle');
  await run('umoci', ['unpack', '--image', `${b.out}:t`, bundle]);
  const rootfs = join(bundle, 'rootfs');
  const verify = await run('nix-store', ['--store', rootfs, '--verify', '--check-contents'], {
    env: nixEnv(),
    allowFail: true,
  });
  assert.equal(verify.code, 0, verify.stderr);
  assert.doesNotMatch(verify.stderr, /modified|disappeared|not valid|error/i);
  assert.deepEqual(await q('--store', rootfs, '-q', '--references', top), [dep]);
  assert.deepEqual((await q('--store', rootfs, '-qR', top)).sort(), closure.sort());
  const owner = async (p: string) =>
    (await run('stat', ['-c', '%u:%g', join(rootfs, p)])).stdout.toString().trim();
  assert.equal(await owner('nix/store'), '1000:100');
  assert.equal(await owner('nix/var/nix/db/db.sqlite'), '1000:100');
  // A changed file is caught by the same check: the registered hashes are the real ones.
  await writeFile(join(rootfs, top.slice(1), 'x'), 'changed\n');
  const tampered = await run('nix-store', ['--store', rootfs, '--verify', '--check-contents'], {
    env: nixEnv(),
    allowFail: true,
  });
  assert.match(tampered.stderr, /was modified/);
});
