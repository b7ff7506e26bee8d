export { type CompressNames, checkCompressLevel } from './compress-level.ts';
export { type CopyEvent, type CopyOptions, type CopyResult, copyImage } from './copy.ts';
export { type ImageLayers, imageLayers } from './image-layers.ts';
export { createIndex } from './index-create.ts';
export { withDiffIds } from './layer-diff-ids.ts';
export { type OpenOptions, openSink, openSource, type SinkOptions } from './locations.ts';
