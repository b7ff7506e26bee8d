import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type BuiltLayout, buildLayout, smallImage } from '../helpers/images.ts';

let layout: BuiltLayout;
let work: string;

before(async () => {
  layout = await buildLayout(smallImage('stdio'));
  work = await mkdtemp(join(tmpdir(), 'lading-stdio-'));
});

const src = () => `oci:${layout.dir}:${layout.tag}`;

test('docker-archive:- writes only the archive to stdout (the digest goes to stderr, or nowhere with -q)', async () => {
  const file = join(work, 'a.tar');
  const f = await runCli(['copy', '-q', src(), `docker-archive:${file}:app:1`]);
  assert.equal(f.code, 0, f.stderr);
  const r = await runCli(['copy', src(), 'docker-archive:-:app:1']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.equals(await readFile(file)), 'stdout is exactly the archive');
  assert.match(r.stderr, /^sha256:[0-9a-f]{64}$/m);
  const q = await runCli(['copy', '-q', src(), 'docker-archive:-:app:1']);
  assert.equal(q.code, 0, q.stderr);
  assert.equal(q.stderr, '');
  assert.ok(q.stdout.equals(r.stdout));

  // And back in through stdin.
  const out = join(work, 'from-docker-archive');
  // A docker-archive holds Docker schema 2 images; skopeo reads only OCI manifests from a layout.
  const back = await runCli(['copy', '-q', '--format', 'oci', 'docker-archive:-', `oci:${out}:1`], {
    stdin: r.stdout,
  });
  assert.equal(back.code, 0, back.stderr);
  const inspect = JSON.parse((await run('skopeo', ['inspect', `oci:${out}:1`])).stdout.toString());
  assert.equal(inspect.Layers.length, layout.images[0]!.layers.length, 'every layer came through the pipe');
});

test('oci-archive:- out through stdout and in through stdin keeps the digests', async () => {
  const r = await runCli(['copy', '-q', src(), 'oci-archive:-']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  const listing = (await run('tar', ['tf', '-'], { input: r.stdout })).stdout.toString();
  assert.match(listing, /index\.json/);
  const out = join(work, 'from-oci-archive');
  const back = await runCli(['copy', 'oci-archive:-', `oci:${out}:1`], { stdin: r.stdout });
  assert.equal(back.code, 0, back.stderr);
  assert.equal(back.stdout.toString().trim(), layout.digest);
  const inspect = JSON.parse((await run('skopeo', ['inspect', `oci:${out}:1`])).stdout.toString());
  assert.equal(inspect.Digest, layout.digest);
});

test('oci-archive:- with something that is not a tar on stdin: a clear error, nothing written', async () => {
  const out = join(work, 'never');
  const r = await runCli(['copy', 'oci-archive:-', `oci:${out}:1`], { stdin: 'not a tar at all\n' });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /lading: error: /);
  assert.doesNotMatch(r.stderr, /internal error/);
  await assert.rejects(readFile(join(out, 'index.json')));
});
