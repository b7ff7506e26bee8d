import { createReadStream, createWriteStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { type Digest, Limits, readAtMost, sha256 } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import {
  type Descriptor,
  type ImageSource,
  MediaType,
  parseConfig,
  type RawManifest,
} from '../image/index.ts';
import { INFLATE_CHUNK } from '../layers/index.ts';
import type { Reference } from '../reference/index.ts';
import { makeTempDir } from '../util/index.ts';
import { verified } from './files.ts';
import { indexTar, normaliseMemberName, type TarMember } from './tar-index.ts';

interface ArchiveManifestItem {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

interface Prepared {
  path: string;
  members: Map<string, TarMember>;
  item: ArchiveManifestItem;
  manifest: RawManifest;
  blobs: Map<string, TarMember>;
  compressed: Map<string, 'gzip' | 'zstd'>;
}

/**
 * Reads a docker-archive (`docker save` output, or what skopeo and lading write): picks the image
 * by `NAME:TAG`, by `@N`, or the only one, and presents it as a Docker schema2 image whose
 * manifest is synthesised the way containers/image does (compact JSON), so copies keep digests.
 * `-` reads stdin, spooled to a temp file because the archive needs random access.
 */
export class DockerArchiveSource implements ImageSource {
  readonly name: string;
  /** Layers are served uncompressed under containers/image's gzip label. */
  readonly untrustedLayerTypes = true;
  readonly #path: string;
  readonly #ref: Reference | undefined;
  readonly #index: number | undefined;
  readonly #stdin: NodeJS.ReadableStream | undefined;
  #prepared: Promise<Prepared> | undefined;
  #spool: string | undefined;

  constructor(path: string, opts: { ref?: Reference; index?: number; stdin?: NodeJS.ReadableStream } = {}) {
    this.#path = path;
    this.#ref = opts.ref;
    this.#index = opts.index;
    this.#stdin = opts.stdin;
    this.name = `docker-archive:${path}${opts.ref ? `:${opts.ref}` : opts.index !== undefined ? `:@${opts.index}` : ''}`;
  }

  #prepare(): Promise<Prepared> {
    this.#prepared ??= this.#load();
    return this.#prepared;
  }

  async #load(): Promise<Prepared> {
    let path = this.#path;
    if (path === '-') {
      if (!this.#stdin) throw new LadingError(ErrorCode.BadArgument, 'docker-archive:- needs standard input');
      const dir = await makeTempDir(tmpdir(), 'stdin');
      this.#spool = dir;
      path = join(dir, 'archive.tar');
      await pipeline(this.#stdin, createWriteStream(path));
    }
    const list = await indexTar(path);
    const members = new Map<string, TarMember>();
    for (const m of list) members.set(normaliseMemberName(m.name), m);
    const mj = members.get('manifest.json');
    if (!mj) {
      throw new LadingError(ErrorCode.Archive, `${path} is not a docker-archive: it has no manifest.json`, {
        path,
      });
    }
    const raw = await this.#readMember(path, mj, Limits.archiveManifest, 'manifest.json');
    let items: ArchiveManifestItem[];
    try {
      items = JSON.parse(raw.toString('utf8'));
      if (!Array.isArray(items)) throw new Error('not an array');
    } catch (err) {
      throw new LadingError(
        ErrorCode.Archive,
        `${path}: malformed manifest.json (${(err as Error).message})`,
        { path },
      );
    }
    const item = this.#select(items, path);
    const resolve = (name: string, seen = 0): TarMember => {
      const m = members.get(normaliseMemberName(name));
      if (!m)
        throw new LadingError(
          ErrorCode.Archive,
          `${path}: manifest.json names ${JSON.stringify(name)}, which is not in the archive`,
          { path },
        );
      if (m.type === '2' && seen < 8)
        return resolve(posix.join(posix.dirname(normaliseMemberName(name)), m.linkname), seen + 1);
      if (m.type === '1' && seen < 8) return resolve(m.linkname, seen + 1);
      return m;
    };
    const configMember = resolve(item.Config);
    const configBytes = await this.#readMember(path, configMember, Limits.config, item.Config);
    const config = parseConfig(configBytes, `config ${item.Config} in ${path}`);
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== item.Layers.length) {
      throw new LadingError(
        ErrorCode.Archive,
        `${path}: the config lists ${diffIds.length} layers, manifest.json ${item.Layers.length}`,
        { path },
      );
    }
    const blobs = new Map<string, TarMember>();
    const configDigest = sha256(configBytes);
    blobs.set(configDigest, configMember);
    const layers: { mediaType: string; size: number; digest: Digest }[] = [];
    const compressed = new Map<string, 'gzip' | 'zstd'>();
    for (let i = 0; i < item.Layers.length; i++) {
      const m = resolve(item.Layers[i]!);
      const kind = await this.#sniff(path, m);
      const digest = diffIds[i]!;
      let size = m.size;
      if (kind !== 'none') {
        // As containers/image does: present the layer uncompressed, its digest the diffID.
        compressed.set(digest, kind);
        size = await this.#uncompressedSize(path, m, kind);
      }
      blobs.set(digest, m);
      // containers/image labels every docker-archive layer with this (historical) media type.
      layers.push({ mediaType: MediaType.DockerLayerGzip, size, digest });
    }
    // containers/image's Schema2 serialisation: compact JSON, this key order.
    const bytes = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.DockerManifest,
        config: { mediaType: MediaType.DockerConfig, size: configBytes.length, digest: configDigest },
        layers,
      }),
    );
    return {
      path,
      members,
      item,
      blobs,
      compressed,
      manifest: { bytes, digest: sha256(bytes), mediaType: MediaType.DockerManifest },
    };
  }

  #select(items: ArchiveManifestItem[], path: string): ArchiveManifestItem {
    if (this.#index !== undefined) {
      const it = items[this.#index];
      if (!it)
        throw new LadingError(
          ErrorCode.NotFound,
          `${path} has ${items.length} images; there is no @${this.#index}`,
          { path },
        );
      return it;
    }
    if (this.#ref) {
      const want = [String(this.#ref), this.#ref.toFamiliarString()];
      const it = items.find((x) =>
        (x.RepoTags ?? []).some((t) => want.includes(t) || want.includes(`docker.io/${t}`)),
      );
      if (!it) {
        const have = items.flatMap((x) => x.RepoTags ?? []);
        throw new LadingError(
          ErrorCode.NotFound,
          `no image ${this.#ref.toFamiliarString()} in ${path} (it has: ${have.join(', ') || 'untagged images'})`,
          { path },
        );
      }
      return it;
    }
    if (items.length !== 1) {
      throw new LadingError(
        ErrorCode.BadReference,
        `${path} holds ${items.length} images: choose one with :NAME:TAG or :@N`,
        { path },
      );
    }
    return items[0]!;
  }

  async #readMember(path: string, m: TarMember, limit: number, what: string): Promise<Buffer> {
    if (m.size > limit)
      throw new LadingError(ErrorCode.TooLarge, `${what} in ${path} is larger than ${limit} bytes`, { path });
    return readAtMost(this.#open(path, m), limit, what);
  }

  #open(path: string, m: TarMember): Readable {
    if (m.size === 0) return createReadStream(path, { start: 1, end: 0 });
    return createReadStream(path, { start: m.offset, end: m.offset + m.size - 1, highWaterMark: 1 << 20 });
  }

  async #sniff(path: string, m: TarMember): Promise<'gzip' | 'zstd' | 'none'> {
    const fh = await open(path, 'r');
    try {
      const b = Buffer.alloc(4);
      await fh.read(b, 0, Math.min(4, m.size), m.offset);
      if (b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
      if (b.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
      return 'none';
    } finally {
      await fh.close();
    }
  }

  async #uncompressedSize(path: string, m: TarMember, kind: 'gzip' | 'zstd'): Promise<number> {
    let n = 0;
    for await (const c of this.#open(path, m).pipe(decompressor(kind))) n += (c as Buffer).length;
    return n;
  }

  async topManifest(): Promise<RawManifest> {
    return (await this.#prepare()).manifest;
  }

  async manifest(digest: Digest): Promise<RawManifest> {
    const p = await this.#prepare();
    if (digest !== p.manifest.digest)
      throw new LadingError(ErrorCode.NotFound, `no manifest ${digest} in ${this.name}`);
    return p.manifest;
  }

  async blob(desc: Descriptor): Promise<Readable> {
    const p = await this.#prepare();
    const m = p.blobs.get(desc.digest);
    if (!m)
      throw new LadingError(ErrorCode.NotFound, `no blob ${desc.digest} in ${this.name}`, { path: p.path });
    const kind = p.compressed.get(desc.digest);
    const raw = this.#open(p.path, m);
    if (!kind) return verified(raw, desc, `${this.name} (${m.name})`);
    const inflate = decompressor(kind);
    raw.once('error', (err) => inflate.destroy(err));
    inflate.once('close', () => {
      if (!raw.readableEnded) raw.destroy();
    });
    return verified(raw.pipe(inflate), desc, `${this.name} (${m.name})`);
  }

  async close(): Promise<void> {
    if (this.#spool) await rm(this.#spool, { recursive: true, force: true });
  }
}

function decompressor(kind: 'gzip' | 'zstd'): NodeJS.ReadWriteStream & Readable {
  return (kind === 'gzip'
    ? createGunzip({ chunkSize: INFLATE_CHUNK })
    : createZstdDecompress({ chunkSize: INFLATE_CHUNK })) as unknown as NodeJS.ReadWriteStream & Readable;
}
