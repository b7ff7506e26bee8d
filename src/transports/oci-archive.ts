import { createReadStream, createWriteStream } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { type Digest, digestAlgorithm, digestHex, Limits, readAtMost, verifyBytes } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import {
  type BlobSink,
  type Descriptor,
  detectMediaType,
  type ImageSource,
  MediaType,
  parseManifest,
  type RawManifest,
  type ReuseOutcome,
} from '../image/index.ts';
import { ioError, makeTempDir, tempFileBeside } from '../util/index.ts';
import { checkNewFile } from './destination.ts';
import { verified } from './files.ts';
import { OciLayoutSink } from './oci-layout.ts';
import { indexTar, normaliseMemberName, type TarMember } from './tar-index.ts';

const REF_NAME = 'org.opencontainers.image.ref.name';

/** Reads an OCI layout packed in a tar file (`oci-archive:FILE[:TAG]`) by seeking to members. */
export class OciArchiveSource implements ImageSource {
  readonly name: string;
  readonly #path: string;
  readonly #tag: string | undefined;
  readonly #stdin: NodeJS.ReadableStream | undefined;
  /** The file read: FILE, or standard input spooled to a temp file (`-`). */
  #file: string;
  #spool: string | undefined;
  #members: Promise<Map<string, TarMember>> | undefined;

  constructor(path: string, tag?: string, stdin?: NodeJS.ReadableStream) {
    this.#path = path;
    this.#file = path;
    this.#tag = tag;
    this.#stdin = stdin;
    this.name = `oci-archive:${path}${tag ? `:${tag}` : ''}`;
  }

  #index(): Promise<Map<string, TarMember>> {
    this.#members ??= (async () => {
      if (this.#path === '-') {
        // A tar is read by seeking to its members: standard input is kept in a temp file first.
        if (!this.#stdin) throw new LadingError(ErrorCode.BadArgument, 'oci-archive:- needs standard input');
        this.#spool = await makeTempDir(tmpdir(), 'stdin');
        this.#file = join(this.#spool, 'archive.tar');
        await pipeline(this.#stdin, createWriteStream(this.#file));
      }
      const list = await indexTar(this.#file);
      return new Map(list.map((m) => [normaliseMemberName(m.name), m]));
    })();
    return this.#members;
  }

