import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { requireBin, run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.ts';
import { type BuiltLayout, buildLayout, smallImage, uncompressedImage } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

let reg: TestRegistry;
let proxy: FaultProxy;
let gz: BuiltLayout;
let plain: BuiltLayout;
let work: string;
let env: NodeJS.ProcessEnv;

before(async () => {
  reg = await sharedRegistry('none');
  proxy = await startFaultProxy(reg.url);
  gz = await buildLayout(smallImage('blob-info'));
  plain = await buildLayout(uncompressedImage('blob-info'));
  work = await mkdtemp(join(tmpdir(), 'lading-blob-info-test-'));
  // One cache for the whole file: it is what carries the knowledge from one run to the next.
  env = { HOME: '/nonexistent', PATH: process.env.PATH, XDG_CACHE_HOME: join(work, 'cache') };
});
after(async () => {
  await proxy.stop();
  await stopSharedRegistries();
});

const cli = (args: string[]) => runCli(args, { env, cwd: work });
const mounts = () =>
  proxy.log.filter((e) => e.method === 'POST' && e.path.includes('mount=') && e.status === 201);
const uploads = () => proxy.log.filter((e) => e.method === 'PUT' && e.path.includes('/blobs/uploads/'));

async function inspectOk(ref: string): Promise<{ layers: { digest: string }[] }> {
  const r = await run(requireBin('skopeo'), ['inspect', '--tls-verify=false', '--raw', ref]);
  return JSON.parse(r.stdout.toString()) as { layers: { digest: string }[] };
}

test('blobs pushed to one repository are mounted into another from a local source', async () => {
  const a = await cli(['copy', '-q', `oci:${gz.dir}:latest`, `docker://${proxy.host}/info/a:1`]);
  assert.equal(a.code, 0, a.stderr);
  proxy.clear();
  const b = await cli(['copy', '-q', `oci:${gz.dir}:latest`, `docker://${proxy.host}/info/b:1`]);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(mounts().length, 4, 'three layers and the config mounted from info/a');
  assert.equal(uploads().length, 0);
  assert.ok(mounts().every((e) => e.path.includes('from=info%2Fa')));
  const m = await inspectOk(`docker://${reg.host}/info/b:1`);
  assert.deepEqual(
    m.layers.map((l) => l.digest),
    gz.images[0]!.layers.map((l) => l.digest),
  );
});

test('an uncompressed layer compressed for one repository is mounted, not compressed again, for another', async () => {
  const a = await cli(['copy', '-q', `oci:${plain.dir}:latest`, `docker://${proxy.host}/info/pa:1`]);
  assert.equal(a.code, 0, a.stderr);
  const first = await inspectOk(`docker://${reg.host}/info/pa:1`);
  proxy.clear();
  // The same form (gzip at the default level 6): mounted, nothing uploaded.
  const b = await cli([
    'copy',
    '-q',
    '--dest-compress-format',
    'gzip',
    `oci:${plain.dir}:latest`,
    `docker://${proxy.host}/info/pb:1`,
  ]);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(uploads().length, 0);
  assert.equal(mounts().length, 4);
  const second = await inspectOk(`docker://${reg.host}/info/pb:1`);
  assert.deepEqual(second.layers, first.layers);
  // Another level is another form (issue 13.6): compressed anew, whatever the cache knows.
  proxy.clear();
  const c = await cli([
    'copy',
    '-q',
    '--dest-compress-format',
    'gzip',
    '--dest-compress-level',
    '1',
    `oci:${plain.dir}:latest`,
    `docker://${proxy.host}/info/pc:1`,
  ]);
  assert.equal(c.code, 0, c.stderr);
  const third = await inspectOk(`docker://${reg.host}/info/pc:1`);
  assert.notDeepEqual(third.layers, first.layers);
});

test('without the cache (--no-cache) nothing is known: the blobs are uploaded', async () => {
  proxy.clear();
  const c = await cli([
    'copy',
    '-q',
    '--no-cache',
    `oci:${gz.dir}:latest`,
    `docker://${proxy.host}/info/c:1`,
  ]);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(mounts().length, 0);
  assert.equal(uploads().length, 4);
});
