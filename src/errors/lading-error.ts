/**
 * Stable error codes. Callers branch on `code`, never on the message text.
 * The CLI maps each code to an exit status (see `cli/exit-codes.ts`).
 */
export const ErrorCode = {
  BadReference: 'E_BAD_REFERENCE',
  BadDigest: 'E_BAD_DIGEST',
  BadPlatform: 'E_BAD_PLATFORM',
  BadArgument: 'E_BAD_ARGUMENT',
  Unauthorized: 'E_UNAUTHORIZED',
  Denied: 'E_DENIED',
  NotFound: 'E_NOT_FOUND',
  DigestMismatch: 'E_DIGEST_MISMATCH',
  SizeMismatch: 'E_SIZE_MISMATCH',
  ManifestUnsupported: 'E_MANIFEST_UNSUPPORTED',
  ManifestInvalid: 'E_MANIFEST_INVALID',
  PlatformMismatch: 'E_PLATFORM_MISMATCH',
  NoMatchingPlatform: 'E_NO_MATCHING_PLATFORM',
  TooLarge: 'E_TOO_LARGE',
  Network: 'E_NETWORK',
  Registry: 'E_REGISTRY',
  TooManyRequests: 'E_TOO_MANY_REQUESTS',
  Auth: 'E_AUTH',
  AuthFile: 'E_AUTH_FILE',
  CredentialHelper: 'E_CREDENTIAL_HELPER',
  UnsafePath: 'E_UNSAFE_PATH',
  Archive: 'E_ARCHIVE',
  Transport: 'E_TRANSPORT',
  Exists: 'E_EXISTS',
  Io: 'E_IO',
  Aborted: 'E_ABORTED',
  Nix: 'E_NIX',
  Internal: 'E_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Structured context carried by every {@link LadingError}. Never put secrets here. */
export interface ErrorContext {
  /** The image reference the operation was about, as the user wrote it or normalised. */
  ref?: string;
  /** Registry host (`host[:port]`). */
  registry?: string;
  /** Request URL, already redacted (no userinfo, no signed query parameters). */
  url?: string;
  /** HTTP method of the failing request. */
  method?: string;
  /** HTTP status of the failing response. */
  status?: number;
  /** What was expected (a digest, a size, a media type...). */
  expected?: string | number;
  /** What was found instead. */
  found?: string | number;
  /** A path on disk or inside an archive. */
  path?: string;
  /** Registry diagnostics parsed from a JSON error body. */
  diagnostics?: readonly { code: string; message: string }[];
  /** Whether retrying the same operation may succeed. */
  temporary?: boolean;
  /** Seconds the server asked us to wait (Retry-After). */
  retryAfter?: number;
}

const brand = Symbol.for('lading.error');

/**
 * The one error class of lading. Messages say what went wrong and where, in one line;
 * the fields carry the same facts for programs.
 */
export class LadingError extends Error implements ErrorContext {
  readonly code: ErrorCode;
  ref?: string;
  registry?: string;
  url?: string;
  method?: string;
  status?: number;
  expected?: string | number;
  found?: string | number;
  path?: string;
  diagnostics?: readonly { code: string; message: string }[];
  temporary?: boolean;
  retryAfter?: number;

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LadingError';
    this.code = code;
    Object.assign(this, context);
    Object.defineProperty(this, brand, { value: true });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && brand in value;
  }
}

/** True for any {@link LadingError}, also across duplicate copies of the package. */
export function isLadingError(value: unknown): value is LadingError {
  return typeof value === 'object' && value !== null && brand in value;
}

/** True when `err` is a LadingError with one of `codes`. */
export function hasCode(err: unknown, ...codes: ErrorCode[]): err is LadingError {
  return isLadingError(err) && codes.includes(err.code);
}
