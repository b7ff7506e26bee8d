export { type Digest, digestAlgorithm, digestHex, digestLike, isDigest, parseDigest, sha256 } from './digest.ts';
export { Limits, readAtMost } from './limits.ts';
export { digestMismatch, VerifyStream, type VerifyOptions, verifyBytes } from './verify.ts';
