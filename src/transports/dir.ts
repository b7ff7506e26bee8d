import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { type Digest, digestHex } from '../digest/index.ts';
import {
  type BlobReader,
  type BlobSink,
  type Descriptor,
  detectMediaType,
  type ImageSource,
  manifestDigest,
  type RawManifest,
} from '../image/index.ts';
import { holdTemp, sweepStaleTemps, tempName, writeFileAtomic } from '../util/index.ts';
import { checkDirDestination } from './destination.ts';
import {
  fileTail,
  layerSizeHintFrom,
  openBlobFile,
  readSmallFile,
  writeBlobFile,
  writeBlobFileFrom,
} from './files.ts';

/** skopeo's `version` file, exactly. */
export const DIR_VERSION = 'Directory Transport Version: 1.1\n';

/** Where skopeo puts an index instance's manifest in a `dir:` layout. */
function instanceManifestName(digest: Digest): string {
  return `${digestHex(digest)}.manifest.json`;
}

/** Reads a skopeo `dir:` layout: `version`, `manifest.json`, blobs named by digest hex. */
export class DirSource implements ImageSource {
  readonly name: string;
  readonly root: string;

  constructor(root: string) {
    this.root = root;
    this.name = `dir:${root}`;
  }

  async topManifest(): Promise<RawManifest> {
    const bytes = await readSmallFile(join(this.root, 'manifest.json'), 'dir: manifest.json');
    const json = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    return { bytes, mediaType: detectMediaType(json), digest: manifestDigest(bytes) };
  }

  async manifest(digest: Digest): Promise<RawManifest> {
    const top = await this.topManifest();
    if (top.digest === digest) return top;
    const bytes = await readSmallFile(
      join(this.root, instanceManifestName(digest)),
      `manifest ${digest}`,
      digest,
    );
    const json = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    return { bytes, mediaType: detectMediaType(json), digest };
  }

  blob(desc: Descriptor): Promise<Readable> {
    return openBlobFile(join(this.root, digestHex(desc.digest)), desc, this.root);
  }

  layerSizeHint(desc: Descriptor): Promise<number | undefined> {
    return layerSizeHintFrom(desc, (n) => fileTail(join(this.root, digestHex(desc.digest)), n));
  }

  async close(): Promise<void> {}
}

/**
 * Writes a skopeo `dir:` layout. Everything is staged in a temp directory beside the destination
 * and renamed into place on commit, so a failed copy leaves nothing where the result belongs.
 */
export class DirSink implements BlobSink {
  readonly kind = 'blobs';
  readonly name: string;
  readonly root: string;
  readonly acceptsIndex = true;
  readonly #stage: string;
  #ready: Promise<void> | undefined;

  constructor(root: string) {
    this.root = root;
    this.name = `dir:${root}`;
    this.#stage = holdTemp(join(root, '..', tempName(root.split('/').filter(Boolean).pop() ?? 'dir')));
  }

  #prepare(): Promise<void> {
    this.#ready ??= (async () => {
      await sweepStaleTemps(join(this.root, '..'));
      await checkDirDestination(this.name, this.root);
      await rm(this.#stage, { recursive: true, force: true });
      await mkdir(this.#stage, { recursive: true });
    })();
    return this.#ready;
  }

  async reuseBlob(): Promise<undefined> {
    return undefined;
  }

  async putBlob(desc: Descriptor, open: () => Promise<Readable>): Promise<void> {
    await this.#prepare();
    await writeBlobFile(join(this.#stage, digestHex(desc.digest)), await open(), desc);
  }

  async putBlobFrom(desc: Descriptor, reader: BlobReader): Promise<void> {
    await this.#prepare();
    await writeBlobFileFrom(join(this.#stage, digestHex(desc.digest)), desc, reader);
  }

  async putManifest(m: RawManifest, top: boolean): Promise<void> {
    await this.#prepare();
    const name = top ? 'manifest.json' : instanceManifestName(m.digest);
    await writeFileAtomic(join(this.#stage, name), m.bytes);
  }

  async commit(): Promise<void> {
    await this.#prepare();
    await writeFileAtomic(join(this.#stage, 'version'), DIR_VERSION);
    // Checked again: the destination may have changed since the copy began.
    if (await checkDirDestination(this.name, this.root))
      await rm(this.root, { recursive: true, force: true });
    await rename(this.#stage, this.root);
  }

  async abort(): Promise<void> {
    await rm(this.#stage, { recursive: true, force: true });
  }
}
