import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isLadingError } from '../../src/errors/index.ts';
import { formatPlatform, parsePlatform, selectPlatform } from '../../src/image/index.ts';

test('platform names normalise as Go and containerd name them', () => {
  assert.equal(formatPlatform(parsePlatform('linux/x86_64')), 'linux/amd64');
  assert.equal(formatPlatform(parsePlatform('linux/aarch64')), 'linux/arm64');
  assert.equal(formatPlatform(parsePlatform('linux/arm64/v8')), 'linux/arm64');
  assert.equal(formatPlatform(parsePlatform('linux/arm/7')), 'linux/arm/v7');
  assert.equal(formatPlatform(parsePlatform('arm64')), 'linux/arm64');
  assert.throws(
    () => parsePlatform('linux//'),
    (e: unknown) => isLadingError(e) && e.code === 'E_BAD_PLATFORM',
  );
  assert.throws(
    () => parsePlatform('a/b/c/d'),
    (e: unknown) => isLadingError(e),
  );
});

test('selection prefers exact variants and refuses other architectures', () => {
  const cands = [
    { os: 'linux', architecture: 'amd64' },
    { os: 'linux', architecture: 'arm64', variant: 'v8' },
    { os: 'linux', architecture: 'arm', variant: 'v6' },
    { os: 'linux', architecture: 'arm', variant: 'v7' },
    { os: 'unknown', architecture: 'unknown' },
  ];
  assert.equal(selectPlatform(parsePlatform('linux/amd64'), cands), 0);
  assert.equal(selectPlatform(parsePlatform('linux/arm64'), cands), 1);
  assert.equal(selectPlatform(parsePlatform('linux/arm/v7'), cands), 3);
  assert.equal(selectPlatform(parsePlatform('linux/arm/v6'), cands), 2);
  assert.equal(selectPlatform(parsePlatform('linux/s390x'), cands), -1);
  assert.equal(selectPlatform(parsePlatform('windows/amd64'), cands), -1);
});

test('property: parse(format(p)) is stable', () => {
  fc.assert(
    fc.property(
      fc.constantFrom('linux', 'windows', 'darwin'),
      fc.constantFrom('amd64', 'arm64', 'arm', 'x86_64', 'aarch64', '386', 'ppc64le', 's390x', 'riscv64'),
      fc.option(fc.constantFrom('v5', 'v6', 'v7', 'v8'), { nil: undefined }),
      (os, arch, variant) => {
        const p = parsePlatform(`${os}/${arch}${variant ? `/${variant}` : ''}`);
        assert.deepEqual(parsePlatform(formatPlatform(p)), p);
      },
    ),
  );
});
