import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { type Digest, digestAlgorithm, digestHex } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import {
  type BlobReader,
  type BlobSink,
  type Descriptor,
  detectMediaType,
  type ImageSource,
  MediaType,
  parseManifest,
  type RawManifest,
  type ReuseOutcome,
} from '../image/index.ts';
import {
  holdTemp,
  releaseTemp,
  sweepStaleTemps,
  tempFileBeside,
  withFileLock,
  writeFileAtomic,
} from '../util/index.ts';
import { checkOciDestination } from './destination.ts';
import {
  fileTail,
  layerSizeHintFrom,
  openBlobFile,
  readSmallFile,
  writeBlobFile,
  writeBlobFileFrom,
} from './files.ts';

const REF_NAME = 'org.opencontainers.image.ref.name';
const LAYOUT_FILE = '{"imageLayoutVersion": "1.0.0"}';

/**
 * Writes the `oci-layout` marker whole or not at all: beside the directory first, then renamed in.
 * Another copy into the same new layout, checking it meanwhile, sees an empty directory or a
 * layout, never an empty marker file (which it would refuse as a foreign directory).
 */
async function markLayout(root: string): Promise<void> {
  const tmp = await tempFileBeside(root);
  try {
    await writeFile(tmp, LAYOUT_FILE);
    await rename(tmp, join(root, 'oci-layout'));
  } finally {
    await rm(tmp, { force: true });
    releaseTemp(tmp);
  }
}

/** Splits `DIR[:TAG]` at the first colon, as containers/image does. */
export function splitPathAndTag(details: string): { path: string; tag: string | undefined } {
  const i = details.indexOf(':');
  if (i === -1) return { path: details, tag: undefined };
  return { path: details.slice(0, i), tag: details.slice(i + 1) || undefined };
}

function blobPath(root: string, digest: Digest): string {
  return join(root, 'blobs', digestAlgorithm(digest), digestHex(digest));
}

interface OciIndexFile {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

async function readIndex(root: string): Promise<OciIndexFile> {
  const bytes = await readSmallFile(join(root, 'index.json'), 'OCI layout index.json');
  const m = parseManifest(bytes, MediaType.OciIndex, `oci:${root}`);
  if (m.kind !== 'index')
    throw new LadingError(ErrorCode.Archive, `${root}/index.json is not an OCI index`, { path: root });
  return {
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: m.manifests,
    annotations: m.annotations,
  };
}

/** Reads an OCI image layout directory (`oci:DIR[:TAG]`). */
export class OciLayoutSource implements ImageSource {
  readonly name: string;
  readonly root: string;
  readonly tag: string | undefined;

  constructor(root: string, tag?: string) {
    this.root = root;
    this.tag = tag;
    this.name = `oci:${root}${tag ? `:${tag}` : ''}`;
  }

  async #topDescriptor(): Promise<Descriptor> {
    const index = await readIndex(this.root);
    if (this.tag) {
      const d = index.manifests.find((m) => m.annotations?.[REF_NAME] === this.tag);
      if (!d) {
        const tags = index.manifests.map((m) => m.annotations?.[REF_NAME]).filter(Boolean);
        throw new LadingError(
          ErrorCode.NotFound,
          `no image tagged ${JSON.stringify(this.tag)} in ${this.root} (it has: ${tags.join(', ') || 'no tags'})`,
          { path: this.root },
        );
      }
      return d;
    }
    if (index.manifests.length !== 1) {
      throw new LadingError(
        ErrorCode.BadReference,
        `${this.root} holds ${index.manifests.length} images: name one as oci:${this.root}:TAG`,
        { path: this.root },
      );
    }
    return index.manifests[0]!;
  }

  async topManifest(): Promise<RawManifest> {
    const d = await this.#topDescriptor();
    return this.manifest(d.digest);
  }

  async manifest(digest: Digest): Promise<RawManifest> {
    const bytes = await readSmallFile(blobPath(this.root, digest), `manifest ${digest}`, digest);
    const json = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    return { bytes, digest, mediaType: detectMediaType(json) };
  }

  blob(desc: Descriptor): Promise<Readable> {
    return openBlobFile(blobPath(this.root, desc.digest), desc, this.root);
  }

  layerSizeHint(desc: Descriptor): Promise<number | undefined> {
    return layerSizeHintFrom(desc, (n) => fileTail(blobPath(this.root, desc.digest), n));
  }

  async close(): Promise<void> {}
}

