export {
  type BaseSource,
  type BuildOptions,
  type BuiltLayer,
  BuiltImage,
  type BuiltManifest,
  planLayers,
} from './built-image.ts';
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
