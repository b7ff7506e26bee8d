import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type AuthFile,
  decodeAuth,
  encodeAuth,
  entryCredential,
  helperFor,
  lookupAuth,
  normaliseAuthKey,
  parseAuthFile,
  readAuthFile,
} from '../../src/auth/index.ts';
import { hasCode } from '../../src/errors/index.ts';

const file = (auths: Record<string, object>, extra: object = {}): AuthFile =>
  parseAuthFile(JSON.stringify({ auths, ...extra }), '/x/auth.json');

describe('normaliseAuthKey', () => {
  const cases: [string, string][] = [
    ['registry.example.com', 'registry.example.com'],
    ['Registry.Example.COM/Org', 'registry.example.com/Org'],
    ['https://index.docker.io/v1/', 'docker.io'],
    ['index.docker.io', 'docker.io'],
    ['registry-1.docker.io', 'docker.io'],
    ['docker.io/library', 'docker.io/library'],
    ['http://host:5000', 'host:5000'],
    ['https://host:5000/v2/', 'host:5000'],
    ['host:5000/path/', 'host:5000/path'],
    ['quay.io/org/repo', 'quay.io/org/repo'],
  ];
  for (const [k, want] of cases) it(`${k} → ${want}`, () => assert.equal(normaliseAuthKey(k), want));
  it('legacy .dockercfg keys are hosts only', () => {
    assert.equal(normaliseAuthKey('quay.io/org', true), 'quay.io');
  });
});

describe('lookupAuth', () => {
  const f = file({
    'quay.io': { auth: encodeAuth('host', 'p') },
    'quay.io/org': { auth: encodeAuth('ns', 'p') },
    'quay.io/org/repo': { auth: encodeAuth('repo', 'p') },
    'quay.io/organisation': { auth: encodeAuth('prefix-trap', 'p') },
  });
  const who = (repo: string) => lookupAuth(f, 'quay.io', repo)?.key;
  it('longest key wins: host/ns/repo > host/ns > host', () => {
    assert.equal(who('org/repo'), 'quay.io/org/repo');
    assert.equal(who('org/other'), 'quay.io/org');
    assert.equal(who('org/repo/sub'), 'quay.io/org/repo');
    assert.equal(who('elsewhere/x'), 'quay.io');
  });
  it('matches whole path components only', () => {
    assert.equal(who('org2/x'), 'quay.io');
    assert.equal(who('organisation/x'), 'quay.io/organisation');
  });
  it('matches none for another host', () => {
    assert.equal(lookupAuth(f, 'ghcr.io', 'org/repo'), undefined);
  });
  it('Docker Hub aliases all match docker.io; the normal key wins a tie', () => {
    for (const k of ['https://index.docker.io/v1/', 'index.docker.io', 'registry-1.docker.io', 'docker.io']) {
      const g = file({ [k]: { auth: encodeAuth('u', 'p') } });
      for (const host of ['docker.io', 'index.docker.io', 'registry-1.docker.io'])
        assert.equal(lookupAuth(g, host, 'library/alpine')?.key, k, `${k} for ${host}`);
    }
    const both = file({
      'https://index.docker.io/v1/': { auth: encodeAuth('legacy', 'p') },
      'docker.io': { auth: encodeAuth('new', 'p') },
    });
    assert.equal(lookupAuth(both, 'docker.io', 'library/alpine')?.key, 'docker.io');
  });
  it('a scheme key is a host only, a legacy file ignores namespaces', () => {
    const g = file({ 'http://host:5000/ignored/path': { auth: encodeAuth('u', 'p') } });
    assert.equal(lookupAuth(g, 'host:5000', 'any/repo')?.key, 'http://host:5000/ignored/path');
    const legacy = parseAuthFile(
      JSON.stringify({ 'https://quay.io/org': { auth: encodeAuth('u', 'p'), email: 'e' } }),
      '/x/.dockercfg',
      { legacy: true },
    );
    assert.equal(lookupAuth(legacy, 'quay.io', 'other/x')?.key, 'https://quay.io/org');
  });
});

describe('entries and helpers', () => {
  it('reads auth, username/password, identitytoken, registrytoken', () => {
    const c = (e: object) => entryCredential(e, '/f', 'k');
    assert.deepEqual(JSON.parse(JSON.stringify(c({ auth: encodeAuth('u', 'a:b:c') }))), {
      kind: 'basic',
      username: 'u',
      password: '<redacted>',
      source: '/f',
    });
    const basic = c({ auth: encodeAuth('u', 'a:b:c') });
    assert.equal(basic?.kind === 'basic' && basic.password, 'a:b:c');
    const up = c({ username: 'x', password: 'y' });
    assert.ok(up?.kind === 'basic' && up.username === 'x' && up.password === 'y');
    const it = c({ auth: encodeAuth('me', ''), identitytoken: 'refresh' });
    assert.ok(it?.kind === 'identity-token' && it.token === 'refresh' && it.username === 'me');
    const rt = c({ registrytoken: 'rt', auth: encodeAuth('u', 'p') });
    assert.ok(rt?.kind === 'bearer' && rt.token === 'rt');
    assert.equal(c({}), undefined);
  });
  it('credHelpers[host] beats credsStore', () => {
    const f = file(
      {},
      { credHelpers: { 'ghcr.io': 'gh', 'https://index.docker.io/v1/': 'hub' }, credsStore: 'all' },
    );
    assert.equal(helperFor(f, 'ghcr.io'), 'gh');
    assert.equal(helperFor(f, 'docker.io'), 'hub');
    assert.equal(helperFor(f, 'quay.io'), 'all');
    assert.equal(helperFor(file({}), 'quay.io'), undefined);
  });
  it('a bad auth value names the file and key, not the value', () => {
    const secret = 'bm90LWEtcGFpcg==';
    assert.throws(
      () => decodeAuth(secret, '/etc/auth.json', 'quay.io'),
      (e: Error) =>
        hasCode(e, 'E_AUTH_FILE') && e.message.includes('/etc/auth.json') && !e.message.includes(secret),
    );
    assert.throws(
      () => decodeAuth('%%%', '/f'),
      (e: Error) => hasCode(e, 'E_AUTH_FILE'),
    );
  });
});