  async #member(name: string, what: string): Promise<TarMember> {
    const m = (await this.#index()).get(name);
    if (!m)
      throw new LadingError(ErrorCode.NotFound, `${what} missing from ${this.#path}`, { path: this.#path });
    return m;
  }

  #open(m: TarMember): Readable {
    if (m.size === 0) return createReadStream(this.#file, { start: 1, end: 0 });
    return createReadStream(this.#file, {
      start: m.offset,
      end: m.offset + m.size - 1,
      highWaterMark: 1 << 20,
    });
  }

  async topManifest(): Promise<RawManifest> {
    const im = await this.#member('index.json', 'index.json');
    const bytes = await readAtMost(this.#open(im), Limits.manifest, 'index.json');
    const index = parseManifest(bytes, MediaType.OciIndex, this.name);
    if (index.kind !== 'index')
      throw new LadingError(ErrorCode.Archive, `${this.#path}: index.json is not an index`);
    const d = this.#tag
      ? index.manifests.find((m) => m.annotations?.[REF_NAME] === this.#tag)
      : index.manifests.length === 1
        ? index.manifests[0]
        : undefined;
    if (!d) {
      throw new LadingError(
        this.#tag ? ErrorCode.NotFound : ErrorCode.BadReference,
        this.#tag
          ? `no image tagged ${JSON.stringify(this.#tag)} in ${this.#path}`
          : `${this.#path} holds ${index.manifests.length} images: name one as oci-archive:FILE:TAG`,
        { path: this.#path },
      );
    }
    return this.manifest(d.digest);
  }

  async manifest(digest: Digest): Promise<RawManifest> {
    const m = await this.#member(
      `blobs/${digestAlgorithm(digest)}/${digestHex(digest)}`,
      `manifest ${digest}`,
    );
    const bytes = await readAtMost(this.#open(m), Limits.manifest, `manifest ${digest}`);
    verifyBytes(bytes, digest, undefined, this.name);
    return { bytes, digest, mediaType: detectMediaType(JSON.parse(bytes.toString('utf8'))) };
  }

  async blob(desc: Descriptor): Promise<Readable> {
    const m = await this.#member(
      `blobs/${digestAlgorithm(desc.digest)}/${digestHex(desc.digest)}`,
      `blob ${desc.digest}`,
    );
    return verified(this.#open(m), desc, `${this.name} (${m.name})`);
  }

  async close(): Promise<void> {
    if (this.#spool) await rm(this.#spool, { recursive: true, force: true });
  }
}

/**
 * Writes an OCI layout into a tar file. The layout is staged in a temp directory, packed into a
 * temp file beside FILE, and renamed into place on commit (`-` streams the tar to `out`).
 */
export class OciArchiveSink implements BlobSink {
  readonly kind = 'blobs';
  readonly name: string;
  readonly acceptsIndex = true;
  readonly ociOnly = true;
  readonly #path: string;
  readonly #out: NodeJS.WritableStream | undefined;
  #stage: string | undefined;
  #layout: Promise<OciLayoutSink> | undefined;
  readonly #tag: string | undefined;

  constructor(path: string, tag?: string, out?: NodeJS.WritableStream) {
    this.#path = path;
    this.#tag = tag;
    this.#out = out;
    this.name = `oci-archive:${path}${tag ? `:${tag}` : ''}`;
  }

  #sink(): Promise<OciLayoutSink> {
    // One promise: blobs are put in parallel, and each must find the same staged layout.
    this.#layout ??= (async () => {
      if (this.#path !== '-') await checkNewFile(this.name, this.#path);
      this.#stage = await makeTempDir(tmpdir(), 'oci-archive');
      return new OciLayoutSink(join(this.#stage, 'layout'), this.#tag);
    })();
    return this.#layout;
  }

  async reuseBlob(desc: Descriptor): Promise<ReuseOutcome | undefined> {
    return (await this.#sink()).reuseBlob(desc);
  }

  async putBlob(desc: Descriptor, open: () => Promise<Readable>): Promise<void> {
    await (await this.#sink()).putBlob(desc, open);
  }

  async putManifest(m: RawManifest, top: boolean): Promise<void> {
    await (await this.#sink()).putManifest(m, top);
  }

  async commit(): Promise<void> {
    const layout = await this.#sink();
    await layout.commit();
    const root = layout.root;
    const pack = tar.pack();
    const files: string[] = ['oci-layout', 'index.json'];
    for (const alg of await readdir(join(root, 'blobs'))) {
      for (const f of (await readdir(join(root, 'blobs', alg))).sort()) files.push(`blobs/${alg}/${f}`);
    }
    const feed = (async () => {
      pack.entry({ name: 'blobs/', type: 'directory', mode: 0o755, mtime: new Date(0) });
      for (const alg of await readdir(join(root, 'blobs'))) {
        pack.entry({ name: `blobs/${alg}/`, type: 'directory', mode: 0o755, mtime: new Date(0) });
      }
      for (const f of files) {
        const p = join(root, f);
        const size = (await stat(p)).size;
        const entry = pack.entry({ name: f, size, mode: 0o644, mtime: new Date(0) });
        await pipeline(createReadStream(p, { highWaterMark: 1 << 20 }), entry);
      }
      pack.finalize();
    })();
    if (this.#path === '-') {
      await Promise.all([feed, pipeline(pack, this.#out as NodeJS.WritableStream, { end: false })]);
    } else {
      const tmp = await tempFileBeside(this.#path);
      try {
        await Promise.all([feed, pipeline(pack, createWriteStream(tmp, { flags: 'wx' }))]);
        const { link } = await import('node:fs/promises');
        await link(tmp, this.#path).catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'EEXIST')
            throw new LadingError(
              ErrorCode.Exists,
              `${this.name}: ${this.#path} appeared while the archive was written; refusing to overwrite it`,
              { path: this.#path },
            );
          throw err;
        });
      } catch (err) {
        throw ioError(err, this.#path);
      } finally {
        await rm(tmp, { force: true });
      }
    }
    await this.abort();
  }

  async abort(): Promise<void> {
    await this.#layout?.catch(() => {});
    if (this.#stage) await rm(this.#stage, { recursive: true, force: true });
  }
}
