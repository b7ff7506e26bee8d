export {
  type AuthEntry,
  type AuthFile,
  decodeAuth,
  encodeAuth,
  helperFor,
  lookupAuth,
  normaliseAuthKey,
  parseAuthFile,
  readAuthFile,
} from './auth-file.ts';
export { type Challenge, formatChallenge, parseChallenges } from './challenge.ts';
export { type HelperResult, runCredentialHelper } from './cred-helper.ts';
export { ANONYMOUS, type Credential, sealCredential } from './credential.ts';
export { parseCredentialFile, readCredentialFile } from './credential-file.ts';
export {
  authFilePaths,
  type CredentialOptions,
  type ResolveCredentialInput,
  type ResolvedCredential,
  resolveCredential,
} from './keychain.ts';
export { login, loginAuthFile, logout } from './login.ts';
