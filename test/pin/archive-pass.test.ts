import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BlobCache } from '../../src/cache/index.ts';
import type { Digest } from '../../src/digest/index.ts';
import { isLadingError } from '../../src/errors/index.ts';
import { parseNixHash, toNix32 } from '../../src/nix/index.ts';
import { archiveHashOnePass } from '../../src/pin/archive-pass.ts';
import { prefetch } from '../../src/pin/index.ts';
import { parseReference } from '../../src/reference/index.ts';
import { RegistryClient, RegistryPool } from '../../src/registry/index.ts';
import { RegistrySource } from '../../src/transports/index.ts';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.ts';
import { type BuiltLayout, buildLayout, prng, pushLayout, smallImage } from '../helpers/images.ts';
import { skopeoArchiveHash } from '../helpers/nix.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

// The one-pass docker-archive hash of a dockerTools-only prefetch (src/pin/archive-pass.ts):
// socket (or cache) → blob digest → inflate → diff_id + archive hashes, checked against what
// skopeo writes and nix-hash hashes.

let anon: TestRegistry;
let proxy: FaultProxy;
const layouts: Record<string, BuiltLayout> = {};
const clients: RegistryClient[] = [];
const FAST = { times: 3, delayMs: 5, maxDelayMs: 50 };

/** nix-hash --flat of skopeo's docker-archive of `repo:tag`, named `nameTag`. */
const skopeoFlat = (repo: string, tag: string, nameTag: string): Promise<string> =>
  skopeoArchiveHash(`docker://${anon.host}/${repo}:${tag}`, nameTag);

async function onePass(
  name: string,
  repo: string,
  opts: { host?: string; cache?: BlobCache; nameTag?: string; sizes?: (n: number) => number } = {},
) {
  const image = layouts[name]!.images[0]!;
  const c = new RegistryClient({ registry: opts.host ?? anon.host, retry: FAST });
  clients.push(c);
  const cache = opts.cache ?? new BlobCache(await mkdtemp(join(tmpdir(), 'lading-onepass-cache-')));
  const source = new RegistrySource(c, parseReference(`${opts.host ?? anon.host}/${repo}:1`), { cache });
  const r = await archiveHashOnePass({
    source,
    configBytes: image.config,
    layers: image.layers.map((l) => ({
      desc: { mediaType: l.mediaType, digest: l.digest as Digest, size: l.size },
      diffId: l.diffId as Digest,
      size: (opts.sizes ?? ((n) => n))(l.uncompressed.length),
    })),
    repoTags: [opts.nameTag ?? `${anon.host}/${repo}:1`],
  });
  assert.ok(r, 'this Node.js inflates synchronously');
  return { hash: toNix32(parseNixHash(r.sha256).bytes), cache, image };
}

before(async () => {
  anon = await sharedRegistry('none');
  const twice = smallImage('onepass-twice');
  twice.layers.push(twice.layers[1]!);
  const specs = {
    small: smallImage('onepass'),
    twice,
    plain: {
      layers: [
        { entries: [{ path: 'p', content: 'plain'.repeat(999) }], compression: 'none' as const },
        { entries: [{ path: 'q', content: 'q' }] },
      ],
    },
    // Incompressible and big enough that a drop falls mid-layer.
    large: {
      layers: [
        { entries: [{ path: 'r', content: randomBytes(2 << 20) }] },
        { entries: [{ path: 's', content: prng('onepass-s', 3 << 20) }] },
      ],
    },
    zstd: {
      ...smallImage('onepass-z'),
      layers: smallImage('onepass-z').layers.map((l) => ({ ...l, compression: 'zstd' as const })),
    },
    zstdtwin: smallImage('onepass-z'),
    members: {
      layers: [
        { entries: [{ path: 'm', content: prng('onepass-m', 300_000) }], compression: 'gzip-2' as const },
        { entries: [{ path: 'n', content: 'n' }] },
      ],
    },
  };
  for (const [k, s] of Object.entries(specs)) layouts[k] = await buildLayout(s, '1');
  await Promise.all(Object.keys(specs).map((k) => pushLayout(layouts[k]!, anon, `onepass/${k}:1`)));
  proxy = await startFaultProxy(anon.url);
});
after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await proxy.stop();
  await stopSharedRegistries();
});

