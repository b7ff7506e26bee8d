export {
  type AuthEntry,
  type AuthFile,
  decodeAuth,
  encodeAuth,
  entryCredential,
  helperFor,
  lookupAuth,
  normaliseAuthKey,
  normaliseHost,
  parseAuthFile,
  readAuthFile,
} from './auth-file.ts';
export {
  type Challenge,
  formatChallenge,
  formatChallenges,
  type InsufficientScope,
  isToken,
  parseChallenges,
  parseScopeError,
} from './challenge.ts';
export {
  type HelperOptions,
  type HelperResult,
  helperServerUrl,
  runCredentialHelper,
} from './cred-helper.ts';
export { ANONYMOUS, anonymous, type Credential, redactCredential, sealCredential } from './credential.ts';
export { parseCredentialFile, readCredentialFile } from './credential-file.ts';
export {
  type AuthFilePath,
  authFilePaths,
  type CredentialOptions,
  type ResolveCredentialInput,
  type ResolvedCredential,
  resolveCredential,
} from './keychain.ts';
export { type LoginInput, type LogoutInput, login, loginAuthFile, logout } from './login.ts';
