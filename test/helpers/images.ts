import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import tar from 'tar-stream';
import { removeAtExit, requireBin, run } from './bins.ts';
import type { TestRegistry } from './registry.ts';

/** One tar entry of a test layer. */
export interface EntrySpec {
  path: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo';
  content?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
  /** Seconds since the epoch (default 0). */
  mtime?: number;
  /** PAX extended header records (e.g. `SCHILY.xattr.user.x`). */
  pax?: Record<string, string>;
  /** Device numbers of a character device. */
  devmajor?: number;
  devminor?: number;
}

/** A whiteout entry deleting `path` (`dir/.wh.name`) in the layers below. */
export function whiteout(path: string): EntrySpec {
  const i = path.replace(/\/$/, '').lastIndexOf('/');
  return { path: `${path.slice(0, i + 1)}.wh.${path.replace(/\/$/, '').slice(i + 1)}`, content: '' };
}

/** An opaque-directory marker (`dir/.wh..wh..opq`): hides what lower layers have in `dir`. */
export function opaqueWhiteout(dir: string): EntrySpec {
  return { path: `${dir.replace(/\/$/, '')}/.wh..wh..opq`, content: '' };
}

export interface LayerSpec {
  entries: EntrySpec[];
  /** `gzip-2` is gzip in two members: its trailer's ISIZE covers only the second half. */
  compression?: 'gzip' | 'gzip-2' | 'zstd' | 'none';
  /** A layer tar made by another tool (GNU tar), used instead of `entries` (then compressed). */
  tar?: Buffer;
  /** The manifest's media type for the layer, whatever its compression really is. */
  mediaType?: string;
}

export interface ImageSpec {
  layers: LayerSpec[];
  os?: string;
  architecture?: string;
  variant?: string;
  config?: Record<string, unknown>;
  /** Extra top-level config keys. */
  extra?: Record<string, unknown>;
  /**
   * When every spec of a {@link buildLayout} call has one, the layout is built once and cached under
   * `os.tmpdir()/lading-test-images/` (keyed by it and the tag); the cached layout must not be modified.
   */
  cacheKey?: string;
}

export interface BuiltImage {
  manifest: Buffer;
  manifestDigest: string;
  config: Buffer;
  configDigest: string;
  layers: { digest: string; diffId: string; size: number; mediaType: string; uncompressed: Buffer }[];
}

