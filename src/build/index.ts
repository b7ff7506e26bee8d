export {
  type BuildOptions,
  BuiltImage,
  type BuiltLayer,
  hostArchitecture,
  mergeConfig,
  planLayers,
} from './built-image.ts';
export { FileLayerDigestCache, type LayerDigestCache } from './layer-digest-cache.ts';
export { closureOf, type GraphEntry, popularityOrder, splitLayers } from './popularity.ts';
export {
  type BuildSpec,
  type HistorySpec,
  type LayerGroup,
  type ParseSpecOptions,
  parseBuildSpec,
  type RewriteRule,
  specError,
} from './spec.ts';
