import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { inspect } from 'node:util';
import fc from 'fast-check';
import {
  decodeAuth,
  encodeAuth,
  formatChallenge,
  login,
  logout,
  lookupAuth,
  parseAuthFile,
  parseChallenges,
  parseCredentialFile,
  resolveCredential,
} from '../../src/auth/index.ts';
import { isLadingError } from '../../src/errors/index.ts';

describe('WWW-Authenticate challenges', () => {
  test('real registries: Docker Hub, GHCR, quay, realm-only (GAR), no service (nvcr), Basic, several challenges', () => {
    assert.deepEqual(
      parseChallenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
      ),
      [
        {
          scheme: 'bearer',
          params: {
            realm: 'https://auth.docker.io/token',
            service: 'registry.docker.io',
            scope: 'repository:library/alpine:pull',
          },
        },
      ],
    );
    assert.deepEqual(parseChallenges('Bearer realm="https://us-docker.pkg.dev/v2/token"'), [
      { scheme: 'bearer', params: { realm: 'https://us-docker.pkg.dev/v2/token' } },
    ]);
    assert.deepEqual(parseChallenges('Basic realm="Registry Realm"'), [
      { scheme: 'basic', params: { realm: 'Registry Realm' } },
    ]);
    assert.deepEqual(
      parseChallenges(['Basic realm="x", Bearer realm="https://r/t",scope="a b"', 'Negotiate abc==']).map(
        (c) => c.scheme,
      ),
      ['basic', 'bearer', 'negotiate'],
    );
    assert.equal(parseChallenges('Bearer realm="a\\"b,c"')[0]!.params.realm, 'a"b,c');
    assert.equal(
      parseChallenges('Bearer realm="r",error="insufficient_scope",scope="repository:x:pull,push"')[0]!.params
        .error,
      'insufficient_scope',
    );
  });

  const token = fc.stringMatching(/^[a-z][a-z0-9_-]{0,8}$/);
  const value = fc.string({ maxLength: 20 }).filter((s) => !/[\u0000-\u001f]/.test(s));
  test('property: printed challenges parse back to the same', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ scheme: token, params: fc.dictionary(token, value, { maxKeys: 4 }) }), {
          minLength: 1,
          maxLength: 3,
        }),
        (cs) => {
          const printed = cs.map((c) => formatChallenge({ scheme: c.scheme, params: c.params })).join(', ');
          const parsed = parseChallenges(printed);
          assert.deepEqual(
            parsed.map((c) => ({ scheme: c.scheme, params: c.params })),
            cs.map((c) => ({ scheme: c.scheme, params: { ...c.params } })),
          );
        },
      ),
    );
  });

  test('property: arbitrary header text never throws', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 100 }), (s) => {
        parseChallenges(s);
      }),
    );
  });
});

describe('auth files', () => {
  test('keys by host, URL, legacy Hub key, host/namespace; longest match wins', () => {
    const f = parseAuthFile(
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: encodeAuth('hub', 'h') },
          'quay.io': { auth: encodeAuth('q', '1') },
          'quay.io/org': { auth: encodeAuth('q', '2') },
          'quay.io/org/repo': { username: 'q', password: '3' },
          'http://127.0.0.1:5000': { identitytoken: 'idt' },
        },
      }),
      'test.json',
    );
    assert.equal(lookupAuth(f, 'docker.io', 'library/alpine')?.key, 'https://index.docker.io/v1/');
    assert.equal(lookupAuth(f, 'quay.io', 'other/x')?.key, 'quay.io');
    assert.equal(lookupAuth(f, 'quay.io', 'org/x')?.key, 'quay.io/org');
    assert.equal(lookupAuth(f, 'quay.io', 'org/repo')?.key, 'quay.io/org/repo');
    assert.equal(lookupAuth(f, 'quay.io', 'organisation/x')?.key, 'quay.io');
    assert.equal(lookupAuth(f, '127.0.0.1:5000', 'a')?.entry.identitytoken, 'idt');
    assert.equal(lookupAuth(f, 'ghcr.io', 'a'), undefined);
  });

  test('property: auth values round-trip users and passwords with colons; any JSON never crashes the parser', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }).filter((u) => !u.includes(':')),
        fc.string(),
        (u, p) => {
          assert.deepEqual(decodeAuth(encodeAuth(u, p), 'f'), { username: u, password: p });
        },
      ),
    );
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        try {
          parseAuthFile(JSON.stringify(v), 'f.json');
        } catch (err) {
          assert.ok(isLadingError(err));
        }
      }),
    );
  });

  test('malformed files name the file, never the content', () => {
    const secret = 'hunter2-secret';
    assert.throws(
      () => parseAuthFile(`{"auths": {"x": {"auth": "${secret}"`, '/home/u/.docker/config.json'),
      (e: unknown) =>
        isLadingError(e) && e.message.includes('/home/u/.docker/config.json') && !e.message.includes(secret),
    );
  });
});

describe('credential sources', () => {
  test("hocker's credential file: either order, bearer token, clear line errors without values", () => {
    assert.deepEqual(
      { ...parseCredentialFile('PASSWORD=p=w\nUSERNAME=u\n', 'f') },
      { kind: 'basic', username: 'u', password: 'p=w', source: 'f' },
    );
    assert.equal(parseCredentialFile('BEARER_TOKEN=abc\n', 'f').kind, 'bearer');
    assert.throws(
      () => parseCredentialFile('USERNAME=u\nTOKEN=s3cret\n', 'creds.txt'),
      (e: unknown) => isLadingError(e) && /line 2/.test(e.message) && !e.message.includes('s3cret'),
    );
  });

  test('credentials print redacted', async () => {
    const { credential } = await resolveCredential({
      host: 'x',
      repository: 'y',
      options: { creds: { username: 'u', password: 'pa55word-x' } },
      env: {},
    });
    for (const s of [JSON.stringify(credential), String(credential), inspect(credential)])
      assert.ok(!s.includes('pa55word-x'), s);
  });

  test('login/logout keep other entries and write mode 0600', async () => {
    const home = await mkdtemp(join(tmpdir(), 'lading-login-'));
    const file = join(home, 'run', 'containers', 'auth.json');
    await mkdir(join(home, 'run', 'containers'), { recursive: true });
    await writeFile(
      file,
      JSON.stringify({
        auths: { 'other.io': { auth: 'b3RoZXI6eA==' } },
        credHelpers: { 'gcr.io': 'gcloud' },
      }),
    );
    const env = { HOME: home, XDG_RUNTIME_DIR: join(home, 'run') };
    assert.equal(await login({ host: 'reg.io', username: 'u', password: 'p', env }), file);
    const doc = JSON.parse(await readFile(file, 'utf8'));
    assert.deepEqual(Object.keys(doc.auths).sort(), ['other.io', 'reg.io']);
    assert.deepEqual(doc.credHelpers, { 'gcr.io': 'gcloud' });
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    await logout({ host: 'reg.io', env });
    assert.deepEqual(Object.keys(JSON.parse(await readFile(file, 'utf8')).auths), ['other.io']);
    await assert.rejects(
      logout({ host: 'reg.io', env }),
      (e: unknown) => isLadingError(e) && /not logged in/.test(e.message),
    );
  });
});
