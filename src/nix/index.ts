export { fromNix32, NIX32_ALPHABET, nix32Length, toNix32 } from './base32.ts';
export { NixExpr, type NixValue, nixAttrName, nixExpr, nixString, nixValue } from './expr.ts';
export {
  formatNixHash,
  fromDigest,
  type NixHash,
  type NixHashAlgo,
  type NixHashFormat,
  parseNixHash,
  sha256Hash,
  toBase64,
  toHex,
  toSri,
} from './hash.ts';
export { hashStream, type NarNode, narFromPath, narFromTree, narHashOfPath, narHashOfTree } from './nar.ts';
export {
  checkStoreName,
  compressHash,
  DEFAULT_STORE_DIR,
  fixName,
  makeFixedOutputPath,
  makeStorePath,
} from './store-path.ts';
