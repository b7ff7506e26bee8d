import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { buildLayout, pushLayoutRaw, smallImage } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

// Mistakes commander itself catches, and a few lading catches before it starts: every one is a
// `lading: error:` line that says what to do, with exit status 2.

let reg: TestRegistry;
let digest: string;

before(async () => {
  reg = await sharedRegistry('none');
  digest = await pushLayoutRaw(await buildLayout(smallImage('usage'), 'v1'), reg, 'usage/app', 'v1');
});
after(() => stopSharedRegistries());

for (const [what, args, message, help] of [
  ['an unknown option', ['--bogus'], /^lading: error: unknown option '--bogus'\n/, "'lading --help'"],
  [
    'an unknown command',
    ['frob'],
    /^lading: error: unknown command 'frob'\nlading: did you mean blob\?\n/,
    "'lading --help'",
  ],
  [
    'an option after -- (an operand there): no suggestion made from a command name cut short',
    ['--', '--help'],
    /^lading: error: unknown command '--help'\nlading: run 'lading --help'/,
    "'lading --help'",
  ],
  [
    '--platform twice on a command that takes one platform (it kept the last one silently)',
    ['unpack', '--platform', 'linux/amd64', '--platform', 'linux/arm64', 'a', 'b'],
    /--platform was given twice \(linux\/amd64, linux\/arm64\): this command takes one\n/,
    "'lading unpack --help'",
  ],
  [
    'a control character in a rejected argument is shown escaped',
    ['unpack', '--platform', 'x\u001b]0;title\u0007', '--platform', 'y', 'a', 'b'],
    /given twice \(x\\u001b\]0;title\\u0007, y\)/,
    "'lading unpack --help'",
  ],
  [
    '--platform twice on prefetch',
    ['prefetch', '--platform', 'linux/amd64', '--platform', 'linux/arm64', 'alpine'],
    /--platform was given twice \(linux\/amd64, linux\/arm64\): this command takes one\n/,
    "'lading prefetch --help'",
  ],
  [
    'a missing argument',
    ['copy', 'x'],
    /^lading: error: missing required argument 'destination'\n/,
    "'lading copy --help'",
  ],
  [
    'a bad choice',
    ['copy', '--format', 'x', 'a', 'b'],
    /^lading: error: option '--format <format>' argument 'x' is invalid/,
    "'lading copy --help'",
  ],
  [
    'a nested command',
    ['cache', 'ls', '--x'],
    /^lading: error: unknown option '--x'\n/,
    "'lading cache ls --help'",
  ],
] as const) {
  test(`${what}: lading's prefix, the command's help and the exit status table`, async () => {
    const r = await runCli([...args]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, message);
    assert.ok(r.stderr.includes(`run ${help} for usage`), r.stderr);
    assert.match(r.stderr, /exit status 2: bad usage; 'lading --help' lists every exit status/);
    assert.doesNotMatch(r.stderr, /^error:/m, 'no line without the lading: prefix');
  });
}

test('lading --help lists the exit statuses', async () => {
  const r = await runCli(['--help']);
  assert.equal(r.code, 0);
  const text = r.stdout.toString();
  assert.match(text, /Exit status:/);
  for (const n of [0, 1, 2, 3, 4, 5, 6, 7]) assert.match(text, new RegExp(`\\b${n}  \\S`), `status ${n}`);
});

test('a bare --tls-verify means true and leaves the image alone; --tls-verify=false works', async () => {
  const bare = await runCli(['digest', '--tls-verify', `${reg.host}/usage/app:v1`]);
  assert.equal(bare.stderr, '');
  assert.equal(bare.code, 0);
  assert.equal(bare.stdout.toString().trim(), digest);
  const off = await runCli(['digest', '--tls-verify=false', `${reg.host}/usage/app:v1`]);
  assert.equal(off.code, 0, off.stderr);
  assert.equal(off.stdout.toString().trim(), digest);
  // The per-side flags of copy follow the same rule.
  const side = await runCli(['copy', '--src-tls-verify', `${reg.host}/usage/app:v1`]);
  assert.match(side.stderr, /missing required argument 'destination'/);
});

test('--tls-verify false (a space, no =) is refused with the spelling that works', async () => {
  const r = await runCli(['digest', '--tls-verify', 'false', `${reg.host}/usage/app:v1`]);
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    'lading: error: write --tls-verify=false (with "="): a bare --tls-verify means true and takes no value\n',
  );
});

test('pull of a local transport says pull takes a registry reference and suggests copy', async () => {
  for (const src of ['oci:cp', 'oci:/tmp/layout:1', 'docker-archive:img.tar', 'dir:/tmp/x']) {
    const r = await runCli(['pull', src, 'oci:/tmp/lading-never-written']);
    assert.equal(r.code, 2, src);
    assert.match(r.stderr, /^lading: error: pull takes a registry reference/, src);
    assert.ok(r.stderr.includes(`run lading copy ${src} DESTINATION`), r.stderr);
  }
});