/** Writes into an OCI image layout (`oci:DIR[:TAG]`); an existing layout gains the image. */
export class OciLayoutSink implements BlobSink {
  readonly kind = 'blobs';
  readonly name: string;
  readonly root: string;
  readonly tag: string | undefined;
  readonly acceptsIndex = true;
  readonly ociOnly = true;
  #created = false;
  #written: string[] = [];
  #top: RawManifest | undefined;
  #ready: Promise<void> | undefined;

  constructor(root: string, tag?: string) {
    this.root = root;
    this.tag = tag;
    this.name = `oci:${root}${tag ? `:${tag}` : ''}`;
  }

  #prepare(): Promise<void> {
    this.#ready ??= (async () => {
      const entries = await checkOciDestination(this.name, this.root);
      if (!entries) {
        this.#created = true;
        // Made by this copy: an interrupted command removes it (a killed one leaves a layout
        // without index.json, which the same command, run again, completes).
        holdTemp(this.root);
      }
      // Mark the directory as a layout at once, so a copy killed half-way can simply be rerun, and
      // before anything else appears in it: another copy into the same new layout, looking now,
      // sees a layout, never a directory with only blobs/.
      await mkdir(this.root, { recursive: true });
      if (!entries?.includes('oci-layout')) await markLayout(this.root);
      await mkdir(join(this.root, 'blobs', 'sha256'), { recursive: true });
      await sweepStaleTemps(join(this.root, 'blobs', 'sha256'));
    })();
    return this.#ready;
  }

  async reuseBlob(desc: Descriptor): Promise<ReuseOutcome | undefined> {
    await this.#prepare();
    try {
      return (await stat(blobPath(this.root, desc.digest))).size === desc.size ? 'exists' : undefined;
    } catch {
      return undefined;
    }
  }

  async putBlob(desc: Descriptor, open: () => Promise<Readable>): Promise<void> {
    await this.#prepare();
    const path = blobPath(this.root, desc.digest);
    // Like containers/image's OCI destination: blobs are renamed into place without fsync
    // (content-addressed and verified on read); index.json, the commit point, is synced.
    await writeBlobFile(path, await open(), desc, 0o644, false);
    this.#written.push(path);
  }

  async putBlobFrom(desc: Descriptor, reader: BlobReader): Promise<void> {
    await this.#prepare();
    const path = blobPath(this.root, desc.digest);
    await writeBlobFileFrom(path, desc, reader, { fsync: false });
    this.#written.push(path);
  }

  async putManifest(m: RawManifest, top: boolean): Promise<void> {
    await this.#prepare();
    const path = blobPath(this.root, m.digest);
    await mkdir(join(path, '..'), { recursive: true });
    await writeFileAtomic(path, m.bytes);
    this.#written.push(path);
    if (top) this.#top = m;
  }

  async commit(): Promise<void> {
    await this.#prepare();
    const top = this.#top;
    if (!top) throw new LadingError(ErrorCode.Internal, `no manifest was written to ${this.name}`);
    // Read, change and write index.json under an exclusive lock: concurrent copies into one
    // layout each keep their tag (without it, 6-9 of 10 survived).
    await withFileLock(join(this.root, 'index.json.lock'), `index.json of ${this.root}`, () =>
      this.#updateIndex(top),
    );
    releaseTemp(this.root);
  }

  async #updateIndex(top: RawManifest): Promise<void> {
    let index: OciIndexFile;
    try {
      index = await readIndex(this.root);
    } catch (err) {
      if ((err as LadingError).code !== ErrorCode.NotFound) throw err;
      index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
    }
    const desc: Descriptor = { mediaType: top.mediaType, digest: top.digest, size: top.bytes.length };
    if (this.tag) desc.annotations = { [REF_NAME]: this.tag };
    // A tag moves to the new image; an untagged write replaces an identical untagged entry.
    index.manifests = index.manifests.filter((m) =>
      this.tag
        ? m.annotations?.[REF_NAME] !== this.tag
        : !(m.digest === top.digest && !m.annotations?.[REF_NAME]),
    );
    index.manifests.push(desc);
    const out: Record<string, unknown> = {
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: index.manifests,
    };
    if (index.annotations) out.annotations = index.annotations;
    await markLayout(this.root);
    await writeFileAtomic(join(this.root, 'index.json'), JSON.stringify(out));
  }

  async abort(): Promise<void> {
    if (this.#created) await rm(this.root, { recursive: true, force: true });
    else await Promise.all(this.#written.map((p) => rm(p, { force: true })));
  }
}
