import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  addToLock,
  BlobCache,
  IndexStore,
  isLadingError,
  type LockOptions,
  type LockUpdate,
  parsePlatform,
  RegistryPool,
  readLock,
  removeFromLock,
  updateLock,
} from '../../src/index.ts';
import { parseNixHash, toNix32 } from '../../src/nix/index.ts';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.ts';
import { buildLayout, type ImageSpec, multiArchImage, pushLayout } from '../helpers/images.ts';
import { skopeoArchiveHash } from '../helpers/nix.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

// The lock-update algorithm through the library (what `lading lock add|update|remove` call), against
// the real registry: what is fetched, what is decided, and what ends up in the file.

let anon: TestRegistry;
let proxy: FaultProxy;
let work: string;
let pool: RegistryPool;

function image(version: string, architecture = 'amd64'): ImageSpec {
  return {
    architecture,
    layers: [
      { entries: [{ path: 'opt/tool', content: `tool ${version}`, mode: 0o755 }] },
      { entries: [{ path: 'etc/version', content: version }] },
    ],
  };
}

before(async () => {
  anon = await sharedRegistry('none');
  proxy = await startFaultProxy(anon.url);
  work = await mkdtemp(join(tmpdir(), 'lading-lock-update-'));
  pool = new RegistryPool();
});
after(async () => {
  await pool.close();
  await proxy.stop();
  await stopSharedRegistries();
  await rm(work, { recursive: true, force: true });
});

function options(cache = 'cache'): LockOptions {
  const root = join(work, cache);
  return { pool, cache: new BlobCache(root), index: new IndexStore(root), tmpDir: work };
}

/** `dockerTools.pullImage`'s hash as skopeo + nix-hash make it (independent of lading), nix32. */
const skopeoFlat = (repo: string, digest: string, nameTag: string): Promise<string> =>
  skopeoArchiveHash(`docker://${anon.host}/${repo}@${digest}`, nameTag);

const nix32 = (sri: string | undefined): string => toNix32(parseNixHash(sri ?? '').bytes);
/** The requests the registry saw since `mark`, as `METHOD kind` (manifests/blobs). */
const seen = (mark: number): string[] =>
  proxy.log.slice(mark).map((l) => `${l.method} ${l.path.includes('/blobs/') ? 'blob' : 'manifest'}`);
const hasCode = (code: string) => (e: unknown) => isLadingError(e) && e.code === code;