describe('one pass per layer', () => {
  for (const name of ['small', 'twice', 'plain', 'large']) {
    test(`${name}: the hash skopeo + nix-hash give; blobs cached; again from the cache alone`, async () => {
      const first = await onePass(name, `onepass/${name}`, { host: proxy.host });
      assert.equal(first.hash, await skopeoFlat(`onepass/${name}`, '1', `${anon.host}/onepass/${name}:1`));
      for (const l of first.image.layers) assert.ok(await first.cache.has(l.digest as Digest, l.size));
      proxy.clear();
      const again = await onePass(name, `onepass/${name}`, { host: proxy.host, cache: first.cache });
      assert.equal(again.hash, first.hash);
      assert.equal(proxy.log.filter((e) => e.path.includes('/blobs/')).length, 0);
    });
  }

  test('zstd layers hash like their gzip twin', async () => {
    // skopeo writes `twin:t` as its normalised name.
    const z = await onePass('zstd', 'onepass/zstd', { nameTag: 'docker.io/library/twin:t' });
    const g = await onePass('zstdtwin', 'onepass/zstdtwin', { nameTag: 'docker.io/library/twin:t' });
    assert.equal(z.hash, g.hash);
    assert.equal(g.hash, await skopeoFlat('onepass/zstdtwin', '1', 'twin:t'));
  });

  test('a wrong uncompressed size fails with E_SIZE_MISMATCH (too small and too large)', async () => {
    for (const lie of [(n: number) => n - 1, (n: number) => n + 1]) {
      await assert.rejects(onePass('small', 'onepass/small', { sizes: lie }), (e) => {
        assert.ok(isLadingError(e));
        assert.equal(e.code, 'E_SIZE_MISMATCH');
        return true;
      });
    }
  });

  test('a connection dropped mid-layer resumes: same hash', async () => {
    proxy.clear();
    proxy.addRule({ method: 'GET', path: /\/blobs\//, dropAfterBytes: 1_000_000, times: 2 });
    const r = await onePass('large', 'onepass/large', { host: proxy.host });
    assert.ok(proxy.log.some((e) => e.fault === 'drop'));
    assert.ok(proxy.log.some((e) => e.status === 206));
    assert.equal(r.hash, await skopeoFlat('onepass/large', '1', `${anon.host}/onepass/large:1`));
  });

  test('a tampered layer fails with E_DIGEST_MISMATCH and leaves no cache entry', async () => {
    proxy.clear();
    proxy.addRule({ method: 'GET', path: /\/blobs\//, tamperAt: 500_000, times: 10 });
    const cache = new BlobCache(await mkdtemp(join(tmpdir(), 'lading-onepass-cache-')));
    await assert.rejects(onePass('large', 'onepass/large', { host: proxy.host, cache }), (e) => {
      assert.ok(isLadingError(e));
      assert.equal(e.code, 'E_DIGEST_MISMATCH');
      assert.ok(e.message.includes(layouts.large!.images[0]!.layers[0]!.digest));
      return true;
    });
    assert.deepEqual(await cache.list(), []);
  });
});

describe('prefetch, dockerTools only (the one pass; a lying gzip trailer falls back)', () => {
  for (const name of ['small', 'members']) {
    test(`${name}: the hash skopeo + nix-hash give`, async () => {
      const pool = new RegistryPool({ retry: FAST });
      try {
        const r = await prefetch({
          pool,
          imageName: `${proxy.host}/onepass/${name}`,
          tag: '1',
          platform: { os: 'linux', architecture: 'amd64' },
          finalImageName: `${anon.host}/onepass/${name}`,
          cache: new BlobCache(await mkdtemp(join(tmpdir(), 'lading-onepass-cache-'))),
          want: { dockerTools: true, nix2container: false },
        });
        assert.equal(
          toNix32(r.dockerTools!.hash.bytes),
          await skopeoFlat(`onepass/${name}`, '1', `${anon.host}/onepass/${name}:1`),
        );
      } finally {
        await pool.close();
      }
    });
  }
});
