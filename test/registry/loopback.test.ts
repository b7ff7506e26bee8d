import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isLoopbackHost } from '../../src/registry/index.ts';

// Docker's rule: only loopback registries may speak plain HTTP without --tls-verify=false.
test('isLoopbackHost: localhost, 127.0.0.0/8 and ::1, with or without a port', () => {
  for (const host of [
    'localhost',
    'localhost:5000',
    'registry.localhost:5000',
    '127.0.0.1',
    '127.0.0.1:34897',
    '127.255.1.2:80',
    '::1',
    '[::1]',
    '[::1]:5000',
  ])
    assert.equal(isLoopbackHost(host), true, host);
});

test('isLoopbackHost: everything else is not loopback', () => {
  for (const host of [
    'example.com',
    'example.com:443',
    '127.0.0.1.example.com:5000',
    'localhost.example.com',
    '128.0.0.1:5000',
    '127.0.0.256:5000',
    '127.0.0:5000',
    '::2',
    '[::2]:5000',
    '::ffff:127.0.0.1',
    '[fe80::1]:5000',
    '10.0.0.1',
  ])
    assert.equal(isLoopbackHost(host), false, host);
});
