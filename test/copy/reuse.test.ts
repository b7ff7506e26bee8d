import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { requireBin, run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.ts';
import { type BuiltLayout, buildLayout, type ImageSpec, uncompressedImage } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

let reg: TestRegistry;
let proxy: FaultProxy;
let v1: BuiltLayout;
let v2: BuiltLayout;
let work: string;

/** The image with its top layer's data file changed (the two lower layers stay the same). */
function changedTop(spec: ImageSpec): ImageSpec {
  const layers = spec.layers.map((l) => ({ ...l, entries: [...l.entries] }));
  layers[2]!.entries.push({ path: 'changed.txt', content: 'one changed file\n' });
  return { ...spec, layers };
}

before(async () => {
  reg = await sharedRegistry('none');
  proxy = await startFaultProxy(reg.url);
  v1 = await buildLayout(uncompressedImage('reuse'));
  v2 = await buildLayout(changedTop(uncompressedImage('reuse')));
  work = await mkdtemp(join(tmpdir(), 'lading-reuse-test-'));
});
after(async () => {
  await proxy.stop();
  await stopSharedRegistries();
});

/** A fresh cache each time: the skip must not depend on this machine having pushed before. */
let n = 0;
const freshCli = (args: string[]) =>
  runCli(args, {
    env: { HOME: '/nonexistent', PATH: process.env.PATH, XDG_CACHE_HOME: join(work, `cache-${n++}`) },
    cwd: work,
  });

const uploads = (p: FaultProxy) =>
  p.log.filter((e) => e.method === 'PUT' && e.path.includes('/blobs/uploads/')).length;

async function layers(ref: string): Promise<string[]> {
  const r = await run(requireBin('skopeo'), ['inspect', '--tls-verify=false', '--raw', ref]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout.toString()) as { layers: { digest: string }[] }).layers.map((l) => l.digest);
}

test('re-pushing an image where one uncompressed layer changed compresses and uploads only that layer', async () => {
  const ref = `docker://${proxy.host}/reuse/app:latest`;
  // Pushed first at gzip level 1 (other bytes than the default level gives), so only a reuse by
  // diff_id can keep these layer digests below.
  const first = await freshCli([
    'copy',
    '-q',
    '--dest-compress-format',
    'gzip',
    '--dest-compress-level',
    '1',
    `oci:${v1.dir}:latest`,
    ref,
  ]);
  assert.equal(first.code, 0, first.stderr);
  const before = await layers(`docker://${reg.host}/reuse/app:latest`);

  proxy.clear();
  const second = await freshCli(['copy', '-q', `oci:${v2.dir}:latest`, ref]);
  assert.equal(second.code, 0, second.stderr);
  assert.equal(uploads(proxy), 2, 'the changed layer and the new config');
  const afterPush = await layers(`docker://${reg.host}/reuse/app:latest`);
  assert.deepEqual(afterPush.slice(0, 2), before.slice(0, 2), 'unchanged layers keep their gzip digests');
  assert.notEqual(afterPush[2], before[2]);

  // The result is a whole image skopeo can copy.
  const s = await run(requireBin('skopeo'), [
    'copy',
    '--src-tls-verify=false',
    `docker://${reg.host}/reuse/app:latest`,
    `oci:${join(work, 'check')}:x`,
  ]);
  assert.equal(s.code, 0, s.stderr);

  // The same push again: nothing is uploaded but the (existing) config is only checked.
  proxy.clear();
  const third = await freshCli(['copy', '-q', `oci:${v2.dir}:latest`, ref]);
  assert.equal(third.code, 0, third.stderr);
  assert.equal(uploads(proxy), 0);
});
