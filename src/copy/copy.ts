import {
  hostPlatform,
  type ImageSink,
  type ImageSource,
  parseManifest,
  selectImage,
} from '../image/index.ts';
import { optionsFor } from './convert-image.ts';
import type { CopyOptions, CopyResult } from './copy-options.ts';
import { ImageCopier } from './image-copier.ts';
import { copyIndex } from './index-copy.ts';

/**
 * Copies an image (or an index) from `src` to `dst`: blobs first (skipping what the destination
 * has, mounting where it can), then manifests, then commit. On any failure the sink is aborted, so
 * nothing is left where the result belongs. Digests never change unless platforms are filtered
 * out of an index (the new index is then written).
 */
export async function copyImage(
  src: ImageSource,
  dst: ImageSink,
  options: CopyOptions = {},
): Promise<CopyResult> {
  const opts = optionsFor(options, dst);
  const copier = new ImageCopier(src, dst, opts);
  return copier.run(async () => {
    const top = await src.topManifest(opts.signal);
    const parsed = parseManifest(top.bytes, top.mediaType, src.name);
    const wanted = opts.platforms?.length ? opts.platforms : [hostPlatform()];
    if (parsed.kind === 'index' && (opts.all || (wanted.length > 1 && dst.acceptsIndex))) {
      await copyIndex(copier, top, parsed, wanted);
      return;
    }
    // One image: the selector holds the platform policy (and refuses schema1).
    const sel = await selectImage(src, {
      platform: wanted[0],
      explicit: opts.platforms?.length === 1 && !opts.all,
      signal: opts.signal,
    });
    await copier.copyTop(sel.instance);
  });
}
