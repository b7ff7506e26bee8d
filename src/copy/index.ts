export { type CompressNames, checkCompressLevel } from './compress-level.ts';
export { copyImage } from './copy.ts';
export type { CopyEvent, CopyOptions, CopyResult } from './copy-options.ts';
export { type ImageLayers, imageLayers } from './image-layers.ts';
export { createIndex } from './index-create.ts';
export { withDiffIds } from './layer-diff-ids.ts';
export { type OpenOptions, openSink, openSource, type SinkOptions } from './locations.ts';
