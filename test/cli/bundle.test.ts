import assert from 'node:assert/strict';
import { copyFile, cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { run } from '../helpers/bins.ts';
import { type BuiltLayout, buildLayout, pushLayout, smallImage } from '../helpers/images.ts';
import { skopeoArchiveHash } from '../helpers/nix.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

// The package as `npm install` puts it: bin/lading and the bundled dist/cli.mjs with its chunks, no
// sources and no node_modules (the bundle carries its dependencies).
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

test('the installed package is bin/lading, the bundled entry and its chunks, no sources, no node_modules', async () => {
  assert.deepEqual((await readdir(pkg)).sort(), ['bin', 'dist', 'package.json']);
  assert.deepEqual((await readdir(join(pkg, 'dist'))).sort(), ['chunks', 'cli.mjs']);
  const chunks = await readdir(join(pkg, 'dist', 'chunks'));
  assert.deepEqual(
    chunks.filter((f) => !f.endsWith('.mjs')),
    [],
  );
  // One chunk per command (named after its source file), imported when that command runs.
  for (const command of ['prefetch', 'copy', 'inspect', 'unpack', 'nix-builder'])
    assert.ok(
      chunks.some((f) => f.startsWith(`${command}-`)),
      `${command}: ${chunks.join(' ')}`,
    );
  const v = await lading(['--version']);
  assert.equal(v.code, 0, v.stderr);
  assert.equal(v.stdout.toString().trim(), INSTALLED_VERSION);
});

/**
 * What an installed `lading ARGS` run loads: the built-in modules (process.moduleLoadList at exit),
 * and whether it made process.stdin (a stream, which a command that reads no input never needs).
 */
async function startupOf(args: string[]): Promise<{ code: number; builtins: string[]; stdin: boolean }> {
  const hook = `
    const desc = Object.getOwnPropertyDescriptor(process, 'stdin');
    let stdin = false;
    Object.defineProperty(process, 'stdin', { ...desc, get() { stdin = true; return desc.get.call(process); } });
    process.on('exit', () => process.getBuiltinModule('node:fs').writeSync(2, '\\nLOADED ' + JSON.stringify({ builtins: process.moduleLoadList, stdin }) + '\\n'));`;
  const r = await run(
    process.execPath,
    ['--import', `data:text/javascript,${encodeURIComponent(hook)}`, join(pkg, 'bin', 'lading'), ...args],
    { env: { PATH: process.env.PATH, HOME: pkg }, allowFail: true },
  );
  const line = r.stderr.split('\n').find((l) => l.startsWith('LOADED '));
  assert.ok(line, r.stderr);
  return {
    code: r.code,
    ...(JSON.parse(line.slice('LOADED '.length)) as { builtins: string[]; stdin: boolean }),
  };
}

test('the installed lading --version loads none of zlib, crypto, http, tls, sqlite, child_process', async () => {
  const { code, builtins } = await startupOf(['--version']);
  assert.equal(code, 0);
  assert.ok(builtins.includes('NativeModule fs'), 'the list is read');
  // crypto: src/util imports it; child_process: commander requires it (for subcommands that are
  // programs, which lading has none of). The bundle loads a built-in when it is first used.
  for (const m of ['zlib', 'crypto', 'http', 'https', 'tls', 'sqlite', 'child_process'])
    assert.ok(!builtins.includes(`NativeModule ${m}`), `${m} was loaded`);
});

test('the installed lading --version neither starts the memory watch nor builds stdin', async () => {
  const { code, builtins, stdin } = await startupOf(['--version']);
  assert.equal(code, 0);
  // node:v8 is keepBufferMemoryLow's.
  assert.ok(!builtins.includes('NativeModule v8'), 'v8 was loaded');
  assert.equal(stdin, false, 'process.stdin was made');
  // The check sees it when a command reads its input (here an empty password: exit status 2).
  const login = await startupOf(['login', '127.0.0.1:1', '-u', 'me', '--password-stdin']);
  assert.deepEqual([login.code, login.stdin], [2, true]);
});

test('the installed lading leaves no compiled code in the shared temp directory', async () => {
  // Node's compile cache defaults to os.tmpdir()/node-compile-cache, which every user can write:
  // code read back from there would run as this user. lading does not enable it.
  const tmp = await mkdtemp(join(tmpdir(), 'lading-ccache-'));
  try {
    for (const args of [['--version'], ['digest', `${reg.host}/bundle/small:v1`]]) {
      const { code } = await lading(args, { TMPDIR: tmp });
      assert.equal(code, 0);
    }
    assert.deepEqual(await readdir(tmp), []);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

test('a command whose chunk is missing fails with a clear error; the others still run', async () => {
  const broken = await mkdtemp(join(tmpdir(), 'lading-pkg-broken-'));
  await cp(pkg, broken, { recursive: true });
  const chunk = (await readdir(join(broken, 'dist', 'chunks'))).find((f) => f.startsWith('prefetch-'));
  assert.ok(chunk);
  await rm(join(broken, 'dist', 'chunks', chunk));
  const env = { PATH: process.env.PATH, HOME: broken };
  const bin = join(broken, 'bin', 'lading');
  const r = await run(process.execPath, [bin, 'prefetch', `${reg.host}/bundle/small`, 'v1'], {
    env,
    allowFail: true,
  });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^lading: error: the prefetch command could not be loaded, .*reinstall lading/);
  assert.ok(r.stderr.includes(chunk), r.stderr);
  assert.doesNotMatch(r.stderr, /internal error|^\s+at /m);
  assert.equal(r.stdout.toString(), '');
  const d = await run(process.execPath, [bin, 'digest', `${reg.host}/bundle/small:v1`], {
    env,
    allowFail: true,
  });
  assert.equal(d.code, 0, d.stderr);
  assert.equal(d.stdout.toString().trim(), small.digest);
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
  const flat = await skopeoArchiveHash(
    `docker://${reg.host}/bundle/small@${small.digest}`,
    `${reg.host}/bundle/small:v1`,
    {
      hex: true,
    },
  );
  assert.equal(Buffer.from(ours.hash.replace(/^sha256-/, ''), 'base64').toString('hex'), flat);
});

test('errors from the bundle are the same clear one-liners, with the same exit status', async () => {
  const r = await lading(['inspect', 'not a reference']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /^lading: error: .*not a reference/m);
  assert.doesNotMatch(r.stderr, /internal error|at .*cli\.mjs/);
});
