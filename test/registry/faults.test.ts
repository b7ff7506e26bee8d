import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import {
  type BlobOrigin,
  type FaultProxy,
  startBlobOrigin,
  startFaultProxy,
} from '../helpers/fault-proxy.ts';
import { type BuiltLayout, buildLayout, pushLayout } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
let anon: TestRegistry;
let token: TestRegistry;
let anonProxy: FaultProxy;
let tokenProxy: FaultProxy;
let origin: BlobOrigin;
let image: BuiltLayout;
const big = () => image.images[0]!.layers[0]!;
const FAST = ['--retry-delay', '10ms'];

before(async () => {
  [anon, token] = await Promise.all([sharedRegistry('none'), sharedRegistry('token')]);
  // An incompressible 3 MiB layer, so a drop happens mid-body.
  image = await buildLayout({
    layers: [{ entries: [{ path: 'blob.bin', content: randomBytes(3 << 20) }], compression: 'none' }],
  });
  await Promise.all([pushLayout(image, anon, 'faults:1'), pushLayout(image, token, 'private/faults:1')]);
  anonProxy = await startFaultProxy(anon.url);
  tokenProxy = await startFaultProxy(token.url);
  origin = await startBlobOrigin(token.storageDir);
});
after(async () => {
  await anonProxy.stop();
  await tokenProxy.stop();
  await origin.stop();
  await stopSharedRegistries();
});

async function fetchBlob(
  proxy: FaultProxy,
  repo: string,
  extra: string[] = [],
): Promise<{ code: number; stderr: string; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'lading-fault-'));
  const file = join(dir, 'blob');
  const r = await runCli(['blob', ...FAST, ...extra, `${proxy.host}/${repo}`, big().digest, '-o', file]);
  return { code: r.code, stderr: r.stderr, file };
}

const blobPath = /\/blobs\/sha256:/;

describe('through the fault proxy', () => {
  test('a connection dropped mid-blob resumes with Range and gives identical bytes', async () => {
    anonProxy.clear();
    anonProxy.addRule({ method: 'GET', path: blobPath, dropAfterBytes: 1_000_000 });
    const r = await fetchBlob(anonProxy, 'faults:1');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha(await readFile(r.file)), big().digest);
    const gets = anonProxy.log.filter((e) => e.method === 'GET' && blobPath.test(e.path));
    assert.equal(gets.length, 2);
    assert.equal(gets[0]!.fault, 'drop');
    const from = Number(/^bytes=(\d+)-$/.exec(gets[1]!.range ?? '')?.[1]);
    assert.ok(from > 0 && from <= 1_000_000, `resumed from ${gets[1]!.range}`);
    assert.equal(gets[1]!.status, 206);
  });

  test('a tampered blob fails with expected and actual digests and writes nothing', async () => {
    anonProxy.clear();
    anonProxy.addRule({ method: 'GET', path: blobPath, tamperAt: 12345 });
    const r = await fetchBlob(anonProxy, 'faults:1', ['--retry-times', '0']);
    assert.equal(r.code, 5);
    assert.match(r.stderr, new RegExp(`digest mismatch .*expected ${big().digest}, got sha256:[0-9a-f]{64}`));
    assert.equal(existsSync(r.file), false);
    assert.equal(existsSync(join(r.file, '..')), true);
  });

  test('429 with Retry-After and 5xx are retried; with --retry-times 0 they fail clearly', async () => {
    anonProxy.clear();
    anonProxy.addRule({ method: 'GET', path: blobPath, status: 429, retryAfter: '1' });
    anonProxy.addRule({ method: 'GET', path: blobPath, status: 503 });
    const t0 = Date.now();
    const ok = await fetchBlob(anonProxy, 'faults:1');
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(Date.now() - t0 >= 900, 'Retry-After: 1 was not honoured');
    assert.deepEqual(
      anonProxy.log.filter((e) => blobPath.test(e.path)).map((e) => e.status),
      [429, 503, 200],
    );
    anonProxy.clear();
    anonProxy.addRule({ method: 'GET', path: blobPath, status: 503 });
    const bad = await fetchBlob(anonProxy, 'faults:1', ['--retry-times', '0']);
    assert.equal(bad.code, 6);
    assert.match(bad.stderr, /503/);
  });

  test('a manifest 5xx is retried', async () => {
    anonProxy.clear();
    anonProxy.addRule({ method: 'GET', path: /\/manifests\//, status: 502, times: 2 });
    const r = await runCli(['inspect', '--raw', ...FAST, `${anonProxy.host}/faults:1`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha(r.stdout), image.digest);
  });

  test('blob redirects to another origin are followed without sending credentials there', async () => {
    tokenProxy.clear();
    origin.requests.length = 0;
    tokenProxy.addRule({ method: 'GET', path: blobPath, redirectTo: origin.url, times: 5 });
    const dir = await mkdtemp(join(tmpdir(), 'lading-redirect-'));
    const file = join(dir, 'blob');
    const r = await runCli([
      'blob',
      '--creds',
      'alice:wonderland-Secret-1',
      `${tokenProxy.host}/private/faults:1`,
      big().digest,
      '-o',
      file,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha(await readFile(file)), big().digest);
    assert.ok(origin.requests.length >= 1);
    for (const q of origin.requests) {
      assert.equal(q.headers.authorization, undefined);
      assert.equal(q.headers.cookie, undefined);
    }
    // The registry itself did get the credentials.
    assert.ok(tokenProxy.log.some((e) => blobPath.test(e.path) && e.authorization));
    // The signed URL is never printed in full.
    assert.ok(!r.stderr.includes('s3cr3t-signature'));
  });

  test('a failed redirected download names the redacted URL and never echoes the signed query or credentials', async () => {
    tokenProxy.clear();
    tokenProxy.addRule({ method: 'GET', path: blobPath, redirectTo: `${origin.url}/nowhere`, times: 1 });
    const r = await runCli([
      'blob',
      '--debug',
      '--retry-times',
      '0',
      '--creds',
      'alice:wonderland-Secret-1',
      `${tokenProxy.host}/private/faults:1`,
      big().digest,
    ]);
    assert.notEqual(r.code, 0);
    assert.ok(!r.stderr.includes('s3cr3t-signature'), 'signed URL leaked');
    assert.ok(!r.stderr.includes('wonderland-Secret-1'));
    assert.match(r.stderr, /X-Amz-Signature=REDACTED/);
  });
});
