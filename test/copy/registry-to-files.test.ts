import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { requireBin, run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.ts';
import { type BuiltLayout, buildLayout, pushLayout } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

// Registry blobs written to OCI / dir: files straight from the raw blob reader (putBlobFrom),
// checked against skopeo's copy of the same image and against a lying server and a full disk.

let anon: TestRegistry;
let proxy: FaultProxy;
let image: BuiltLayout;
let work: string;
let mnt: string;
let mounted = false;
const blobs = /\/blobs\/sha256:/;

async function files(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name), `${rel}${e.name}/`);
      else out.set(`${rel}${e.name}`, await readFile(join(d, e.name)));
    }
  };
  await walk(dir, '');
  return out;
}

async function allFiles(dir: string): Promise<string[]> {
  return [...(await files(dir)).keys()].sort();
}

before(async () => {
  anon = await sharedRegistry('none');
  image = await buildLayout({
    layers: [
      { entries: [{ path: 'a.bin', content: randomBytes(3 << 20) }] },
      { entries: [{ path: 'b.txt', content: 'b'.repeat(100_000) }] },
    ],
  });
  await pushLayout(image, anon, 'tofiles:1');
  proxy = await startFaultProxy(anon.url);
  work = await mkdtemp(join(tmpdir(), 'lading-tofiles-'));
  mnt = await mkdtemp(join(tmpdir(), 'lading-tofiles-full-'));
  const r = await run(requireBin('mount'), ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt]);
  assert.equal(r.code, 0, `mount -t tmpfs failed (root needed): ${r.stderr}`);
  mounted = true;
});
after(async () => {
  // The mount first: nothing after it may keep the tmpfs mounted.
  try {
    if (mounted) await run('umount', [mnt]);
    await rm(mnt, { recursive: true, force: true });
  } finally {
    await proxy.stop();
    await stopSharedRegistries();
    await rm(work, { recursive: true, force: true });
  }
});

describe('copy registry → oci / dir', () => {
  for (const kind of ['oci', 'dir'] as const) {
    test(`${kind}: the same files as skopeo's copy`, async () => {
      const mine = join(work, `${kind}-lading`);
      const theirs = join(work, `${kind}-skopeo`);
      const dest = (d: string) => (kind === 'oci' ? `oci:${d}:1` : `dir:${d}`);
      const r = await runCli(['copy', '-q', '--no-cache', `docker://${anon.host}/tofiles:1`, dest(mine)]);
      assert.equal(r.code, 0, r.stderr);
      await run('skopeo', [
        'copy',
        '-q',
        '--src-tls-verify=false',
        `docker://${anon.host}/tofiles:1`,
        dest(theirs),
      ]);
      const a = await files(mine);
      const b = await files(theirs);
      // index.json may differ in formatting; every blob and the dir: files are byte-identical.
      for (const [name, bytes] of b) {
        if (name === 'index.json') continue;
        assert.ok(a.get(name)?.equals(bytes), `${name} differs from skopeo's`);
      }
      assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
    });
  }

  test('a dropped connection resumes; a tampered blob fails and leaves no file', async () => {
    proxy.clear();
    // The 3 MiB layer's GET (the blobs are fetched in parallel, in no fixed order).
    const bigLayer = new RegExp(image.images[0]!.layers[0]!.digest.slice(7));
    proxy.addRule({ method: 'GET', path: bigLayer, dropAfterBytes: 1_000_000 });
    const ok = join(work, 'resumed');
    let r = await runCli([
      'copy',
      '-q',
      '--no-cache',
      '--retry-delay',
      '10ms',
      `docker://${proxy.host}/tofiles:1`,
      `oci:${ok}:1`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(proxy.log.some((e) => e.status === 206));
    await run('skopeo', ['inspect', `oci:${ok}:1`]);
    await run('umoci', ['stat', '--image', `${ok}:1`]);

    proxy.clear();
    proxy.addRule({ method: 'GET', path: blobs, tamperAt: 200_000, times: 20 });
    for (const kind of ['oci', 'dir'] as const) {
      const bad = join(work, `tampered-${kind}`);
      r = await runCli([
        'copy',
        '-q',
        '--no-cache',
        `docker://${proxy.host}/tofiles:1`,
        kind === 'oci' ? `oci:${bad}:1` : `dir:${bad}`,
      ]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /digest mismatch/);
      const left = await allFiles(bad).catch(() => []);
      assert.ok(
        left.every((f) => !f.includes(image.images[0]!.layers[0]!.digest.slice(7)) && !f.endsWith('.tmp')),
        `left behind: ${left.join(', ')}`,
      );
    }
  });

  test('docker-archive (layers inflated on one thread into their places): byte-identical to skopeo; tampering leaves no file', async () => {
    const mine = join(work, 'mine.tar');
    const theirs = join(work, 'theirs.tar');
    const src = `docker://${anon.host}/tofiles:1`;
    const r = await runCli(['copy', '-q', '--no-cache', src, `docker-archive:${mine}:tofiles:1`]);
    assert.equal(r.code, 0, r.stderr);
    await run('skopeo', ['copy', '-q', '--src-tls-verify=false', src, `docker-archive:${theirs}:tofiles:1`]);
    assert.ok((await readFile(mine)).equals(await readFile(theirs)));
    proxy.clear();
    proxy.addRule({ method: 'GET', path: blobs, tamperAt: 200_000, times: 20 });
    const dir = await mkdtemp(join(work, 'tampered-archive-'));
    const bad = await runCli([
      'copy',
      '-q',
      '--no-cache',
      `docker://${proxy.host}/tofiles:1`,
      `docker-archive:${join(dir, 'a.tar')}:tofiles:1`,
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /digest mismatch/);
    assert.deepEqual(await readdir(dir), []);
  });

  test('a full disk fails with ENOSPC and leaves nothing', async () => {
    for (const kind of ['oci', 'dir'] as const) {
      const dest = join(mnt, kind);
      const r = await runCli([
        'copy',
        '-q',
        '--no-cache',
        `docker://${anon.host}/tofiles:1`,
        kind === 'oci' ? `oci:${dest}:1` : `dir:${dest}`,
      ]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /ENOSPC|no space left/i);
      assert.deepEqual(await readdir(mnt), [], 'nothing half-written under the destination');
    }
  });
});