export interface BuiltLayout {
  dir: string;
  tag: string;
  /** Digest of what the tag points at (an index for multi-arch layouts). */
  digest: string;
  images: BuiltImage[];
}

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Builds a layer tar in memory (deterministic: mtime 0 unless given). */
export async function layerTar(entries: EntrySpec[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  for (const e of entries) {
    const type = e.type ?? 'file';
    const header: Partial<tar.Header> & { name: string } = {
      name: e.path,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : type === 'symlink' ? 0o777 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: new Date((e.mtime ?? 0) * 1000),
    };
    if (e.linkname !== undefined) header.linkname = e.linkname;
    if (e.pax !== undefined) header.pax = e.pax;
    if (e.devmajor !== undefined) header.devmajor = e.devmajor;
    if (e.devminor !== undefined) header.devminor = e.devminor;
    if (type === 'file') {
      const body = Buffer.from(e.content ?? '');
      await new Promise<void>((resolve, reject) =>
        pack.entry({ ...header, size: body.length }, body, (err) => (err ? reject(err) : resolve())),
      );
    } else {
      await new Promise<void>((resolve, reject) =>
        pack.entry(header, (err) => (err ? reject(err) : resolve())),
      );
    }
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

async function putBlob(dir: string, data: Buffer): Promise<string> {
  const d = sha(data);
  await writeFile(join(dir, 'blobs', 'sha256', d.slice(7)), data);
  return d;
}

async function buildImage(dir: string, spec: ImageSpec): Promise<BuiltImage> {
  const layers: BuiltImage['layers'] = [];
  for (const l of spec.layers) {
    const raw = l.tar ?? (await layerTar(l.entries));
    const c = l.compression ?? 'gzip';
    const half = raw.length >> 1;
    const blob =
      c === 'gzip'
        ? gzipSync(raw, { level: 1 })
        : c === 'gzip-2'
          ? Buffer.concat([gzipSync(raw.subarray(0, half)), gzipSync(raw.subarray(half))])
          : c === 'zstd'
            ? zstdCompressSync(raw)
            : raw;
    const digest = await putBlob(dir, blob);
    const suffix = c === 'gzip' || c === 'gzip-2' ? '+gzip' : c === 'zstd' ? '+zstd' : '';
    const mediaType = l.mediaType ?? `application/vnd.oci.image.layer.v1.tar${suffix}`;
    layers.push({ digest, diffId: sha(raw), size: blob.length, mediaType, uncompressed: raw });
  }
  const configJson: Record<string, unknown> = {
    created: '2024-01-02T03:04:05Z',
    architecture: spec.architecture ?? 'amd64',
    os: spec.os ?? 'linux',
    ...(spec.variant ? { variant: spec.variant } : {}),
    config: spec.config ?? { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((_, i) => ({ created: '2024-01-02T03:04:05Z', created_by: `layer ${i}` })),
    ...spec.extra,
  };
  const config = Buffer.from(JSON.stringify(configJson));
  const configDigest = await putBlob(dir, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: configDigest,
        size: config.length,
      },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    }),
  );
  const manifestDigest = await putBlob(dir, manifest);
  return { manifest, manifestDigest, config, configDigest, layers };
}

/**
 * Writes an OCI image layout with one image, or an index of several (each spec's platform),
 * tagged `tag`. Built by the tests' own code, independent of lading's.
 */
export async function buildLayout(
  specs: ImageSpec | ImageSpec[],
  tag = 'latest',
  dir?: string,
): Promise<BuiltLayout> {
  const list = Array.isArray(specs) ? specs : [specs];
  if (dir === undefined && list.length > 0 && list.every((x) => x.cacheKey !== undefined))
    return cachedLayout(specs, tag);
  if (dir === undefined) {
    dir = await mkdtemp(join(tmpdir(), 'lading-img-'));
    removeAtExit(dir);
  }
  return buildInto(specs, tag, dir);
}

/** Bumped whenever the generator's output changes, so old cached layouts are not reused. */
const GENERATOR_VERSION = 2;

interface CachedMeta {
  tag: string;
  digest: string;
  images: (Omit<BuiltImage, 'manifest' | 'config' | 'layers'> & {
    layers: Omit<BuiltImage['layers'][number], 'uncompressed'>[];
  })[];
}

/** Where cached layouts live. */
export const IMAGE_CACHE_DIR = join(tmpdir(), 'lading-test-images');

async function cachedLayout(specs: ImageSpec | ImageSpec[], tag: string): Promise<BuiltLayout> {
  const list = Array.isArray(specs) ? specs : [specs];
  const key = createHash('sha256')
    .update(JSON.stringify([GENERATOR_VERSION, Array.isArray(specs), tag, list.map((x) => x.cacheKey)]))
    .digest('hex')
    .slice(0, 24);
  const dir = join(IMAGE_CACHE_DIR, key);
  try {
    return loadCached(dir, JSON.parse(await readFile(join(dir, 'built.json'), 'utf8')) as CachedMeta);
  } catch {
    // not cached yet (or incomplete): build it
  }
  await mkdir(IMAGE_CACHE_DIR, { recursive: true });
  const tmp = join(IMAGE_CACHE_DIR, `.tmp-${key}-${randomBytes(4).toString('hex')}`);
  removeAtExit(tmp);
  const built = await buildInto(specs, tag, tmp);
  const meta: CachedMeta = {
    tag,
    digest: built.digest,
    images: built.images.map((im) => ({
      manifestDigest: im.manifestDigest,
      configDigest: im.configDigest,
      layers: im.layers.map(({ uncompressed: _, ...l }) => l),
    })),
  };
  await writeFile(join(tmp, 'built.json'), JSON.stringify(meta));
  try {
    await rename(tmp, dir);
  } catch {
    // Another process cached it first: use theirs.
    await rm(tmp, { recursive: true, force: true });
  }
  return loadCached(dir, JSON.parse(await readFile(join(dir, 'built.json'), 'utf8')) as CachedMeta);
}

async function loadCached(dir: string, meta: CachedMeta): Promise<BuiltLayout> {
  const blob = (d: string): string => join(dir, 'blobs', 'sha256', d.slice(7));
  const images: BuiltImage[] = [];
  for (const im of meta.images) {
    images.push({
      manifestDigest: im.manifestDigest,
      configDigest: im.configDigest,
      manifest: await readFile(blob(im.manifestDigest)),
      config: await readFile(blob(im.configDigest)),
      layers: im.layers.map((l) => {
        let raw: Buffer | undefined;
        // Decompressed on first use only: big layouts stay out of memory.
        return Object.defineProperty({ ...l } as BuiltImage['layers'][number], 'uncompressed', {
          enumerable: true,
          get(): Buffer {
            if (raw === undefined) {
              const data = readFileSync(blob(l.digest));
              raw = l.mediaType.endsWith('+gzip')
                ? gunzipSync(data)
                : l.mediaType.endsWith('+zstd')
                  ? zstdDecompressSync(data)
                  : data;
            }
            return raw;
          },
        });
      }),
    });
  }
  return { dir, tag: meta.tag, digest: meta.digest, images };
}

async function buildInto(specs: ImageSpec | ImageSpec[], tag: string, root: string): Promise<BuiltLayout> {
  await mkdir(join(root, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(root, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const list = Array.isArray(specs) ? specs : [specs];
  const images: BuiltImage[] = [];
  for (const s of list) images.push(await buildImage(root, s));
  let top: { mediaType: string; digest: string; size: number };
  if (Array.isArray(specs)) {
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: images.map((im, i) => ({
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: im.manifestDigest,
          size: im.manifest.length,
          platform: {
            os: list[i]!.os ?? 'linux',
            architecture: list[i]!.architecture ?? 'amd64',
            ...(list[i]!.variant ? { variant: list[i]!.variant } : {}),
          },
        })),
      }),
    );
    top = {
      mediaType: 'application/vnd.oci.image.index.v1+json',
      digest: await putBlob(root, index),
      size: index.length,
    };
  } else {
    const im = images[0]!;
    top = {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: im.manifestDigest,
      size: im.manifest.length,
    };
  }
  await writeFile(
    join(root, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ ...top, annotations: { 'org.opencontainers.image.ref.name': tag } }],
    }),
  );
  return { dir: root, tag, digest: top.digest, images };
}