const anyText = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: fc.constantFrom(':', 'a', '=') }),
);

describe('auth file properties', () => {
  it('auth base64 round-trips any user (without :) and password (with :)', () => {
    fc.assert(
      fc.property(
        anyText.filter((u) => !u.includes(':')),
        anyText,
        (username, password) => {
          // Well-formed UTF-16 only: lone surrogates cannot survive UTF-8 in any tool.
          const wellFormed = (s: string) => Buffer.from(s, 'utf8').toString('utf8') === s;
          fc.pre(wellFormed(username) && wellFormed(password));
          const enc = encodeAuth(username, password);
          assert.deepEqual(decodeAuth(enc, '/f'), { username, password });
          const f = file({ 'r.example': { auth: enc } });
          const c = entryCredential(lookupAuth(f, 'r.example', 'a/b')!.entry, '/f', 'r.example');
          assert.ok(c?.kind === 'basic' && c.username === username && c.password === password);
        },
      ),
      { numRuns: 500 },
    );
  });
  it('any JSON object parses and looks up without crashing', () => {
    const anyAuths = fc.dictionary(
      fc.oneof(
        fc.string(),
        fc.constantFrom('docker.io', 'quay.io/org', 'https://index.docker.io/v1/', '__proto__'),
      ),
      fc.oneof(
        fc.jsonValue(),
        fc.record({ username: fc.jsonValue(), password: fc.jsonValue(), identitytoken: fc.jsonValue() }),
      ),
    );
    const doc = fc.oneof(
      fc.dictionary(fc.string(), fc.jsonValue()),
      fc.record({
        auths: fc.oneof(anyAuths, fc.jsonValue()),
        credHelpers: fc.jsonValue(),
        credsStore: fc.jsonValue(),
      }),
    );
    fc.assert(
      fc.property(doc, fc.boolean(), fc.constantFrom('docker.io', 'quay.io', ''), (d, legacy, host) => {
        const f = parseAuthFile(JSON.stringify(d), '/f', { legacy });
        const hit = lookupAuth(f, host, 'org/repo');
        helperFor(f, host);
        for (const e of f.auths.values()) for (const v of Object.values(e)) assert.equal(typeof v, 'string');
        if (hit) assert.ok(f.auths.has(hit.key));
      }),
      { numRuns: 500 },
    );
  });
});

describe('readAuthFile', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lading-authfile-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('is undefined for a missing file', async () => {
    assert.equal(await readAuthFile(join(dir, 'nope.json')), undefined);
    assert.equal(await readAuthFile(join(dir, 'nope', 'deeper.json')), undefined);
  });
  it('malformed JSON is E_AUTH_FILE naming the file, never its content', async () => {
    const p = join(dir, 'bad.json');
    await writeFile(p, '{"auths": {"x": {"auth": "c2VjcmV0LXZhbHVl"}}, oops');
    await assert.rejects(
      readAuthFile(p),
      (e: Error) => hasCode(e, 'E_AUTH_FILE') && e.message.includes(p) && !e.message.includes('c2VjcmV0'),
    );
    await writeFile(p, '["not", "an object"]');
    await assert.rejects(readAuthFile(p), (e: Error) => hasCode(e, 'E_AUTH_FILE'));
  });
  it('a directory is E_AUTH_FILE, a huge file E_TOO_LARGE', async () => {
    await assert.rejects(
      readAuthFile(dir),
      (e: Error) => hasCode(e, 'E_AUTH_FILE') && e.message.includes(dir),
    );
    const p = join(dir, 'huge.json');
    await writeFile(p, Buffer.alloc(4 * 1024 * 1024 + 1, 0x20));
    await assert.rejects(readAuthFile(p), (e: Error) => hasCode(e, 'E_TOO_LARGE'));
  });
  it('reads a real file with a BOM and an empty file', async () => {
    const p = join(dir, 'ok.json');
    await writeFile(p, `\uFEFF${JSON.stringify({ auths: { 'a.example': { auth: encodeAuth('u', 'p') } } })}`);
    assert.equal((await readAuthFile(p))?.auths.size, 1);
    await writeFile(p, '');
    assert.equal((await readAuthFile(p))?.auths.size, 0);
  });
});
