import { createHash } from 'node:crypto';
import { type Digest, digestAlgorithm, digestHex, sha256 } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import type { Descriptor } from '../image/index.ts';
import { goTarPadding, inflatePieces, syncInflateWorks } from '../layers/index.ts';
import { archiveFileHeader, archiveTail } from '../transports/docker-archive/index.ts';
import type { RegistrySource } from '../transports/index.ts';

export interface ArchivePassInput {
  source: RegistrySource;
  configBytes: Buffer;
  /** The image's layers, in manifest order, with their diff_ids and uncompressed sizes. */
  layers: { desc: Descriptor; diffId: Digest; size: number }[];
  repoTags: string[];
  signal?: AbortSignal;
}

/**
 * The flat sha256 of skopeo's docker-archive (what `dockerTools.pullImage` pins) in one ordered
 * pass per layer, on this thread: each piece read from the socket (or the cache) is hashed as
 * the blob (its digest, checked at the blob's end), written to the cache, inflated into a reused
 * buffer, and the inflated bytes hashed twice (the diff_id, checked at the layer's end, and the
 * archive). Then the tar padding, and after the last layer the archive's tail. No stream, no
 * read-back. Needs every layer's size up front (the tar header comes first): a wrong size fails
 * with E_SIZE_MISMATCH, as the streaming writer does. Returns undefined, having read nothing,
 * when this Node.js cannot inflate synchronously.
 */
export async function archiveHashOnePass(
  input: ArchivePassInput,
): Promise<{ sha256: Digest; size: number } | undefined> {
  if (!syncInflateWorks('gzip') || !syncInflateWorks('zstd')) return undefined;
  const archive = createHash('sha256');
  let total = 0;
  const put = (b: Buffer): void => {
    archive.update(b);
    total += b.length;
  };
  const seen = new Set<string>();
  const layers = input.layers.filter((l) => !seen.has(digestHex(l.diffId)) && seen.add(digestHex(l.diffId)));
  for (const [i, layer] of layers.entries()) {
    const name = `${digestHex(layer.diffId)}.tar`;
    // The next layer's GET goes out now: the registry's time to its first byte passes meanwhile.
    const next = layers[i + 1];
    if (next) input.source.prepareBlob(next.desc, input.signal);
    put(archiveFileHeader(name, layer.size));
    await oneLayer(input, layer, put);
    put(goTarPadding(layer.size));
  }
  const tailLayers = input.layers.map((l) => ({ diffId: l.diffId, open: notOpened }));
  for (const b of archiveTail(
    { configBytes: input.configBytes, layers: tailLayers, repoTags: input.repoTags },
    tailLayers,
    sha256(input.configBytes),
  ))
    put(b);
  return { sha256: `sha256:${archive.digest('hex')}` as Digest, size: total };
}

function notOpened(): never {
  throw new LadingError(ErrorCode.Internal, 'the archive tail opens no layer');
}

async function oneLayer(
  input: ArchivePassInput,
  layer: ArchivePassInput['layers'][number],
  put: (b: Buffer) => void,
): Promise<void> {
  const what = `layer ${layer.diffId} (uncompressed)`;
  const diff = createHash(digestAlgorithm(layer.diffId));
  let n = 0;
  const onOut = (out: Buffer): void => {
    n += out.length;
    if (n > layer.size)
      throw new LadingError(
        ErrorCode.SizeMismatch,
        `size mismatch for ${what}: expected ${layer.size} bytes, got more than ${n}`,
        { expected: layer.size, found: n },
      );
    diff.update(out);
    put(out);
  };
  await inflatePieces(
    (onPiece) => input.source.readBlob(layer.desc, onPiece, input.signal),
    onOut,
    `layer ${layer.desc.digest}`,
  );
  if (n !== layer.size)
    throw new LadingError(
      ErrorCode.SizeMismatch,
      `size mismatch for ${what}: expected ${layer.size} bytes, got only ${n}`,
      { expected: layer.size, found: n },
    );
  const found = `${digestAlgorithm(layer.diffId)}:${diff.digest('hex')}`;
  if (found !== layer.diffId)
    throw new LadingError(
      ErrorCode.DigestMismatch,
      `digest mismatch for ${what}: expected ${layer.diffId}, got ${found} (${n} bytes read)`,
      { expected: layer.diffId, found },
    );
}