/** Where to push: a test registry, or anything with a `host` (a fault proxy) plus its auth. */
export interface PushTarget {
  host: string;
  mode?: TestRegistry['mode'];
  users?: Record<string, string>;
  /** `https` for a TLS registry (default `http`). */
  url?: string;
}

export interface PushOptions {
  /** Convert with skopeo (`v2s2`: Docker schema2 manifests and manifest lists); default keeps the OCI bytes. */
  format?: 'oci' | 'v2s2';
  /** Push every instance of an index (default when the layout has several images). */
  all?: boolean;
  /** `USER:PASS`; default the registry's first user when it needs auth; `false` for none. */
  creds?: string | false;
}

function defaultCreds(registry: PushTarget, creds: string | false | undefined): string | undefined {
  if (creds === false) return undefined;
  if (creds !== undefined) return creds;
  if (!registry.mode || registry.mode === 'none' || !registry.users) return undefined;
  const first = Object.entries(registry.users)[0];
  return first ? `${first[0]}:${first[1]}` : undefined;
}

/**
 * Pushes a layout to a registry with `skopeo copy oci:DIR:TAG docker://HOST/TARGET`. Without
 * `format` the digests are kept (`--preserve-digests`); `format: 'v2s2'` converts OCI manifests to
 * Docker schema2 and an OCI index to a Docker manifest list (skopeo 1.9.3 does both).
 */
export async function pushLayout(
  layout: BuiltLayout,
  registry: PushTarget,
  target: string,
  opts: PushOptions = {},
): Promise<void> {
  await skopeoPush(layout.dir, layout.tag, registry, target, {
    ...opts,
    all: opts.all || layout.images.length > 1,
  });
}

