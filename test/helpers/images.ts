import { createCipheriv, createHash } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import tar from 'tar-stream';
import { requireBin, run } from './bins.ts';
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
  mtime?: number;
}

export interface LayerSpec {
  entries: EntrySpec[];
  compression?: 'gzip' | 'zstd' | 'none';
}

export interface ImageSpec {
  layers: LayerSpec[];
  os?: string;
  architecture?: string;
  variant?: string;
  config?: Record<string, unknown>;
  /** Extra top-level config keys. */
  extra?: Record<string, unknown>;
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
    const raw = await layerTar(l.entries);
    const c = l.compression ?? 'gzip';
    const blob = c === 'gzip' ? gzipSync(raw, { level: 1 }) : c === 'zstd' ? zstdCompressSync(raw) : raw;
    const digest = await putBlob(dir, blob);
    const mediaType = `application/vnd.oci.image.layer.v1.tar${c === 'gzip' ? '+gzip' : c === 'zstd' ? '+zstd' : ''}`;
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
  const root = dir ?? (await mkdtemp(join(tmpdir(), 'lading-img-')));
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

/** Pushes a layout to a test registry with skopeo (`format` v2s2 converts to Docker manifests). */
export async function pushLayout(
  layout: BuiltLayout,
  registry: TestRegistry,
  target: string,
  opts: { format?: 'oci' | 'v2s2'; all?: boolean } = {},
): Promise<void> {
  requireBin('skopeo');
  const args = ['copy', '--insecure-policy', '--dest-tls-verify=false', '-q'];
  if (registry.mode !== 'none') {
    const [u, p] = Object.entries(registry.users)[0]!;
    args.push('--dest-creds', `${u}:${p}`);
  }
  // Keep blobs as built (skopeo would compress uncompressed layers); a format conversion changes digests anyway.
  if (opts.format) args.push('--format', opts.format);
  else args.push('--preserve-digests');
  if (opts.all || layout.images.length > 1) args.push('--all');
  args.push(`oci:${layout.dir}:${layout.tag}`, `docker://${registry.host}/${target}`);
  await run('skopeo', args, { env: { ...process.env, HOME: tmpdir() } });
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
 * A large image: four data layers of `sizeMiB / 4`, half random and half text (gzip takes it to
 * about half), plus a small top layer with an executable. Deterministic.
 */
export function bigImage(sizeMiB: number): ImageSpec {
  const per = Math.floor((sizeMiB * 1024 * 1024) / 4);
  const layers: LayerSpec[] = [0, 1, 2, 3].map((i) => {
    const files = [0, 1, 2, 3].map((j) => {
      const half = Math.floor(per / 8);
      const text = Buffer.from(
        `line ${i}.${j} of a fairly repetitive log file with some numbers ${i * j}\n`.repeat(
          Math.ceil(half / 40),
        ),
      ).subarray(0, half);
      return {
        path: `data/l${i}/f${j}.bin`,
        content: Buffer.concat([prng(`${i}/${j}`, half), text]),
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
  return { layers };
}