describe('lock update algorithm (library)', () => {
  test('add checks the name first; update HEADs only, re-pins a moved tag as it was pinned', async () => {
    const file = join(work, 'a.lock.json');
    const o = options();
    const v1 = await buildLayout(image('1'));
    await pushLayout(v1, anon, 'lockup/app:1');
    const ref = `${proxy.host}/lockup/app:1`;

    const app = await addToLock(file, { image: ref }, o);
    assert.equal(app.name, 'app');
    assert.equal(app.entry.imageDigest, v1.digest);
    assert.equal(nix32(app.entry.dockerTools?.hash), await skopeoFlat('lockup/app', v1.digest, ref));
    // No hash and one path to record: only the top layer (deciding /etc/version) is fetched.
    let mark = proxy.log.length;
    const bare = await addToLock(
      file,
      { image: ref, name: 'bare', hash: false, extract: ['/etc/version'] },
      options('cache-bare'),
    );
    assert.equal(bare.entry.dockerTools, undefined);
    assert.equal(bare.entry.nix2container, undefined);
    const top = v1.images[0]!.layers[1]!.digest;
    assert.deepEqual(bare.entry.extract, { '/etc/version': { layer: 1, digest: top } });
    assert.deepEqual(
      proxy.log
        .slice(mark)
        .filter((l) => l.method === 'GET' && l.path.includes('/blobs/'))
        .map((l) => l.path.slice(l.path.lastIndexOf('/') + 1)),
      [top],
    );

    // A taken name is refused before any request, and the file is left as it was.
    const text = await readFile(file, 'utf8');
    mark = proxy.log.length;
    await assert.rejects(
      addToLock(file, { image: `${proxy.host}/lockup/other:1`, name: 'app' }, o),
      hasCode('E_EXISTS'),
    );
    await assert.rejects(updateLock(file, ['app', 'nope'], o), hasCode('E_NOT_FOUND'));
    assert.deepEqual(seen(mark), []);

    // Nothing moved: one HEAD per entry, nothing fetched, the file not rewritten.
    const same = await updateLock(file, [], o);
    assert.deepEqual(
      same.map((u) => [u.name, u.changed, u.prefetch === undefined]),
      [
        ['app', false, true],
        ['bare', false, true],
      ],
    );
    assert.deepEqual(seen(mark), ['HEAD manifest', 'HEAD manifest']);
    assert.equal(await readFile(file, 'utf8'), text);

    // The tag moves: both re-pinned, each as it was (with hashes, or without and the path again).
    const v2 = await buildLayout(image('2'));
    await pushLayout(v2, anon, 'lockup/app:1');
    const told: LockUpdate[] = [];
    const moved = await updateLock(file, [], { ...o, onEntry: (u) => void told.push(u) });
    assert.deepEqual(told, moved);
    const [a, b] = moved;
    assert.equal(a!.changed, true);
    assert.equal(a!.previous.imageDigest, v1.digest);
    assert.equal(a!.entry.imageDigest, v2.digest);
    assert.equal(nix32(a!.entry.dockerTools?.hash), await skopeoFlat('lockup/app', v2.digest, ref));
    assert.equal(b!.changed, true);
    assert.equal(b!.entry.imageDigest, v2.digest);
    assert.equal(b!.entry.dockerTools, undefined);
    assert.deepEqual(b!.entry.extract, {
      '/etc/version': { layer: 1, digest: v2.images[0]!.layers[1]!.digest },
    });
    // The file holds the new entries (as JSON: absent hashes are left out).
    assert.deepEqual(
      (await readLock(file)).images,
      JSON.parse(JSON.stringify({ app: a!.entry, bare: b!.entry })),
    );

    await removeFromLock(file, ['bare']);
    assert.deepEqual(Object.keys((await readLock(file)).images), ['app']);
  });

  test('a moved index whose pinned instance is the same: fetched again, unchanged, file kept', async () => {
    const file = join(work, 'm.lock.json');
    const o = options();
    const specs = multiArchImage();
    const three = await buildLayout(specs);
    await pushLayout(three, anon, 'lockup/multi:1');
    const added = await addToLock(
      file,
      { image: `${anon.host}/lockup/multi:1`, platform: parsePlatform('linux/arm64'), pinInstance: true },
      o,
    );
    assert.equal(added.entry.indexDigest, three.digest);
    assert.equal(added.entry.imageDigest, three.images[1]!.manifestDigest);
    const text = await readFile(file, 'utf8');

    // Another index (amd64 and arm64 only) holding the very same arm64 image.
    const two = await buildLayout(specs.slice(0, 2));
    assert.equal(two.images[1]!.manifestDigest, three.images[1]!.manifestDigest);
    assert.notEqual(two.digest, three.digest);
    await pushLayout(two, anon, 'lockup/multi:1');
    const [u] = await updateLock(file, [], o);
    assert.equal(u!.changed, false);
    assert.equal(u!.prefetch?.indexDigest, two.digest);
    assert.equal(await readFile(file, 'utf8'), text);
  });

  test('a platform asked for is enforced; the default takes a single-platform image as it is', async () => {
    const file = join(work, 'p.lock.json');
    const o = options();
    const arm = await buildLayout(image('arm', 'arm64'));
    await pushLayout(arm, anon, 'lockup/arm:1');
    const ref = `${anon.host}/lockup/arm:1`;
    await assert.rejects(
      addToLock(file, { image: ref, platform: parsePlatform('linux/amd64'), hash: false }, o),
      hasCode('E_PLATFORM_MISMATCH'),
    );
    const added = await addToLock(file, { image: ref, hash: false }, o);
    assert.equal(added.entry.imageDigest, arm.digest);
    await assert.rejects(
      addToLock(file, { image: `${ref.slice(0, -2)}@${arm.digest}` }, o),
      hasCode('E_BAD_ARGUMENT'),
    );
  });
});