/** {@link pushLayout} for a layout given by its directory (tag from `layoutTag`, default `latest`). */
export async function pushImage(
  layout: BuiltLayout | string,
  registry: PushTarget,
  target: string,
  opts: PushOptions & { layoutTag?: string } = {},
): Promise<void> {
  if (typeof layout !== 'string') return pushLayout(layout, registry, target, opts);
  await skopeoPush(layout, opts.layoutTag ?? 'latest', registry, target, opts);
}

async function skopeoPush(
  dir: string,
  tag: string,
  registry: PushTarget,
  target: string,
  opts: PushOptions,
): Promise<void> {
  requireBin('skopeo');
  const args = ['copy', '--insecure-policy', '--dest-tls-verify=false', '-q'];
  const creds = defaultCreds(registry, opts.creds);
  if (creds) args.push('--dest-creds', creds);
  // Keep blobs as built (skopeo would compress uncompressed layers); a format conversion changes digests anyway.
  if (opts.format) args.push('--format', opts.format);
  else args.push('--preserve-digests');
  if (opts.all) args.push('--all');
  args.push(`oci:${dir}:${tag}`, `docker://${registry.host}/${target}`);
  // HOME elsewhere: no auth file of the machine's user is read.
  const env = { ...process.env, HOME: tmpdir() };
  const first = await run('skopeo', args, { env, allowFail: true });
  if (first.code === 0) return;
  // skopeo 1.9 reuses blobs it remembers (its blob-info cache in /var/lib/containers/cache) from
  // earlier registries that had the same port; under parallel pushes this rarely ends in "manifest
  // blob unknown". A second push uploads what is missing.
  if (/blob unknown|digest invalid/.test(first.stderr)) await run('skopeo', args, { env });
  else throw new Error(`skopeo ${args.join(' ')} exited ${first.code}: ${first.stderr.trim()}`);
}

// ---- plain HTTP pushes (for manifests skopeo would not write byte for byte) -------------------

export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

/**
 * `fetch` against a test registry with its auth: Basic directly, or a bearer token fetched from the
 * challenge's realm (with `service` and `scope=repository:REPO:pull,push`).
 */
export async function registryFetch(
  registry: PushTarget,
  repo: string,
  path: string,
  init: RequestInit & { creds?: string | false } = {},
): Promise<Response> {
  const base = registry.url ?? `http://${registry.host}`;
  const url = path.startsWith('http') ? path : `${base}${path}`;
  const creds = defaultCreds(registry, init.creds);
  const basic = creds ? `Basic ${Buffer.from(creds).toString('base64')}` : undefined;
  const headers = new Headers(init.headers);
  if (registry.mode === 'basic' && basic) headers.set('authorization', basic);
  let res = await fetch(url, { ...init, headers, redirect: 'manual' });
  const challenge = res.headers.get('www-authenticate');
  if (res.status === 401 && challenge?.startsWith('Basic ') && basic && !headers.has('authorization')) {
    await res.arrayBuffer();
    headers.set('authorization', basic);
    res = await fetch(url, { ...init, headers, redirect: 'manual' });
  } else if (res.status === 401 && challenge?.startsWith('Bearer ')) {
    await res.arrayBuffer();
    const params = Object.fromEntries(
      [...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!] as const),
    );
    const t = new URL(params.realm!);
    if (params.service) t.searchParams.set('service', params.service);
    t.searchParams.set('scope', `repository:${repo}:pull,push`);
    const tr = await fetch(t, basic ? { headers: { authorization: basic } } : {});
    if (!tr.ok) throw new Error(`token request for ${repo} failed: ${tr.status}`);
    const { token } = (await tr.json()) as { token: string };
    headers.set('authorization', `Bearer ${token}`);
    res = await fetch(url, { ...init, headers, redirect: 'manual' });
  }
  return res;
}

async function expectStatus(res: Response, want: number, what: string): Promise<Response> {
  if (res.status !== want)
    throw new Error(`${what}: HTTP ${res.status}: ${(await res.text()).slice(0, 500)}`);
  return res;
}

