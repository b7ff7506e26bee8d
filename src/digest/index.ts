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
export {
  digestMismatch,
  VERIFIED_DIGEST,
  type VerifyOptions,
  VerifyStream,
  verifyBytes,
} from './verify.ts';
