export {
  type Digest,
  digestAlgorithm,
  digestHex,
  digestLike,
  isDigest,
  parseDigest,
  sha256,
} from './digest.ts';
export { Limits, readAtMost } from './limits.ts';
export { digestMismatch, type VerifyOptions, VerifyStream, verifyBytes } from './verify.ts';
