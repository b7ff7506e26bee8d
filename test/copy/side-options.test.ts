import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type BuiltLayout, buildLayout, pushLayout, smallImage } from '../helpers/images.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';

// Two private registries with different users, as between a company registry and a cloud one.
const ALICE = 'alice:wonderland-Secret-1';
const CAROL = 'carol:looking-Glass-3';
let a: TestRegistry;
let b: TestRegistry;
let tls: TestRegistry;
let image: BuiltLayout;
const env = { HOME: '/nonexistent', PATH: process.env.PATH };

before(async () => {
  [a, b, tls] = await Promise.all([
    startRegistry({ auth: 'basic', users: { alice: 'wonderland-Secret-1' } }),
    startRegistry({ auth: 'basic', users: { carol: 'looking-Glass-3' } }),
    startRegistry({ auth: 'none', tls: true }),
  ]);
  image = await buildLayout(smallImage('sides'));
  await pushLayout(image, a, 'team/app:1', { creds: ALICE });
});
after(() => Promise.all([a.stop(), b.stop(), tls.stop()]));

async function digestAt(loc: string, creds?: string): Promise<string> {
  const args = ['inspect', '--tls-verify=false', ...(creds ? ['--creds', creds] : []), loc];
  return JSON.parse((await run('skopeo', args)).stdout.toString()).Digest as string;
}

test('--src-creds and --dest-creds: each registry gets its own credentials, and no output shows them', async () => {
  const r = await runCli(
    [
      'copy',
      '--src-creds',
      ALICE,
      '--dest-creds',
      CAROL,
      `docker://${a.host}/team/app:1`,
      `docker://${b.host}/mirror/app:1`,
    ],
    { env },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.toString().trim(), image.digest);
  assert.equal(await digestAt(`docker://${b.host}/mirror/app:1`, CAROL), image.digest);
  for (const secret of ['wonderland-Secret-1', 'looking-Glass-3'])
    assert.ok(!r.stderr.includes(secret) && !r.stdout.includes(secret));
});

test('one --creds for both fails at the destination, clearly, and pushes nothing', async () => {
  const r = await runCli(
    ['copy', '--creds', ALICE, `docker://${a.host}/team/app:1`, `docker://${b.host}/wrong/app:1`],
    {
      env,
    },
  );
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, new RegExp(b.host.replace(/[.]/g, '\\.')));
  assert.ok(!r.stderr.includes('wonderland-Secret-1'));
  const tags = await run(
    'skopeo',
    ['list-tags', '--tls-verify=false', '--creds', CAROL, `docker://${b.host}/wrong/app`],
    {
      allowFail: true,
    },
  );
  assert.notEqual(tags.code, 0, 'the repository was not created');
});

test('--dest-tls-verify=false applies to the destination only', async () => {
  const dst = `docker://${tls.host}/sides/app:1`;
  const strict = await runCli(
    ['copy', '--retry-times', '0', '--src-creds', ALICE, `docker://${a.host}/team/app:1`, dst],
    { env },
  );
  assert.notEqual(strict.code, 0, 'a self-signed certificate is refused by default');
  assert.match(strict.stderr, /certificate|self.signed/i);
  const relaxed = await runCli(
    ['copy', '--src-creds', ALICE, '--dest-tls-verify=false', `docker://${a.host}/team/app:1`, dst],
    { env },
  );
  assert.equal(relaxed.code, 0, relaxed.stderr);
  assert.equal(await digestAt(dst), image.digest);
});
