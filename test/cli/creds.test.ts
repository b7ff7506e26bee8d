import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { removeAtExit } from '../helpers/bins.ts';
import { LADING_BIN, runCli } from '../helpers/cli.ts';
import { buildLayout, pushLayoutRaw, smallImage } from '../helpers/images.ts';
import { runOnPty } from '../helpers/pty.ts';
import {
  DEFAULT_USERS,
  sharedRegistry,
  stopSharedRegistries,
  type TestRegistry,
} from '../helpers/registry.ts';

let reg: TestRegistry;
let digest: string;

before(async () => {
  reg = await sharedRegistry('basic');
  digest = await pushLayoutRaw(await buildLayout(smallImage('creds'), 'v1'), reg, 'creds/app', 'v1');
});
after(() => stopSharedRegistries());

test('--creds USER on a terminal asks for the password once, without echoing it', async () => {
  const password = DEFAULT_USERS.alice;
  const r = await runOnPty(
    [
      process.execPath,
      LADING_BIN,
      'digest',
      '--tls-verify=false',
      '--creds',
      'alice',
      `${reg.host}/creds/app:v1`,
    ],
    { answers: [{ when: 'Password for alice', type: `${password}\r` }] },
  );
  assert.equal(r.code, 0, r.output);
  assert.ok(r.output.includes(`Password for alice at ${reg.host}: `), r.output);
  assert.ok(!r.output.includes(password), `the password was echoed: ${r.output}`);
  assert.equal(r.output.split('Password for').length - 1, 1, 'asked once');
  assert.ok(r.output.includes(digest), r.output);
});

test('the password prompt is not drawn over by the progress display while it waits', async () => {
  const dest = await mkdtemp(join(tmpdir(), 'lading-creds-'));
  removeAtExit(dest);
  const prompt = `Password for alice at ${reg.host}: `;
  const r = await runOnPty(
    [
      process.execPath,
      LADING_BIN,
      'copy',
      '--tls-verify=false',
      '--creds',
      'alice',
      `docker://${reg.host}/creds/app:v1`,
      `oci:${join(dest, 'layout')}:1`,
    ],
    { answers: [{ when: 'Password for alice', type: `${DEFAULT_USERS.alice}\r`, afterMs: 1000 }] },
  );
  assert.equal(r.code, 0, r.output);
  const after = r.output.slice(r.output.indexOf(prompt) + prompt.length);
  // What follows the prompt while the user types: readline's cursor column, then the line end
  // (no redraw over it).
  assert.match(after, /^(\x1b\[\d+G)?\r?\n/, JSON.stringify(after.slice(0, 80)));
});

test('--creds USER with a wrong password typed is an authentication failure (status 3)', async () => {
  const r = await runOnPty(
    [
      process.execPath,
      LADING_BIN,
      'digest',
      '--tls-verify=false',
      '--creds',
      'alice',
      `${reg.host}/creds/app:v1`,
    ],
    { answers: [{ when: 'Password for alice', type: 'not-it\r' }] },
  );
  assert.equal(r.code, 3, r.output);
});

test('--creds USER without a terminal says how to give the password, before any request', async () => {
  const r = await runCli(['digest', '--tls-verify=false', '--creds', 'alice', `${reg.host}/creds/app:v1`]);
  assert.equal(r.code, 2);
  assert.match(
    r.stderr,
    /^lading: error: --creds alice has no password, and there is no terminal to ask for it on: give --creds USER:PASSWORD, or store it once with lading login REGISTRY -u alice --password-stdin\n$/,
  );
});

test('--creds USER:PASSWORD works as before; --help describes the prompt', async () => {
  const r = await runCli([
    'digest',
    '--tls-verify=false',
    '--creds',
    `alice:${DEFAULT_USERS.alice}`,
    `${reg.host}/creds/app:v1`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.toString().trim(), digest);
  const help = (await runCli(['digest', '--help'])).stdout.toString().replace(/\s+/g, ' ');
  const line =
    '--creds <user[:password]> credentials for the registry (without :PASSWORD, asked for on a terminal)';
  assert.ok(help.includes(line), help);
});

test('tags takes docker://REPO as blob and digest do', async () => {
  const creds = `alice:${DEFAULT_USERS.alice}`;
  const plain = await runCli(['tags', '--tls-verify=false', '--creds', creds, `${reg.host}/creds/app`]);
  const prefixed = await runCli([
    'tags',
    '--tls-verify=false',
    '--creds',
    creds,
    `docker://${reg.host}/creds/app`,
  ]);
  assert.equal(prefixed.code, 0, prefixed.stderr);
  assert.equal(prefixed.stdout.toString(), 'v1\n');
  assert.deepEqual(prefixed.stdout, plain.stdout);
});
