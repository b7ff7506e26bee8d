import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { test } from 'node:test';
import { commandsNeeded } from '../../src/cli/command-loader.ts';
import { main } from '../../src/cli/main.ts';
import { LADING_BIN, runCli } from '../helpers/cli.ts';

// Each command's module is imported only when that command runs (src/cli/command-loader.ts).

const ALL = [
  'inspect',
  'digest',
  'tags',
  'blob',
  'login',
  'logout',
  'prefetch',
  'lock',
  'copy',
  'pull',
  'build',
  'index',
  'unpack',
  'extract',
  'export',
  'cache',
  'nix-builder',
];

test('the command an argument list needs, read as commander reads it', () => {
  const cases: [string[], string[]][] = [
    [['--version'], []],
    [['-V'], []],
    [['-q', '--version'], []],
    [['-qV'], []],
    [['prefetch', 'alpine', '3'], ['prefetch']],
    [['-q', 'prefetch', '--version'], ['prefetch']],
    [['--quiet', 'cache', 'ls'], ['cache']],
    [['pull', 'alpine'], ['pull']],
    [['--', 'tags', 'alpine'], ['tags']],
    // The help lists every command; an unknown one is told the nearest; an option lading does
    // not know stops commander from reading a command at all.
    [[], ALL],
    [['--help'], ALL],
    [['help', 'prefetch'], ALL],
    [['prefetchh'], ALL],
    [['--cache-dir', 'x', 'prefetch'], ALL],
    [['-qx', 'prefetch'], ALL],
  ];
  for (const [argv, want] of cases) assert.deepEqual(commandsNeeded(argv), want, argv.join(' '));
});

test('a command loaded alone has the same help as in the full list', async () => {
  for (const name of ALL) {
    const alone = await runCli([name, '--help']);
    const full = await runCli(['help', name]);
    assert.equal(alone.code, 0, alone.stderr);
    assert.equal(full.code, 0, full.stderr);
    assert.equal(alone.stdout.toString(), full.stdout.toString(), name);
    assert.match(alone.stdout.toString(), new RegExp(`^Usage: lading ${name} `));
  }
});

test('the full help lists every command but the hidden nix-builder', async () => {
  const help = (await runCli(['--help'])).stdout.toString();
  for (const name of ALL.filter((n) => n !== 'nix-builder'))
    assert.match(help, new RegExp(`^  ${name}\\b`, 'm'), name);
  assert.doesNotMatch(help, /nix-builder/);
});

test('beforeAction runs when a command does its work, not for --version, --help or bad usage', async () => {
  const io = {
    out: new PassThrough(),
    err: new PassThrough(),
    stdin: Readable.from([]),
    env: { HOME: '/nonexistent-home', PATH: process.env.PATH },
    cwd: process.cwd(),
    errIsTty: false,
    stdinIsTty: false,
  };
  io.out.resume();
  io.err.resume();
  const cache = await mkdtemp(join(tmpdir(), 'lading-before-action-'));
  const runs: string[] = [];
  for (const argv of [
    ['--version'],
    ['cache', '--help'],
    ['cache', 'ls', '--bogus'],
    ['cache', 'ls', '--cache-dir', cache],
  ]) {
    let called = 0;
    const code = await main(argv, io, { beforeAction: () => called++ });
    runs.push(`${argv.join(' ')}: ${code} ${called}`);
  }
  assert.deepEqual(runs, [
    '--version: 0 0',
    'cache --help: 0 0',
    'cache ls --bogus: 2 0',
    `cache ls --cache-dir ${cache}: 0 1`,
  ]);
});

/**
 * The source modules and built-ins a run of bin/lading (from the sources) loads: module.registerHooks
 * sees every import, process.moduleLoadList every built-in.
 */
async function loaded(args: string[]): Promise<{ modules: string[]; builtins: string[] }> {
  const hook = `
    import { registerHooks } from 'node:module';
    import { writeSync } from 'node:fs';
    const seen = [];
    registerHooks({ load(url, context, next) { seen.push(url); return next(url, context); } });
    process.on('exit', () => writeSync(2, '\\nLOADED ' + JSON.stringify({ modules: seen, builtins: process.moduleLoadList }) + '\\n'));
  `;
  const child = spawn(
    process.execPath,
    ['--import', `data:text/javascript,${encodeURIComponent(hook)}`, LADING_BIN, ...args],
    { env: { HOME: '/nonexistent-home', PATH: process.env.PATH }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  child.stderr.on('data', (c: Buffer) => {
    err += c.toString();
  });
  await new Promise((resolve) => child.on('close', resolve));
  const line = err.split('\n').find((l) => l.startsWith('LOADED '));
  assert.ok(line, err);
  return JSON.parse(line.slice('LOADED '.length)) as { modules: string[]; builtins: string[] };
}

const commandModules = (modules: string[]): string[] =>
  modules
    .filter((u) => u.includes('/src/cli/commands/'))
    .map((u) => u.replace(/.*\/src\/cli\/commands\//, ''));

test('lading --version loads no command, nor zlib, http, tls or sqlite', async () => {
  const { modules, builtins } = await loaded(['--version']);
  assert.ok(
    modules.some((u) => u.endsWith('/src/cli/main.ts')),
    'the hook saw the sources load',
  );
  assert.deepEqual(commandModules(modules), []);
  // (crypto is loaded: src/util imports it; the bundle loads built-ins on first use, bundle.test.ts)
  for (const m of ['zlib', 'http', 'https', 'tls', 'sqlite'])
    assert.ok(!builtins.includes(`NativeModule ${m}`), `${m} was loaded`);
});

test('a command loads its own module and no other command', async () => {
  const { modules } = await loaded(['tags', '--help']);
  assert.deepEqual(commandModules(modules), ['tags.ts']);
});
