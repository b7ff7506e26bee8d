export { fromNix32, NIX32_ALPHABET, nix32Length, toNix32 } from './base32.ts';
export { sanitizeDerivationName } from './derivation-name.ts';
export {
  NixExpr,
  type NixValue,
  nixAttrName,
  nixAttrs,
  nixExpr,
  nixString,
  nixValue,
} from './expr.ts';
export {
  formatNixHash,
  fromDigest,
  hashSize,
  NIX_HASH_ALGOS,
  type NixHash,
  type NixHashAlgo,
  type NixHashFormat,
  nixHashEquals,
  parseNixHash,
  sha256Hash,
  toBase64,
  toDigest,
  toHex,
  toSri,
} from './hash.ts';
export {
  hashStream,
  type NarHashResult,
  type NarNode,
  type NarOpener,
  type NarRegular,
  type NarSource,
  narFromPath,
  narFromTree,
  narHash,
  narHashOfPath,
  narHashOfTree,
  narReadable,
} from './nar.ts';
export {
  checkStoreName,
  compressHash,
  DEFAULT_STORE_DIR,
  fixName,
  makeFixedOutputPath,
  makeStorePath,
  storePathHashPart,
} from './store-path.ts';
