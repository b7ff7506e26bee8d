import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type BuiltLayout, buildLayout, multiArchImage, pushLayout, smallImage } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

let reg: TestRegistry;
let small: BuiltLayout;
let multi: BuiltLayout;

before(async () => {
  reg = await sharedRegistry('none');
  small = await buildLayout(smallImage('inspect'), 'v1');
  multi = await buildLayout(multiArchImage(), 'm');
  await pushLayout(small, reg, 'inspect/small:v1');
});
after(() => stopSharedRegistries());

async function skopeoInspect(
  location: string,
): Promise<{ Digest: string; Layers: string[]; Architecture: string }> {
  return JSON.parse((await run('skopeo', ['inspect', '--tls-verify=false', location])).stdout.toString());
}

test('inspect takes docker://REF as skopeo does, with the same digest', async () => {
  const ref = `${reg.host}/inspect/small:v1`;
  const ours = JSON.parse((await runCli(['inspect', '--json', `docker://${ref}`])).stdout.toString());
  const theirs = await skopeoInspect(`docker://${ref}`);
  assert.equal(ours.digest, theirs.Digest);
  assert.deepEqual(
    ours.layers.map((l: { digest: string }) => l.digest),
    theirs.Layers,
  );
  const digest = await runCli(['digest', `docker://${ref}`]);
  assert.equal(digest.stdout.toString().trim(), theirs.Digest);
});

test('inspect reads an OCI layout: digest, layers and raw bytes agree with skopeo', async () => {
  const loc = `oci:${small.dir}:v1`;
  const ours = JSON.parse((await runCli(['inspect', '--json', loc])).stdout.toString());
  const theirs = await skopeoInspect(loc);
  assert.equal(ours.digest, theirs.Digest);
  assert.deepEqual(
    ours.layers.map((l: { digest: string }) => l.digest),
    theirs.Layers,
  );
  const raw = (await runCli(['inspect', '--raw', loc])).stdout;
  const skopeoRaw = (await run('skopeo', ['inspect', '--raw', loc])).stdout;
  assert.deepEqual(raw, skopeoRaw);
});

test('inspect of a local multi-arch index picks the asked platform and lists them all', async () => {
  const loc = `oci:${multi.dir}:m`;
  const ours = JSON.parse(
    (await runCli(['inspect', '--json', '--platform', 'linux/arm64', loc])).stdout.toString(),
  );
  assert.equal(ours.digest, multi.digest);
  assert.ok(ours.platforms.length >= 3, JSON.stringify(ours.platforms));
  assert.equal(ours.instance.platform, 'linux/arm64/v8');
  const cfg = (await runCli(['inspect', '--config', '--platform', 'linux/arm64', loc])).stdout;
  assert.equal(JSON.parse(cfg.toString()).architecture, 'arm64');
});

test('inspect reads a docker-archive written by skopeo', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lading-inspect-'));
  const archive = join(dir, 'img.tar');
  await run('skopeo', ['copy', `oci:${small.dir}:v1`, `docker-archive:${archive}:x/y:1`]);
  const ours = JSON.parse(
    (await runCli(['inspect', '--json', `docker-archive:${archive}`])).stdout.toString(),
  );
  const theirs = await skopeoInspect(`docker-archive:${archive}`);
  assert.equal(ours.digest, theirs.Digest);
  assert.equal(
    ours.config.digest,
    JSON.parse((await run('skopeo', ['inspect', '--raw', `docker-archive:${archive}`])).stdout.toString())
      .config.digest,
  );
});

test('inspect of a missing layout fails clearly', async () => {
  const r = await runCli(['inspect', 'oci:/nonexistent/lading-layout:v1']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr.toString(), /nonexistent\/lading-layout/);
});
