import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.ts';
import { type BuiltLayout, buildLayout, pushLayout } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries } from '../helpers/registry.ts';

// Issue 12 item 4: after a retry answered `200` (a registry ignoring Range, or a retry at byte 0),
// a second dropped connection threw `TypeError: body.destroy is not a function`. Several drops in
// a row must be retried and verified like one, with and without Range support.

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
let proxy: FaultProxy;
let image: BuiltLayout;
const big = () => image.images[0]!.layers[0]!;
const blobPath = /\/blobs\/sha256:/;

before(async () => {
  const registry = await sharedRegistry('none');
  image = await buildLayout({
    layers: [{ entries: [{ path: 'blob.bin', content: randomBytes(3 << 20) }], compression: 'none' }],
  });
  await pushLayout(image, registry, 'resume:1');
  proxy = await startFaultProxy(registry.url);
});
after(async () => {
  await proxy.stop();
  await stopSharedRegistries();
});

async function fetchBlob(): Promise<{ code: number; stderr: string; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'lading-resume-'));
  const file = join(dir, 'blob');
  const r = await runCli([
    'blob',
    '--retry-delay',
    '10ms',
    '--retry-times',
    '3',
    `${proxy.host}/resume`,
    big().digest,
    '-o',
    file,
  ]);
  return { code: r.code, stderr: r.stderr, file };
}

describe('a blob download survives several dropped connections', () => {
  for (const ranges of [true, false]) {
    for (const drops of [1, 2, 3]) {
      test(`${drops} drop(s), registry ${ranges ? 'serves' : 'ignores'} Range`, async () => {
        proxy.clear();
        // The first attempt is cut at byte 0 (no Range to send: the retry gets 200), later ones mid-body.
        proxy.addRule({ method: 'GET', path: blobPath, dropAfterBytes: 0, ignoreRange: !ranges });
        if (drops > 1)
          proxy.addRule({
            method: 'GET',
            path: blobPath,
            dropAfterBytes: 900_000,
            ignoreRange: !ranges,
            times: drops - 1,
          });
        if (!ranges) proxy.addRule({ method: 'GET', path: blobPath, ignoreRange: true, times: Infinity });
        const r = await fetchBlob();
        assert.equal(r.code, 0, r.stderr);
        assert.doesNotMatch(r.stderr, /TypeError|internal error/);
        assert.equal(sha(await readFile(r.file)), big().digest);
        const gets = proxy.log.filter((e) => e.method === 'GET' && blobPath.test(e.path));
        assert.equal(gets.length, drops + 1);
        assert.equal(gets.filter((e) => e.fault === 'drop').length, drops);
        assert.equal(gets[1]!.status, 200, 'the retry at byte 0 gets the whole blob');
        for (const g of gets.slice(2)) assert.equal(g.status, ranges ? 206 : 200, JSON.stringify(g));
      });
    }
  }

  test('one drop more than --retry-times fails with a network error and leaves no file', async () => {
    proxy.clear();
    proxy.addRule({ method: 'GET', path: blobPath, dropAfterBytes: 900_000, ignoreRange: true, times: 4 });
    const r = await fetchBlob();
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /^lading: .*GET .*blobs\/sha256:/m);
    assert.doesNotMatch(r.stderr, /TypeError|internal error/);
    assert.equal(existsSync(r.file), false);
  });
});
