import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type Challenge,
  formatChallenges,
  isToken,
  parseChallenges,
  parseScopeError,
} from '../../src/auth/index.ts';

const plain = (cs: Challenge[]) =>
  cs.map((c) => ({ scheme: c.scheme, params: { ...c.params }, token68: c.token68 }));

describe('parseChallenges', () => {
  it('reads a Docker Hub bearer challenge', () => {
    const h =
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"';
    assert.deepEqual(plain(parseChallenges(h)), [
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.docker.io/token',
          service: 'registry.docker.io',
          scope: 'repository:library/alpine:pull',
        },
        token68: undefined,
      },
    ]);
  });

  it('reads the RFC 7235 example: two challenges, escapes, unquoted token values', () => {
    const h = 'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"';
    assert.deepEqual(plain(parseChallenges(h)), [
      {
        scheme: 'newauth',
        params: { realm: 'apps', type: '1', title: 'Login to "apps"' },
        token68: undefined,
      },
      { scheme: 'basic', params: { realm: 'simple' }, token68: undefined },
    ]);
  });

  it('keeps commas and spaces inside quotes and several scopes', () => {
    const [c] = parseChallenges('Bearer realm="a, b", scope="repository:x:pull,push repository:y:pull"');
    assert.equal(c?.params.realm, 'a, b');
    assert.equal(c?.params.scope, 'repository:x:pull,push repository:y:pull');
  });

  it('lower-cases scheme and param names, not values', () => {
    const [c] = parseChallenges('BASIC Realm="Registry Realm", CharSet=UTF-8');
    assert.equal(c?.scheme, 'basic');
    assert.deepEqual({ ...c?.params }, { realm: 'Registry Realm', charset: 'UTF-8' });
  });

  it('reads token68 (with padding), schemes without params and empty list elements', () => {
    const cs = parseChallenges(', Negotiate, Basic dXNlcjpwYXNz==,, Bearer realm="r",, service="s" ,');
    assert.deepEqual(plain(cs), [
      { scheme: 'negotiate', params: {}, token68: undefined },
      { scheme: 'basic', params: {}, token68: 'dXNlcjpwYXNz==' },
      { scheme: 'bearer', params: { realm: 'r', service: 's' }, token68: undefined },
    ]);
  });

  it('reads several header values and unquoted URLs (GCP realm-only, BWS around =)', () => {
    const cs = parseChallenges(['Basic realm = "x"', 'Bearer realm=https://gcr.example/v2/token']);
    assert.deepEqual(plain(cs), [
      { scheme: 'basic', params: { realm: 'x' }, token68: undefined },
      { scheme: 'bearer', params: { realm: 'https://gcr.example/v2/token' }, token68: undefined },
    ]);
  });

  it('keeps the first of a repeated param and treats __proto__ as a plain name', () => {
    const [c] = parseChallenges('Bearer realm="a", realm="b", __proto__="x"');
    assert.equal(c?.params.realm, 'a');
    assert.equal(Object.getOwnPropertyDescriptor(c?.params, '__proto__')?.value, 'x');
    assert.equal(Object.getPrototypeOf(c?.params), Object.prototype);
  });

  it('returns what it read before garbage', () => {
    assert.deepEqual(parseChallenges(''), []);
    assert.deepEqual(parseChallenges(undefined), []);
    assert.deepEqual(parseChallenges('"quoted"'), []);
    const cs = parseChallenges('Basic realm="ok", Bearer realm="unterminated');
    assert.equal(cs[0]?.params.realm, 'ok');
    assert.equal(cs[1]?.scheme, 'bearer');
    assert.equal(cs[1]?.params.realm, undefined);
  });
});

describe('parseScopeError', () => {
  it('finds insufficient_scope and the scopes wanted', () => {
    const h =
      'Bearer realm="https://t.example/token",service="reg",scope="repository:a/b:pull repository:a/c:pull,push",error="insufficient_scope",error_description="need more"';
    assert.deepEqual(parseScopeError(h), {
      scopes: ['repository:a/b:pull', 'repository:a/c:pull,push'],
      realm: 'https://t.example/token',
      service: 'reg',
      description: 'need more',
    });
  });
  it('is undefined for other errors and other schemes', () => {
    assert.equal(parseScopeError('Bearer realm="x",error="invalid_token"'), undefined);
    assert.equal(parseScopeError('Basic realm="x", error="insufficient_scope"'), undefined);
    assert.equal(parseScopeError(undefined), undefined);
  });
  it('gives an empty scope list when the server names none', () => {
    assert.deepEqual(parseScopeError('Bearer error="insufficient_scope"'), { scopes: [] });
  });
});

const tchar = fc.constantFrom(..."!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCXYZ");
const token = fc.string({ unit: tchar, minLength: 1, maxLength: 10 });
const t68char = fc.constantFrom(...'abcXYZ0189-._~+/');
const token68 = fc
  .tuple(fc.string({ unit: t68char, minLength: 1, maxLength: 12 }), fc.integer({ min: 0, max: 2 }))
  .map(([s, n]) => s + '='.repeat(n));
// Quoted-string content: any printable text incl. quotes, backslashes, commas and non-ASCII.
const value = fc.string({
  unit: fc.oneof(fc.constantFrom('"', '\\', ',', ' ', '=', '\t'), fc.string({ minLength: 1, maxLength: 1 })),
  maxLength: 20,
});
const challenge: fc.Arbitrary<Challenge> = fc.oneof(
  fc.record({
    scheme: token.map((s) => s.toLowerCase()),
    params: fc.dictionary(
      token.map((s) => s.toLowerCase()),
      value,
      { maxKeys: 4 },
    ),
  }),
  fc.record({ scheme: token.map((s) => s.toLowerCase()), params: fc.constant({}), token68 }),
);

describe('challenge properties', () => {
  it('print then parse gives the same list', () => {
    fc.assert(
      fc.property(fc.array(challenge, { maxLength: 4 }), (cs) => {
        const back = parseChallenges(formatChallenges(cs));
        assert.deepEqual(plain(back), plain(cs));
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on arbitrary strings and lower-cases every scheme', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string({ unit: fc.constantFrom('a', 'B', '=', '"', '\\', ',', ' ', '\t', '/', '+') }),
        ),
        (s) => {
          const cs = parseChallenges(s);
          for (const c of cs) {
            assert.ok(isToken(c.scheme));
            assert.equal(c.scheme, c.scheme.toLowerCase());
            for (const k of Object.keys(c.params)) assert.ok(isToken(k) && k === k.toLowerCase());
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
