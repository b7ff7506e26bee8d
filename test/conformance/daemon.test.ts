import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { requireBin, run, track, untrack } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type BuiltLayout, buildLayout, prng, pushLayout, smallImage } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

let reg: TestRegistry;
let image: BuiltLayout;
let service: ChildProcess;
let socket: string;
let work: string;

before(async () => {
  requireBin('podman');
  reg = await sharedRegistry('none');
  image = await buildLayout(smallImage('daemon'));
  await pushLayout(image, reg, 'daemon/app:1');
  work = await mkdtemp(join(tmpdir(), 'lading-daemon-'));
  socket = join(work, 'engine.sock');
  // podman serves the Docker Engine API on a socket of our choosing.
  service = spawn('podman', ['system', 'service', '--time=0', `unix://${socket}`], { stdio: 'ignore' });
  track(service);
  for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(existsSync(socket), 'podman system service did not start');
});
after(async () => {
  untrack(service);
  service.kill();
  await stopSharedRegistries();
});

const env = () => ({ HOME: '/nonexistent', PATH: process.env.PATH, DOCKER_HOST: `unix://${socket}` });

async function inspectConfig(name: string): Promise<string> {
  const out = JSON.parse((await run('podman', ['image', 'inspect', name])).stdout.toString()) as {
    Id: string;
  }[];
  return out[0]!.Id;
}

describe('container engines', () => {
  test('docker-daemon: loads through the Engine API /images/load and reads back through /images/get', async () => {
    const r = await runCli(
      ['copy', '-q', `${reg.host}/daemon/app:1`, 'docker-daemon:lading-test/app:loaded'],
      { env: env() },
    );
    assert.equal(r.code, 0, r.stderr);
    // The engine's image ID is the config digest.
    assert.equal(
      `sha256:${await inspectConfig('docker.io/lading-test/app:loaded')}`,
      image.images[0]!.configDigest,
    );
    const dir = join(work, 'back');
    const back = await runCli(['copy', '-q', 'docker-daemon:lading-test/app:loaded', `dir:${dir}`], {
      env: env(),
    });
    assert.equal(back.code, 0, back.stderr);
    assert.ok(
      (await readFile(join(dir, image.images[0]!.configDigest.slice(7)))).equals(image.images[0]!.config),
    );
  });

  test('podman: loads with podman load and reads back with podman save', async () => {
    const r = await runCli(['copy', '-q', `${reg.host}/daemon/app:1`, 'podman:lading-test/app:podman'], {
      env: env(),
    });
    assert.equal(r.code, 0, r.stderr);
    const dir = join(work, 'podman-back');
    const back = await runCli(['copy', '-q', 'podman:lading-test/app:podman', `dir:${dir}`], { env: env() });
    assert.equal(back.code, 0, back.stderr);
    assert.ok(
      (await readFile(join(dir, image.images[0]!.configDigest.slice(7)))).equals(image.images[0]!.config),
    );
  });

  test('a gzip layer whose trailer understates its size still loads (measured after the hint fails)', async () => {
    const members = await buildLayout({
      layers: [
        { entries: [{ path: 'm', content: prng('daemon-members', 200_000) }], compression: 'gzip-2' },
        { entries: [{ path: 'n', content: 'n' }] },
      ],
    });
    for (const dst of ['docker-daemon:lading-test/members:1', 'podman:lading-test/members:2']) {
      const r = await runCli(['copy', '-q', `oci:${members.dir}:${members.tag}`, dst], { env: env() });
      assert.equal(r.code, 0, `${dst}: ${r.stderr}`);
      const name = dst.endsWith(':1') ? 'docker.io/lading-test/members:1' : 'docker.io/lading-test/members:2';
      assert.equal(`sha256:${await inspectConfig(name)}`, members.images[0]!.configDigest);
    }
  });

  test('a source that fails half-way is the error reported, and podman is not left waiting', async () => {
    // A layer blob damaged in a copy of the layout: the digest check fails while streaming.
    const broken = join(work, 'broken');
    await cp(image.dir, broken, { recursive: true });
    const layer = image.images[0]!.layers[0]!;
    const path = join(broken, 'blobs', 'sha256', layer.digest.slice(7));
    const bytes = await readFile(path);
    bytes[bytes.length - 20]! ^= 0xff;
    await writeFile(path, bytes);
    for (const dst of ['podman:lading-test/broken:1', 'docker-daemon:lading-test/broken:2']) {
      const r = await runCli(['copy', '-q', `oci:${broken}:${image.tag}`, dst], { env: env() });
      assert.notEqual(r.code, 0, dst);
      assert.match(
        r.stderr,
        /^lading: error: (digest mismatch|cannot decompress layer sha256:[0-9a-f]{64}: .*damaged)/m,
        dst,
      );
      assert.doesNotMatch(r.stderr, /cannot reach the container engine/, dst);
    }
  });

  test('a missing image is a clear error', async () => {
    const r = await runCli(['copy', '-q', 'docker-daemon:lading-test/nope:1', `dir:${join(work, 'x')}`], {
      env: env(),
    });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /no image/);
  });
});
