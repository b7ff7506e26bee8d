export { type ImageConfig, parseConfig } from './config.ts';
export type {
  BlobReader,
  BlobReadOptions,
  BlobSink,
  ExistingLayer,
  ImageSink,
  ImageSource,
  RawManifest,
  ReuseOutcome,
  WholeImage,
  WholeImageSink,
} from './contracts.ts';
export { convertImageManifest, convertIndex, isFormat, type ManifestFormat } from './convert.ts';
export { type Descriptor, parseDescriptor } from './descriptor.ts';
export { CONTAINER_CONFIG_FIELDS } from './go-fields.ts';
export {
  detectMediaType,
  type ImageManifest,
  type IndexManifest,
  type Manifest,
  manifestDigest,
  parseManifest,
  type Schema1Manifest,
  schema1Payload,
} from './manifest.ts';
export {
  isImageManifestMediaType,
  isIndexMediaType,
  isSchema1MediaType,
  type KnownMediaType,
  layerCompression,
  MANIFEST_ACCEPT,
  MediaType,
} from './media-types.ts';
export {
  formatPlatform,
  hostPlatform,
  normaliseArch,
  normalisePlatform,
  normaliseVariant,
  type Platform,
  parsePlatform,
  platformMatches,
  selectPlatform,
} from './platform.ts';
export {
  indexPlatforms,
  type SelectedImage,
  type SelectOptions,
  selectFromIndex,
  selectImage,
} from './select.ts';