/** Uploads a blob monolithically (POST, then PUT with the digest); skips it when HEAD finds it. */
export async function pushBlob(registry: PushTarget, repo: string, data: Buffer): Promise<string> {
  const digest = sha(data);
  const head = await registryFetch(registry, repo, `/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
  if (head.status === 200) return digest;
  const start = await expectStatus(
    await registryFetch(registry, repo, `/v2/${repo}/blobs/uploads/`, { method: 'POST' }),
    202,
    `upload start in ${repo}`,
  );
  await start.arrayBuffer();
  const loc = new URL(start.headers.get('location')!, registry.url ?? `http://${registry.host}`);
  loc.searchParams.set('digest', digest);
  const put = await registryFetch(registry, repo, loc.href, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream' },
    body: new Uint8Array(data),
  });
  await expectStatus(put, 201, `upload of ${digest} to ${repo}`);
  await put.arrayBuffer();
  return digest;
}

/** PUTs manifest bytes as they are under `reference` (a tag or a digest); returns their digest. */
export async function pushManifest(
  registry: PushTarget,
  repo: string,
  reference: string,
  manifest: Buffer,
  mediaType: string,
): Promise<string> {
  const res = await registryFetch(registry, repo, `/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'content-type': mediaType },
    body: new Uint8Array(manifest),
  });
  await expectStatus(res, 201, `manifest PUT ${repo}:${reference}`);
  await res.arrayBuffer();
  return sha(manifest);
}

/**
 * Pushes a built layout with plain HTTP, bytes unchanged: every blob, every image manifest (by
 * digest) and the top manifest or index under `tag`. Returns the top digest.
 */
export async function pushLayoutRaw(
  layout: BuiltLayout,
  registry: PushTarget,
  repo: string,
  tag = layout.tag,
): Promise<string> {
  for (const im of layout.images) {
    for (const l of im.layers) {
      const data = await readFile(join(layout.dir, 'blobs', 'sha256', l.digest.slice(7)));
      await pushBlob(registry, repo, data);
    }
    await pushBlob(registry, repo, im.config);
    if (layout.images.length > 1)
      await pushManifest(registry, repo, im.manifestDigest, im.manifest, MEDIA_TYPES.ociManifest);
  }
  const top = await readFile(join(layout.dir, 'blobs', 'sha256', layout.digest.slice(7)));
  const mt = (JSON.parse(top.toString('utf8')) as { mediaType: string }).mediaType;
  return pushManifest(registry, repo, tag, top, mt);
}

/** A small three-layer image with files, a symlink and an executable. */
export function smallImage(seed = 'small'): ImageSpec {
  return {
    layers: [
      {
        entries: [
          { path: 'etc/', type: 'directory' },
          { path: 'etc/os-release', content: `ID=${seed}\n` },
        ],
      },
      {
        entries: [
          { path: 'usr/', type: 'directory' },
          { path: 'usr/bin/', type: 'directory' },
          { path: 'usr/bin/hello', content: '#!/bin/sh\necho hello\n', mode: 0o755 },
        ],
      },
      {
        entries: [
          { path: 'bin', type: 'symlink', linkname: 'usr/bin' },
          { path: `data-${seed}.txt`, content: seed.repeat(100) },
        ],
      },
    ],
  };
}

/** The platforms of {@link multiArchImage}. */
export const MULTI_ARCH = [
  { os: 'linux', architecture: 'amd64' },
  { os: 'linux', architecture: 'arm64', variant: 'v8' },
  { os: 'linux', architecture: 'arm', variant: 'v7' },
];

export function multiArchImage(): ImageSpec[] {
  return MULTI_ARCH.map((p) => ({
    ...p,
    layers: [{ entries: [{ path: 'arch.txt', content: `${p.architecture}${p.variant ?? ''}\n` }] }],
  }));
}

/** Deterministic pseudo-random bytes (AES-CTR over zeros): fast and the same every run. */
export function prng(seed: string, n: number): Buffer {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const c = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return Buffer.concat([c.update(Buffer.alloc(n)), c.final()]);
}

/**
 * A large image: four data layers of `sizeMiB / 4` (5/8 random bytes, 3/8 repetitive text: gzip
 * takes 200 MiB to about 130 MB) plus a small top layer with an executable. Deterministic; its
 * layers are generated only when read, and {@link buildLayout} caches the built layout on disk, so
 * a second run (or test file) costs a few milliseconds.
 */
export function bigImage(sizeMiB: number): ImageSpec {
  let layers: LayerSpec[] | undefined;
  return {
    cacheKey: `big:${sizeMiB}`,
    get layers(): LayerSpec[] {
      layers ??= bigLayers(sizeMiB);
      return layers;
    },
  };
}

function bigLayers(sizeMiB: number): LayerSpec[] {
  const per = Math.floor((sizeMiB * 1024 * 1024) / 4);
  const layers: LayerSpec[] = [0, 1, 2, 3].map((i) => {
    const files = [0, 1, 2, 3].map((j) => {
      const size = Math.floor(per / 4);
      const random = Math.floor((size * 5) / 8);
      const text = Buffer.from(
        `line ${i}.${j} of a fairly repetitive log file with some numbers ${i * j}\n`.repeat(
          Math.ceil((size - random) / 40),
        ),
      ).subarray(0, size - random);
      return {
        path: `data/l${i}/f${j}.bin`,
        content: Buffer.concat([prng(`${i}/${j}`, random), text]),
        mode: j === 0 ? 0o755 : 0o644,
      };
    });
    return {
      entries: [
        { path: 'data/', type: 'directory' as const },
        { path: `data/l${i}/`, type: 'directory' as const },
        ...files,
      ],
    };
  });
  layers.push({
    entries: [
      { path: 'usr/', type: 'directory' },
      { path: 'usr/bin/', type: 'directory' },
      { path: 'usr/bin/tool', content: '#!/bin/sh\necho tool\n', mode: 0o755 },
    ],
  });
  return layers;
}

/** The same spec with every layer compressed as `compression` (a twin of a gzip image). */
export function withCompression(spec: ImageSpec, compression: 'gzip' | 'zstd' | 'none'): ImageSpec {
  const { cacheKey, ...rest } = spec;
  return {
    ...rest,
    layers: spec.layers.map((l) => ({ ...l, compression })),
    ...(cacheKey ? { cacheKey: `${cacheKey}/${compression}` } : {}),
  };
}

/** {@link smallImage} with zstd layers (`application/vnd.oci.image.layer.v1.tar+zstd`). */
export function zstdImage(seed = 'small'): ImageSpec {
  return withCompression(smallImage(seed), 'zstd');
}

/** {@link smallImage} with uncompressed layers (`application/vnd.oci.image.layer.v1.tar`). */
export function uncompressedImage(seed = 'small'): ImageSpec {
  return withCompression(smallImage(seed), 'none');
}

/** An image whose manifest lists the same layer blob twice (layers 0 and 2), as some builders write. */
export function sameLayerTwiceImage(): ImageSpec {
  const shared: LayerSpec = { entries: [{ path: 'shared.txt', content: 'the same layer twice\n' }] };
  return {
    layers: [shared, { entries: [{ path: 'shared.txt', content: 'overwritten in between\n' }] }, shared],
  };
}

/**
 * Layers that exercise the unpackers: hard links, symlinks, owners and modes, a whiteout and an
 * opaque directory (written by hand: umoci repack never writes opaque markers).
 */
export function whiteoutImage(): ImageSpec {
  return {
    layers: [
      {
        entries: [
          { path: 'etc/', type: 'directory' },
          { path: 'etc/gone.conf', content: 'deleted above\n' },
          { path: 'etc/kept.conf', content: 'kept\n', uid: 1000, gid: 1000, mode: 0o600 },
          {
            path: 'etc/kept-link',
            type: 'link',
            linkname: 'etc/kept.conf',
            uid: 1000,
            gid: 1000,
            mode: 0o600,
          },
          { path: 'var/', type: 'directory' },
          { path: 'var/cache/', type: 'directory' },
          { path: 'var/cache/old-1', content: 'old\n' },
          { path: 'var/cache/old-2', content: 'old\n' },
        ],
      },
      {
        entries: [
          whiteout('etc/gone.conf'),
          { path: 'var/cache/', type: 'directory' },
          opaqueWhiteout('var/cache'),
          { path: 'var/cache/new', content: 'new\n' },
          { path: 'etc/motd', type: 'symlink', linkname: '../var/cache/new' },
        ],
      },
    ],
  };
}
