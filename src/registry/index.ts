export type { CredentialLookup, RegistryCredential } from './authenticator.ts';
export { Authenticator } from './authenticator.ts';
export { type BlobReadOptions, readBlob, sendBlobRequestEarly } from './blob-reader.ts';
export {
  type CertDirOptions,
  certsForHost,
  defaultPerHostCertDirs,
  readCertDir,
  type TlsSettings,
} from './cert-dir.ts';
export {
  type FetchedManifest,
  type ManifestHead,
  nextLink,
  RegistryClient,
  type RegistryClientOptions,
  type RequestOptions,
} from './client.ts';
export { readDiagnostics, responseError } from './errors.ts';
export {
  backoffDelay,
  DEFAULT_RETRY,
  Http,
  type HttpOptions,
  type HttpResponse,
  isLoopbackHost,
  isRetryableError,
  parseRetryAfter,
  type RetryOptions,
} from './http.ts';
export {
  CREDENTIAL_HEADERS,
  credentialsFor,
  foreignChallengeError,
  headersForHop,
  MAX_REDIRECTS,
  mayAnswerChallenge,
  REDIRECT_STATUSES,
  redirectTarget,
  withoutCredentials,
} from './origin-policy.ts';
export { MAX_LIST_BYTES, MAX_PAGES, PageWalk } from './pagination.ts';
export { RegistryPool, type RegistryPoolOptions } from './pool.ts';
export {
  indexPlatforms,
  type ResolvedImage,
  type ResolvedInstance,
  type ResolveOptions,
  resolveImage,
} from './resolve.ts';
export {
  DEFAULT_TIMEOUT_MS,
  MIN_PROGRESS_BYTES,
  StallWatch,
  type TimeoutPhase,
  timeoutError,
} from './timeouts.ts';
