import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseReference } from '../../src/reference/index.ts';
import { RegistryClient } from '../../src/registry/index.ts';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type BuiltLayout, buildLayout, multiArchImage, pushLayout, smallImage } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
let anon: TestRegistry;
let basic: TestRegistry;
let token: TestRegistry;
let small: BuiltLayout;
let multi: BuiltLayout;
const bin = join(import.meta.dirname, '..', '..', 'bin', 'lading');

async function skopeoDigest(ref: string, creds?: string): Promise<{ digest: string; raw: Buffer }> {
  const base = ['--tls-verify=false', ...(creds ? ['--creds', creds] : [])];
  const j = JSON.parse((await run('skopeo', ['inspect', ...base, `docker://${ref}`])).stdout.toString()) as {
    Digest: string;
  };
  const raw = (await run('skopeo', ['inspect', '--raw', ...base, `docker://${ref}`])).stdout;
  return { digest: j.Digest, raw };
}

function secretsOf(r: TestRegistry): string[] {
  return Object.values(r.users);
}

function assertNoSecrets(text: string, r: TestRegistry): void {
  for (const s of secretsOf(r)) assert.ok(!text.includes(s), 'a password appeared in output');
  assert.ok(!/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/.test(text), 'a JWT appeared in output');
  assert.ok(!/Basic [A-Za-z0-9+/=]{8,}/.test(text), 'a Basic header appeared in output');
}

before(async () => {
  [anon, basic, token] = await Promise.all([
    sharedRegistry('none'),
    sharedRegistry('basic'),
    sharedRegistry('token'),
  ]);
  small = await buildLayout(smallImage());
  multi = await buildLayout(multiArchImage());
  await Promise.all([
    pushLayout(small, anon, 'app:oci'),
    pushLayout(small, anon, 'app:v2s2', { format: 'v2s2' }),
    pushLayout(multi, anon, 'multi:oci'),
    pushLayout(multi, anon, 'multi:v2s2', { format: 'v2s2' }),
    pushLayout(small, basic, 'private/app:1'),
    pushLayout(small, token, 'private/app:1'),
    pushLayout(multi, token, 'public/multi:1'),
  ]);
});
after(stopSharedRegistries);

