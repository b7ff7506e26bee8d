export type { CredentialLookup, RegistryCredential } from './authenticator.ts';
export { Authenticator } from './authenticator.ts';
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
export { RegistryPool, type RegistryPoolOptions } from './pool.ts';
export {
  fetchManifest,
  indexPlatforms,
  type ResolvedImage,
  type ResolvedInstance,
  type ResolveOptions,
  resolveImage,
  selectFromIndex,
} from './resolve.ts';
