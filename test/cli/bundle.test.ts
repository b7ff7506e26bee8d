import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { run } from '../helpers/bins.ts';
import { type BuiltLayout, buildLayout, pushLayout, smallImage } from '../helpers/images.ts';
import { nix } from '../helpers/nix.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

// The package as `npm install` puts it: bin/lading and the bundled dist/cli.mjs, no sources and no
// node_modules (the bundle carries its dependencies).
const root = join(import.meta.dirname, '..', '..');
const INSTALLED_VERSION = '9.8.7-installed';
let pkg: string;
let reg: TestRegistry;
let small: BuiltLayout;

before(async () => {
  pkg = await mkdtemp(join(tmpdir(), 'lading-pkg-'));
  await mkdir(join(pkg, 'bin'));
  await copyFile(join(root, 'bin', 'lading'), join(pkg, 'bin', 'lading'));
  // Another version than the checkout's: --version must read the installed package.json.
  const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string };
  await writeFile(join(pkg, 'package.json'), JSON.stringify({ ...manifest, version: INSTALLED_VERSION }));
  await run(process.execPath, [join(root, 'scripts', 'bundle.ts'), join(pkg, 'dist', 'cli.mjs')]);
  reg = await sharedRegistry('none');
  small = await buildLayout(smallImage('bundle'), 'v1');
  await pushLayout(small, reg, 'bundle/small:v1');
});
after(() => stopSharedRegistries());

const lading = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  run(process.execPath, [join(pkg, 'bin', 'lading'), ...args], {
    env: { PATH: process.env.PATH, HOME: pkg, ...env },
    allowFail: true,
  });

test('the installed package is bin/lading and one bundled file, no sources, no node_modules', async () => {
  assert.deepEqual((await readdir(pkg)).sort(), ['bin', 'dist', 'package.json']);
  assert.deepEqual(await readdir(join(pkg, 'dist')), ['cli.mjs']);
  const v = await lading(['--version']);
  assert.equal(v.code, 0, v.stderr);
  assert.equal(v.stdout.toString().trim(), INSTALLED_VERSION);
});

test('the bundled CLI pins an image with the hash nix-hash gives skopeo’s docker-archive', async () => {
  const work = await mkdtemp(join(tmpdir(), 'lading-pkg-run-'));
  const r = await lading([
    'prefetch',
    '--json',
    '--quiet',
    '--cache-dir',
    join(work, 'cache'),
    `${reg.host}/bundle/small`,
    'v1',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const ours = JSON.parse(r.stdout.toString()) as { hash: string; imageDigest: string };
  assert.equal(ours.imageDigest, small.digest);
  const archive = join(work, 'a.tar');
  await run(
    'skopeo',
    [
      '--insecure-policy',
      'copy',
      '-q',
      '--src-tls-verify=false',
      `docker://${reg.host}/bundle/small@${small.digest}`,
      `docker-archive:${archive}:${reg.host}/bundle/small:v1`,
    ],
    { env: { ...process.env, HOME: work } },
  );
  const flat = await nix('nix-hash', ['--flat', '--type', 'sha256', archive]);
  assert.equal(Buffer.from(ours.hash.replace(/^sha256-/, ''), 'base64').toString('hex'), flat);
});

test('errors from the bundle are the same clear one-liners, with the same exit status', async () => {
  const r = await lading(['inspect', 'not a reference']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /^lading: error: .*not a reference/m);
  assert.doesNotMatch(r.stderr, /internal error|at .*cli\.mjs/);
});
