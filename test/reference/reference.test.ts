import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isLadingError } from '../../src/errors/index.ts';
import { normaliseRegistryHost, parseReference } from '../../src/reference/index.ts';

const HEX = 'a'.repeat(64);

test('normalises short names as Docker does', () => {
  const cases: [string, string][] = [
    ['alpine', 'docker.io/library/alpine:latest'],
    ['alpine:3.20', 'docker.io/library/alpine:3.20'],
    ['library/alpine', 'docker.io/library/alpine:latest'],
    ['user/app:v1', 'docker.io/user/app:v1'],
    ['docker.io/alpine', 'docker.io/library/alpine:latest'],
    ['index.docker.io/library/alpine', 'docker.io/library/alpine:latest'],
    ['registry-1.docker.io/foo/bar', 'docker.io/foo/bar:latest'],
    ['ghcr.io/org/app', 'ghcr.io/org/app:latest'],
    ['localhost/app', 'localhost/app:latest'],
    ['localhost:5000/a/b/c:tag', 'localhost:5000/a/b/c:tag'],
    ['127.0.0.1:5000/app', '127.0.0.1:5000/app:latest'],
    ['[::1]:5000/app:x', '[::1]:5000/app:x'],
    [`alpine@sha256:${HEX}`, `docker.io/library/alpine@sha256:${HEX}`],
    [`host:5000/repo:tag@sha256:${HEX}`, `host:5000/repo:tag@sha256:${HEX}`],
    ['a-b_c__d/e.f', 'docker.io/a-b_c__d/e.f:latest'],
    ['Host.Example/app', 'Host.Example/app:latest'],
  ];
  for (const [input, want] of cases) assert.equal(String(parseReference(input)), want, input);
});

test('parts and helpers', () => {
  const r = parseReference('alpine:3');
  assert.equal(r.registry, 'docker.io');
  assert.equal(r.repository, 'library/alpine');
  assert.equal(r.apiHost, 'registry-1.docker.io');
  assert.equal(r.familiarName, 'alpine');
  assert.equal(r.scope('pull', 'push'), 'repository:library/alpine:pull,push');
  assert.equal(r.identifier, '3');
  assert.equal(r.withDigest(`sha256:${HEX}`).identifier, `sha256:${HEX}`);
  assert.equal(parseReference('localhost:5000/x').apiHost, 'localhost:5000');
});

test('rejects malformed references with a message naming the input', () => {
  const bad = [
    '',
    'Alpine',
    'upper/Case',
    'a//b',
    'app:',
    'app:-x',
    `app:${'x'.repeat(129)}`,
    'app@sha256:xyz',
    `app@md5:${HEX}`,
    HEX,
    'docker://alpine',
    'a b',
    'host:port:bad/x',
    `a/${'b'.repeat(260)}`,
    '-a/b',
    'a/b_',
  ];
  for (const input of bad) {
    assert.throws(
      () => parseReference(input),
      (err: unknown) =>
        isLadingError(err) && err.code === 'E_BAD_REFERENCE' && err.message.includes(JSON.stringify(input)),
      input,
    );
  }
});

test('registry hosts for login normalise Docker Hub aliases', () => {
  assert.equal(normaliseRegistryHost('https://index.docker.io/v1/'), 'docker.io');
  assert.equal(normaliseRegistryHost('ghcr.io'), 'ghcr.io');
  assert.equal(normaliseRegistryHost('127.0.0.1:5000'), '127.0.0.1:5000');
});

// No dots: a first component with a dot is a registry host, as in Docker.
const component = fc.stringMatching(/^[a-z0-9]+(?:(?:_|__|-+)[a-z0-9]+)*$/).filter((s) => s.length <= 30);
const tag = fc.stringMatching(/^[\w][\w.-]{0,20}$/);
const host = fc.oneof(
  fc.constant('localhost'),
  fc
    .tuple(fc.stringMatching(/^[a-z0-9]{1,10}$/), fc.stringMatching(/^[a-z]{2,5}$/))
    .map(([a, b]) => `${a}.${b}`),
  fc.integer({ min: 1, max: 65535 }).map((p) => `127.0.0.1:${p}`),
);

test('property: parse(print(ref)) is a fixed point', () => {
  fc.assert(
    fc.property(
      fc.option(host, { nil: undefined }),
      fc.array(component, { minLength: 1, maxLength: 4 }),
      fc.option(tag, { nil: undefined }),
      fc.option(fc.stringMatching(/^[a-f0-9]{64}$/), { nil: undefined }),
      (h, path, t, hex) => {
        const input = `${h ? `${h}/` : ''}${path.join('/')}${t ? `:${t}` : ''}${hex ? `@sha256:${hex}` : ''}`;
        if (input.length > 200) return;
        let ref: ReturnType<typeof parseReference>;
        try {
          ref = parseReference(input);
        } catch (err) {
          // A single 64-hex path component is an image ID; that is the only allowed rejection.
          assert.ok(isLadingError(err) && /64-character hex/.test(err.message), `${input}: ${String(err)}`);
          return;
        }
        const again = parseReference(String(ref));
        assert.equal(String(again), String(ref));
        assert.equal(ref.tag, t ?? (hex ? undefined : 'latest'));
        if (hex) assert.equal(ref.digest, `sha256:${hex}`);
      },
    ),
  );
});

test('property: arbitrary strings never crash the parser (error or reference)', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 80 }), (s) => {
      try {
        parseReference(s);
      } catch (err) {
        assert.ok(isLadingError(err), `non-LadingError for ${JSON.stringify(s)}`);
      }
    }),
  );
});
