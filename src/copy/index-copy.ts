import { sha256 } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import {
  type BlobSink,
  convertIndex,
  type Descriptor,
  type IndexManifest,
  isFormat,
  type Platform,
  parseManifest,
  type RawManifest,
  selectFromIndex,
} from '../image/index.ts';
import { refuseIfPreserving } from './convert-image.ts';
import type { ImageCopier } from './image-copier.ts';
import { dedupe } from './util.ts';

/**
 * Copies the chosen instances of the index `top` (the `wanted` platforms, or all of them with
 * `all`) and writes the index they make: the source's own bytes when nothing changed, else one
 * filtered to the chosen instances, rewritten for instances whose digest changed, or converted.
 */
export async function copyIndex(
  copier: ImageCopier,
  top: RawManifest,
  parsed: IndexManifest,
  wanted: Platform[],
): Promise<void> {
  const { src, dst, opts } = copier;
  if (!dst.acceptsIndex) {
    throw new LadingError(
      ErrorCode.BadArgument,
      `${dst.name} holds one image; --all needs a destination that stores an index`,
    );
  }
  const chosen = dedupe(
    opts.all ? parsed.manifests : wanted.map((p) => selectFromIndex(parsed, p, src.name)),
  );
  const written: Descriptor[] = [];
  for (const d of chosen) written.push(await copyInstance(copier, dst, d));
  await copier.putIndex(dst, indexToWrite(copier, top, parsed, chosen, written));
}

/** One instance of the index (an image, or a nested index as it is); its descriptor as written. */
async function copyInstance(copier: ImageCopier, dst: BlobSink, d: Descriptor): Promise<Descriptor> {
  const { src, opts } = copier;
  const inst = await src.manifest(d.digest, opts.signal);
  const kind = parseManifest(inst.bytes, inst.mediaType, `${src.name}@${d.digest}`).kind;
  const out = kind === 'image' ? await copier.copyInstance(inst) : inst;
  if (kind !== 'image') await dst.putManifest(inst, false, opts.signal);
  return { ...d, digest: out.digest, size: out.bytes.length, mediaType: out.mediaType };
}

/** The index naming `written` (the copies of `chosen`, in order). */
function indexToWrite(
  copier: ImageCopier,
  top: RawManifest,
  parsed: IndexManifest,
  chosen: Descriptor[],
  written: Descriptor[],
): RawManifest {
  const { opts, src } = copier;
  if (opts.format !== undefined && !isFormat(top.mediaType, opts.format)) {
    refuseIfPreserving(opts, top.mediaType, opts.format, src.name);
    return convertIndex(written, opts.format, parsed.annotations);
  }
  if (written.some((w, i) => w.digest !== chosen[i]!.digest))
    return rewrittenIndex(top, parsed, chosen, written);
  return opts.all ? top : filteredIndex(top, parsed, chosen);
}

function filteredIndex(top: RawManifest, index: IndexManifest, keep: Descriptor[]): RawManifest {
  const json = JSON.parse(top.bytes.toString('utf8')) as Record<string, unknown>;
  const keepSet = new Set<string>(keep.map((d) => d.digest));
  json.manifests = (json.manifests as { digest: string }[]).filter((m) => keepSet.has(m.digest));
  const bytes = Buffer.from(JSON.stringify(json));
  return { bytes, digest: sha256(bytes), mediaType: index.mediaType };
}

/** The index `top` keeping only `keep`, each replaced by its counterpart in `written`. */
function rewrittenIndex(
  top: RawManifest,
  index: IndexManifest,
  keep: Descriptor[],
  written: Descriptor[],
): RawManifest {
  const json = JSON.parse(top.bytes.toString('utf8')) as Record<string, unknown>;
  const byDigest = new Map<string, Descriptor>(keep.map((d, i) => [d.digest, written[i]!]));
  json.manifests = (json.manifests as Record<string, unknown>[]).flatMap((m) => {
    const w = byDigest.get(m.digest as string);
    return w ? [{ ...m, mediaType: w.mediaType, digest: w.digest, size: w.size }] : [];
  });
  const bytes = Buffer.from(JSON.stringify(json));
  return { bytes, digest: sha256(bytes), mediaType: index.mediaType };
}
