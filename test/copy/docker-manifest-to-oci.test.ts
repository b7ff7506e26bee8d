import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { buildLayout, pushLayout, smallImage } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

let reg: TestRegistry;
let work: string;

before(async () => {
  reg = await sharedRegistry('none');
  await pushLayout(await buildLayout(smallImage('v2s2-to-oci')), reg, 'v2s2/app:1', { format: 'v2s2' });
  work = await mkdtemp(join(tmpdir(), 'lading-v2s2-oci-'));
});
after(() => stopSharedRegistries());

test('a Docker schema 2 image copied into oci: keeps its digest and says which tools cannot read it', async () => {
  const src = `${reg.host}/v2s2/app:1`;
  const digest = JSON.parse(
    (await run('skopeo', ['inspect', '--tls-verify=false', `docker://${src}`])).stdout.toString(),
  ).Digest as string;
  const out = join(work, 'kept');
  const r = await runCli(['copy', src, `oci:${out}:1`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.toString().trim(), digest);
  assert.match(r.stderr, /warning: oci:.* holds a Docker schema 2 manifest .* add --format oci to convert/);
  const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8'));
  assert.equal(index.manifests[0].digest, digest);

  const converted = join(work, 'converted');
  const c = await runCli(['copy', '--format', 'oci', src, `oci:${converted}:1`]);
  assert.equal(c.code, 0, c.stderr);
  assert.doesNotMatch(c.stderr, /warning/);
  const inspect = JSON.parse((await run('skopeo', ['inspect', `oci:${converted}:1`])).stdout.toString());
  assert.equal(inspect.Digest, c.stdout.toString().trim());
  assert.notEqual(inspect.Digest, digest);
  const q = await runCli(['copy', '-q', src, `oci:${join(work, 'quiet')}:1`]);
  assert.equal(q.code, 0, q.stderr);
  assert.equal(q.stderr.toString(), '', '-q prints no warning');
});
