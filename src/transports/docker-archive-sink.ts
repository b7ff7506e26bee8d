import { pipeline } from 'node:stream/promises';
import { ErrorCode, hasCode, LadingError } from '../errors/index.ts';
import { parseConfig, type WholeImage, type WholeImageSink } from '../image/index.ts';
import { decompress, inflatePieces, syncInflateWorks } from '../layers/index.ts';
import type { Reference } from '../reference/index.ts';
import { checkNewFile } from './destination.ts';
import {
  type DockerArchiveInput,
  dockerArchiveStream,
  writeDockerArchive,
  writeDockerArchiveParallel,
} from './docker-archive/index.ts';

/** Builds the archive writer's input from a whole image (layers decompressed on the fly). */
export function archiveInputFor(
  image: WholeImage,
  repoTags: string[],
  signal?: AbortSignal,
  hinted = false,
): DockerArchiveInput {
  const config = parseConfig(image.configBytes, `config ${image.configDescriptor.digest}`);
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== image.layers.length) {
    throw new LadingError(
      ErrorCode.ManifestInvalid,
      `the config lists ${diffIds.length} diff_ids for ${image.layers.length} layers`,
    );
  }
  return {
    configBytes: image.configBytes,
    layers: image.layers.map((d, i) => ({
      diffId: diffIds[i]!,
      // Sizes the layers claim (checked while streaming) spare a measuring pass over every layer.
      sizeHint: hinted && image.sizeHint ? () => image.sizeHint!(d, signal) : undefined,
      open: async () => decompress(await image.blob(d, { signal }), { what: `layer ${d.digest}` }),
      // With sizes known, the parallel writer inflates on this thread straight into the file.
      ...(hinted && image.readBlob && syncInflateWorks('gzip') && syncInflateWorks('zstd')
        ? {
            read: (onData: (piece: Buffer) => void) =>
              inflatePieces((onPiece) => image.readBlob!(d, onPiece, signal), onData, `layer ${d.digest}`),
          }
        : {}),
    })),
    repoTags,
    signal,
  };
}

/**
 * Writes a docker-archive (`docker-archive:FILE[:NAME:TAG]`), byte-identical to skopeo's. The file
 * appears only when complete; an existing file is refused. `-` streams it to `out`.
 */
export class DockerArchiveSink implements WholeImageSink {
  readonly kind = 'whole-image';
  readonly name: string;
  readonly acceptsIndex = false;
  readonly #path: string;
  readonly #ref: Reference | undefined;
  readonly #out: NodeJS.WritableStream | undefined;

  constructor(path: string, ref?: Reference, out?: NodeJS.WritableStream) {
    this.#path = path;
    this.#ref = ref;
    this.#out = out;
    this.name = `docker-archive:${path}${ref ? `:${ref}` : ''}`;
  }

  async writeImage(image: WholeImage, signal?: AbortSignal): Promise<void> {
    const tags = this.#ref ? [`${this.#ref.name}:${this.#ref.tag ?? 'latest'}`] : [];
    const input = archiveInputFor(image, tags, signal);
    if (this.#path === '-') {
      if (!this.#out) throw new LadingError(ErrorCode.BadArgument, 'docker-archive:- needs standard output');
      await pipeline(dockerArchiveStream(input), this.#out, { end: false });
      return;
    }
    await checkNewFile(this.name, this.#path);
    if (!image.sizeHint) {
      await writeDockerArchive(input, this.#path, { hash: false });
      return;
    }
    try {
      // Sizes known from the hints: the layers are written side by side into their places.
      const hinted = archiveInputFor(image, tags, signal, true);
      if (!(await writeDockerArchiveParallel(hinted, this.#path)))
        await writeDockerArchive(hinted, this.#path, { hash: false });
    } catch (err) {
      // A size hint that lied (a multi-member gzip, a layer over 4 GiB): nothing was written;
      // measure the layers instead.
      if (!hasCode(err, ErrorCode.SizeMismatch)) throw err;
      await writeDockerArchive(input, this.#path, { hash: false });
    }
  }

  async commit(): Promise<void> {}
  async abort(): Promise<void> {}
}
