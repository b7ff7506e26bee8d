import { ErrorCode, isLadingError } from '../errors/index.ts';

/** Exit statuses of the CLI, stable for scripts. */
export const ExitCode = {
  Ok: 0,
  /** Any failure without a more specific status. */
  Failure: 1,
  /** Bad usage: unknown option, malformed reference, digest or platform. */
  Usage: 2,
  /** Authentication or authorisation failed. */
  Auth: 3,
  /** The image, tag, blob or platform does not exist. */
  NotFound: 4,
  /** Content did not match its digest or size. */
  Integrity: 5,
  /** Network failure or a registry error after retries. */
  Network: 6,
  /** Hostile or unsafe content was refused. */
  Unsafe: 7,
} as const;

export function exitCodeFor(err: unknown): number {
  if (!isLadingError(err)) return ExitCode.Failure;
  switch (err.code) {
    case ErrorCode.BadReference:
    case ErrorCode.BadDigest:
    case ErrorCode.BadPlatform:
    case ErrorCode.BadArgument:
      return ExitCode.Usage;
    case ErrorCode.Unauthorized:
    case ErrorCode.Denied:
    case ErrorCode.Auth:
    case ErrorCode.AuthFile:
    case ErrorCode.CredentialHelper:
      return ExitCode.Auth;
    case ErrorCode.NotFound:
    case ErrorCode.NoMatchingPlatform:
    case ErrorCode.PlatformMismatch:
      return ExitCode.NotFound;
    case ErrorCode.DigestMismatch:
    case ErrorCode.SizeMismatch:
      return ExitCode.Integrity;
    case ErrorCode.Network:
    case ErrorCode.Registry:
    case ErrorCode.TooManyRequests:
      return ExitCode.Network;
    case ErrorCode.UnsafePath:
      return ExitCode.Unsafe;
    default:
      return ExitCode.Failure;
  }
}