describe('manifests and digests match skopeo', () => {
  for (const tag of ['app:oci', 'app:v2s2', 'multi:oci', 'multi:v2s2']) {
    test(`inspect --raw ${tag} is byte-identical and hashes to skopeo's digest`, async () => {
      const ref = `${anon.host}/${tag}`;
      const ours = await runCli(['inspect', '--raw', ref]);
      assert.equal(ours.code, 0, ours.stderr);
      const theirs = await skopeoDigest(ref);
      assert.ok(ours.stdout.equals(theirs.raw));
      assert.equal(sha(ours.stdout), theirs.digest);
      const d = await runCli(['digest', ref]);
      assert.equal(d.stdout.toString().trim(), theirs.digest);
    });
  }

  test('bin/lading inspect --raw REF | sha256sum equals the digest skopeo reports (spawned, from another directory)', async () => {
    const ref = `${anon.host}/multi:v2s2`;
    const r = spawnSync('sh', ['-c', `"${bin}" inspect --raw ${ref} | sha256sum`], {
      cwd: tmpdir(),
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(`sha256:${r.stdout.split(' ')[0]}`, (await skopeoDigest(ref)).digest);
  });

  test('--config prints the selected platform config exactly; --json reports index and instance digests', async () => {
    const ref = `${anon.host}/multi:oci`;
    const arm = multi.images[1]!;
    const cfg = await runCli(['inspect', '--config', '--platform', 'linux/arm64', ref]);
    assert.ok(cfg.stdout.equals(arm.config));
    const j = JSON.parse(
      (await runCli(['inspect', '--json', '--platform', 'linux/arm64/v8', ref])).stdout.toString(),
    );
    assert.equal(j.digest, multi.digest);
    assert.equal(j.instance.digest, arm.manifestDigest);
    assert.deepEqual(j.platforms, ['linux/amd64', 'linux/arm64/v8', 'linux/arm/v7']);
  });
});

describe('platforms', () => {
  test('digest --platform prints the index digest then the instance digest (aliases understood)', async () => {
    const r = await runCli(['digest', '--platform', 'linux/aarch64', `${anon.host}/multi:oci`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.toString().trim().split('\n'), [multi.digest, multi.images[1]!.manifestDigest]);
    const o = await runCli([
      'digest',
      '--override-arch',
      'arm',
      '--override-variant',
      'v7',
      `${anon.host}/multi:oci`,
    ]);
    assert.equal(o.stdout.toString().trim().split('\n')[1], multi.images[2]!.manifestDigest);
  });

  test('an index without the platform is an error listing what it has', async () => {
    const r = await runCli(['inspect', '--platform', 'linux/s390x', `${anon.host}/multi:v2s2`]);
    assert.equal(r.code, 4);
    assert.match(
      r.stderr,
      /no image for platform linux\/s390x .*linux\/amd64, linux\/arm64\/v8, linux\/arm\/v7/,
    );
  });

  test('a single-platform image of another platform than asked is an error', async () => {
    const r = await runCli(['inspect', '--platform', 'linux/arm64', `${anon.host}/app:oci`]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /single-platform image for linux\/amd64, not linux\/arm64/);
  });
});

describe('basic auth (htpasswd)', () => {
  const ref = () => `${basic.host}/private/app:1`;
  const [user, pass] = ['alice', 'wonderland-Secret-1'];

  test('refused without credentials, with a clear message and exit 3', async () => {
    const r = await runCli(['inspect', ref()]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /unauthorized/);
  });

  test('--creds works; a wrong password is "rejected"; no secret in any output, even with --debug', async () => {
    const ok = await runCli(['inspect', '--debug', '--creds', `${user}:${pass}`, ref()]);
    assert.equal(ok.code, 0, ok.stderr);
    assertNoSecrets(ok.stdout.toString() + ok.stderr, basic);
    const bad = await runCli(['inspect', '--debug', '--creds', `${user}:wrong-${pass}`, ref()]);
    assert.equal(bad.code, 3);
    assert.match(bad.stderr, /rejected the credentials/);
    assertNoSecrets(bad.stderr.replace(`wrong-${pass}`, ''), basic);
    assert.ok(!bad.stderr.includes(`wrong-${pass}`));
  });

  test('credentials from auth files in every location, host/namespace keys, longest match', async () => {
    const home = await mkdtemp(join(tmpdir(), 'lading-home-'));
    const auth = (u: string, p: string) => Buffer.from(`${u}:${p}`).toString('base64');
    // Containers auth.json under XDG_CONFIG_HOME with a wrong host-wide key and a right namespace key.
    await mkdir(join(home, '.config', 'containers'), { recursive: true });
    await writeFile(
      join(home, '.config', 'containers', 'auth.json'),
      JSON.stringify({
        auths: {
          [basic.host]: { auth: auth(user, 'nope') },
          [`${basic.host}/private`]: { auth: auth(user, pass) },
        },
      }),
    );
    const env = { HOME: home, PATH: process.env.PATH };
    assert.equal((await runCli(['inspect', ref()], { env })).code, 0);
    // --authfile is used alone.
    const alt = join(home, 'alt.json');
    await writeFile(alt, JSON.stringify({ auths: { [`http://${basic.host}`]: { auth: auth(user, pass) } } }));
    assert.equal(
      (
        await runCli(['inspect', '--authfile', alt, ref()], {
          env: { PATH: process.env.PATH, HOME: '/nonexistent' },
        })
      ).code,
      0,
    );
    assert.equal(
      (
        await runCli(['inspect', ref()], {
          env: { PATH: process.env.PATH, HOME: '/nonexistent', REGISTRY_AUTH_FILE: alt },
        })
      ).code,
      0,
    );
    // Docker's config.json through DOCKER_CONFIG (seed 000's set-up).
    const dc = join(home, 'docker');
    await mkdir(dc);
    await writeFile(
      join(dc, 'config.json'),
      JSON.stringify({ auths: { [basic.host]: { auth: auth(user, pass) } } }),
    );
    assert.equal(
      (
        await runCli(['inspect', ref()], {
          env: { PATH: process.env.PATH, HOME: '/nonexistent', DOCKER_CONFIG: dc },
        })
      ).code,
      0,
    );
    // --no-creds ignores all of it.
    assert.equal((await runCli(['inspect', '--no-creds', ref()], { env })).code, 3);
  });

  test('credential helpers: credHelpers run docker-credential-NAME; a missing helper warns and goes anonymous', async () => {
    const home = await mkdtemp(join(tmpdir(), 'lading-home-'));
    const binDir = join(home, 'bin');
    await mkdir(binDir);
    await writeFile(
      join(binDir, 'docker-credential-lt'),
      `#!/bin/sh\nread url\n[ "$url" = "${basic.host}" ] || { echo "credentials not found in native keychain"; exit 1; }\necho '{"ServerURL":"'$url'","Username":"${user}","Secret":"${pass}"}'\n`,
    );
    await chmod(join(binDir, 'docker-credential-lt'), 0o755);
    const dc = join(home, 'docker');
    await mkdir(dc);
    await writeFile(join(dc, 'config.json'), JSON.stringify({ credHelpers: { [basic.host]: 'lt' } }));
    const env = { HOME: '/nonexistent', DOCKER_CONFIG: dc, PATH: `${binDir}:${process.env.PATH}` };
    const ok = await runCli(['inspect', ref()], { env });
    assert.equal(ok.code, 0, ok.stderr);
    await writeFile(join(dc, 'config.json'), JSON.stringify({ credsStore: 'missing-helper' }));
    const anonPull = await runCli(['inspect', `${anon.host}/app:oci`], { env });
    assert.equal(anonPull.code, 0);
    assert.match(anonPull.stderr, /docker-credential-missing-helper not found/);
  });

  test("hocker's credential file", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lading-cred-'));
    await writeFile(join(dir, 'creds'), `PASSWORD=${pass}\nUSERNAME=${user}\n`);
    assert.equal((await runCli(['inspect', '--credential-file', join(dir, 'creds'), ref()])).code, 0);
    await writeFile(join(dir, 'bad'), `USER=${user}\n`);
    const bad = await runCli(['inspect', '--credential-file', join(dir, 'bad'), ref()]);
    assert.equal(bad.code, 3);
    assert.match(bad.stderr, /line 1/);
  });

  test('login checks the credentials and stores them as podman does; logout removes them', async () => {
    const home = await mkdtemp(join(tmpdir(), 'lading-home-'));
    // XDG_RUNTIME_DIR exists on a real session (podman refuses one that does not).
    await mkdir(join(home, 'run'), { mode: 0o700 });
    const env = { HOME: home, XDG_RUNTIME_DIR: join(home, 'run'), PATH: process.env.PATH };
    const bad = await runCli(['login', basic.host, '-u', user, '--password-stdin'], {
      env,
      stdin: 'wrong\n',
    });
    assert.equal(bad.code, 3);
    assert.equal(existsSync(join(home, 'run', 'containers', 'auth.json')), false);
    const ok = await runCli(['login', basic.host, '-u', user, '--password-stdin'], {
      env,
      stdin: `${pass}\n`,
    });
    assert.equal(ok.code, 0, ok.stderr);
    const file = join(home, 'run', 'containers', 'auth.json');
    const stored = JSON.parse(await readFile(file, 'utf8'));
    assert.equal(Buffer.from(stored.auths[basic.host].auth, 'base64').toString(), `${user}:${pass}`);
    assert.equal((await runCli(['inspect', ref()], { env })).code, 0);
    assert.equal((await runCli(['logout', basic.host], { env })).code, 0);
    assert.equal((await runCli(['inspect', ref()], { env })).code, 3);
  });
});

describe('bearer-token auth', () => {
  test('private repositories are refused anonymously; public ones are served anonymously', async () => {
    const r = await runCli(['inspect', `${token.host}/private/app:1`]);
    assert.equal(r.code, 3);
    const p = await runCli(['digest', `${token.host}/public/multi:1`]);
    assert.equal(p.code, 0, p.stderr);
    assert.equal(p.stdout.toString().trim(), multi.digest);
  });

  test('credentials get a token; tokens are cached per scope', async () => {
    const before = token.tokenServer!.log.length;
    const r = await runCli([
      'inspect',
      '--debug',
      '--creds',
      'alice:wonderland-Secret-1',
      `${token.host}/private/app:1`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assertNoSecrets(r.stdout.toString() + r.stderr, token);
    const requests = token.tokenServer!.log.slice(before);
    assert.ok(requests.every((q) => q.user === 'alice' && q.status === 200));
    // manifest + config blob in one repository: one token, reused.
    assert.equal(requests.length, 1);
  });

  test('--registry-token sends a token as is; identity tokens use the OAuth2 refresh grant', async () => {
    const res = await fetch(
      `${token.tokenServer!.realm}?service=lading-test&scope=repository:private/app:pull`,
      {
        headers: { authorization: `Basic ${Buffer.from('alice:wonderland-Secret-1').toString('base64')}` },
      },
    );
    const t = ((await res.json()) as { token: string }).token;
    assert.equal((await runCli(['digest', '--registry-token', t, `${token.host}/private/app:1`])).code, 0);
    // Get a refresh token through the password grant, store it as identitytoken.
    const form = new URLSearchParams({
      grant_type: 'password',
      username: 'alice',
      password: 'wonderland-Secret-1',
      service: 'lading-test',
      client_id: 'x',
    });
    const rr = (await (await fetch(token.tokenServer!.realm, { method: 'POST', body: form })).json()) as {
      refresh_token: string;
    };
    const dir = await mkdtemp(join(tmpdir(), 'lading-id-'));
    await writeFile(
      join(dir, 'auth.json'),
      JSON.stringify({ auths: { [token.host]: { identitytoken: rr.refresh_token } } }),
    );
    const before = token.tokenServer!.log.length;
    const r = await runCli(['digest', '--authfile', join(dir, 'auth.json'), `${token.host}/private/app:1`]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(
      token.tokenServer!.log.slice(before).some((q) => q.grant === 'refresh_token' && q.user === 'alice'),
    );
  });

  test('login against a token registry', async () => {
    const home = await mkdtemp(join(tmpdir(), 'lading-home-'));
    const env = { HOME: home, PATH: process.env.PATH };
    assert.equal(
      (await runCli(['login', token.host, '-u', 'bob', '--password-stdin'], { env, stdin: 'nope' })).code,
      3,
    );
    const ok = await runCli(['login', token.host, '-u', 'bob', '--password-stdin'], {
      env,
      stdin: 'builder-Secret-2',
    });
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(existsSync(join(home, '.config', 'containers', 'auth.json')));
    assert.equal((await runCli(['inspect', `${token.host}/private/app:1`], { env })).code, 0);
  });
});

describe('tags and blobs', () => {
  test('tags follow Link pagination', async () => {
    for (const t of ['a', 'b', 'c', 'd', 'e']) await pushLayout(small, anon, `paged:${t}`);
    const client = new RegistryClient({ registry: anon.host });
    try {
      assert.deepEqual((await client.listTags('paged', { pageSize: 2 })).sort(), ['a', 'b', 'c', 'd', 'e']);
    } finally {
      await client.close();
    }
    const r = await runCli(['tags', '--json', `${anon.host}/paged`]);
    assert.deepEqual(JSON.parse(r.stdout.toString()).sort(), ['a', 'b', 'c', 'd', 'e']);
  });

  test('blob -o writes the verified blob; a missing blob fails and leaves no file', async () => {
    const layer = small.images[0]!.layers[0]!;
    const dir = await mkdtemp(join(tmpdir(), 'lading-blob-'));
    const out = join(dir, 'layer.tgz');
    const r = await runCli(['blob', `${anon.host}/app:oci`, layer.digest, '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha(await readFile(out)), layer.digest);
    const missing = join(dir, 'missing');
    const m = await runCli(['blob', `${anon.host}/app:oci`, `sha256:${'0'.repeat(64)}`, '-o', missing]);
    assert.equal(m.code, 4);
    assert.equal(existsSync(missing), false);
    const badDigest = await runCli(['blob', `${anon.host}/app:oci`, 'sha256:../../etc/passwd']);
    assert.equal(badDigest.code, 2);
  });

  test('HEAD resolves a tag without a GET (not a Docker Hub pull)', async () => {
    const client = new RegistryClient({ registry: anon.host });
    try {
      const h = await client.headManifest(parseReference(`${anon.host}/multi:oci`));
      assert.equal(h?.digest, multi.digest);
    } finally {
      await client.close();
    }
  });
});
