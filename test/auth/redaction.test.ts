import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import {
  type Credential,
  decodeAuth,
  encodeAuth,
  entryCredential,
  login,
  parseAuthFile,
  parseCredentialFile,
  readAuthFile,
  resolveCredential,
  runCredentialHelper,
  sealCredential,
} from '../../src/auth/index.ts';

const SECRET = 'S3cr3t-do-not-leak-7c1e';
const B64 = encodeAuth('user', SECRET);

/** Every way a value may end up in a log. */
function renderings(v: unknown): string[] {
  const out = [String(v), `${v}`, inspect(v, { depth: 10, showHidden: false }), JSON.stringify(v) ?? ''];
  if (v instanceof Error) out.push(v.message, v.stack ?? '', JSON.stringify({ ...v }));
  return out;
}
function assertNoSecret(v: unknown, what: string): void {
  for (const s of renderings(v)) {
    assert.ok(!s.includes(SECRET), `${what} shows the secret: ${s}`);
    assert.ok(!s.includes(B64), `${what} shows the base64 secret: ${s}`);
  }
}
async function caught(f: () => unknown): Promise<unknown> {
  try {
    await f();
  } catch (e) {
    return e;
  }
  assert.fail('expected an error');
}

describe('no secret in credentials, errors or warnings', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lading-redact-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('credentials render redacted but keep the secret readable', () => {
    const creds: Credential[] = [
      sealCredential({ kind: 'basic', username: 'user', password: SECRET, source: '--creds' }),
      sealCredential({ kind: 'bearer', token: SECRET, source: '--registry-token' }),
      sealCredential({ kind: 'identity-token', token: SECRET, username: 'user', source: 'f' }),
      entryCredential({ auth: B64 }, '/f', 'k')!,
      parseCredentialFile(`BEARER_TOKEN=${SECRET}`, '/f'),
    ];
    for (const c of creds) {
      assertNoSecret(c, c.kind);
      assertNoSecret({ nested: [c] }, `nested ${c.kind}`);
      assert.ok(Object.values(c).includes(SECRET), 'the secret field is still there');
    }
    assert.deepEqual(JSON.parse(JSON.stringify(creds[0])), {
      kind: 'basic',
      username: 'user',
      password: '<redacted>',
      source: '--creds',
    });
    assert.equal(String(creds[1]), '[bearer credential from --registry-token]');
    assert.match(inspect(creds[2]), /token: '<redacted>'/);
  });

  it('errors from bad inputs never show the secret', async () => {
    const errors: [string, unknown][] = [
      ['bad JSON', await caught(() => parseAuthFile(`{"auths":{"x":{"auth":"${B64}"}}`, '/f'))],
      ['not an object', await caught(() => parseAuthFile(`["${SECRET}"]`, '/f'))],
      ['bad auth', await caught(() => decodeAuth(Buffer.from(SECRET).toString('base64'), '/f', 'k'))],
      ['bad auth raw', await caught(() => decodeAuth(SECRET, '/f', 'k'))],
      ['credential file line', await caught(() => parseCredentialFile(`USERNAME=u\n${SECRET}`, '/f'))],
      ['credential file key', await caught(() => parseCredentialFile(`${SECRET}=x`, '/f'))],
      [
        'credential file both',
        await caught(() => parseCredentialFile(`BEARER_TOKEN=${SECRET}\nUSERNAME=u`, '/f')),
      ],
    ];
    const bad = join(dir, 'bad.json');
    await writeFile(bad, `{"auths": {"r.example": {"auth": "${B64}"}}, "x": "${SECRET}"`);
    errors.push(['read bad file', await caught(() => readAuthFile(bad))]);
    errors.push([
      'resolve with bad file',
      await caught(() =>
        resolveCredential({ host: 'r.example', repository: 'a', options: { authFile: bad }, env: {} }),
      ),
    ]);
    errors.push([
      'login over bad file',
      await caught(() =>
        login({ host: 'r.example', username: 'u', password: SECRET, authFile: bad, env: {} }),
      ),
    ]);
    for (const [what, e] of errors) {
      assert.ok(e instanceof Error, what);
      assertNoSecret(e, what);
    }
  });

  it('helper warnings never show the helper output', async () => {
    const bin = join(dir, 'bin');
    await mkdir(bin, { recursive: true });
    const scripts: Record<string, string> = {
      leaky: `echo "${SECRET}"; echo "${SECRET}" >&2; exit 4`,
      notjson: `echo "{${SECRET}"`,
      array: `echo '["${SECRET}"]'`,
    };
    for (const [name, body] of Object.entries(scripts)) {
      const p = join(bin, `docker-credential-${name}`);
      await writeFile(p, `#!/bin/sh\ncat >/dev/null\n${body}\n`);
      await chmod(p, 0o755);
      const r = await runCredentialHelper(name, 'r.example', { env: { PATH: `${bin}:/usr/bin:/bin` } });
      assert.equal(r.credential, undefined, name);
      assert.ok(r.warning, name);
      assertNoSecret(r.warning, name);
    }
  });
});
