import { ErrorCode, LadingError } from '../errors/index.ts';
import { redactUrl } from '../util/index.ts';

/**
 * Where a registry's credentials may go and how redirects are followed: plain decisions with no I/O,
 * so every HTTP path (node:http in `http.ts`, a raw-socket blob reader) applies the same rules.
 *
 * The rule (containerd CVE-2020-15157 class): credentials belong to the registry origin the user
 * named, and to the token realm that registry's own challenge announced. Anything reached through a
 * redirect (a CDN, S3) gets no credentials, and its challenges are not answered.
 */

/** Redirects followed for one request before giving up. */
export const MAX_REDIRECTS = 10;

/** Statuses that are redirects (with a `Location`). */
export const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/** Request headers that carry credentials. */
export const CREDENTIAL_HEADERS: readonly string[] = ['authorization', 'proxy-authorization', 'cookie'];

/**
 * Whether a request to `target` may carry the credentials meant for `credentialOrigin` (the origin
 * the caller addressed: the registry's API origin, or a token realm it announced). Only the exact
 * same origin (scheme, host and port) may; a redirect elsewhere never does.
 */
export function credentialsFor(target: URL, credentialOrigin: string): boolean {
  return target.origin === credentialOrigin;
}

/**
 * Whether lading may answer a `401` challenge from `responder` with the registry's credentials:
 * only when the registry itself (`registryOrigin`) sent it. A challenge from a redirect target
 * (`WWW-Authenticate: Bearer realm="http://OTHER/token"`) is treated as anonymous: no token is
 * fetched from its realm and nothing is sent to it.
 */
export function mayAnswerChallenge(responder: URL, registryOrigin: string): boolean {
  return responder.origin === registryOrigin;
}

/** `headers` without the credential headers (names compared case-insensitively). */
export function withoutCredentials(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).filter(([k]) => !CREDENTIAL_HEADERS.includes(k.toLowerCase())),
  );
}

/**
 * The next hop of a redirect: `location` resolved against `from`, refused (E_NETWORK) when it is
 * not http(s) or when `hop` (0-based count of redirects already followed) reaches MAX_REDIRECTS.
 */
export function redirectTarget(from: URL, location: string, hop: number, start: URL = from): URL {
  if (hop >= MAX_REDIRECTS) {
    throw new LadingError(
      ErrorCode.Network,
      `too many redirects (more than ${MAX_REDIRECTS}) from ${redactUrl(start)}`,
      { url: redactUrl(start) },
    );
  }
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    throw new LadingError(ErrorCode.Network, `invalid redirect Location from ${redactUrl(from)}`, {
      url: redactUrl(from),
    });
  }
  if (next.protocol !== 'https:' && next.protocol !== 'http:') {
    throw new LadingError(
      ErrorCode.Network,
      `refusing redirect to ${next.protocol} URL from ${redactUrl(from)}`,
      {
        url: redactUrl(from),
      },
    );
  }
  return next;
}

/**
 * The headers for the next hop: the caller's headers while the hop stays on `credentialOrigin`,
 * without credentials anywhere else (and from then on, even if a later hop comes back).
 */
export function headersForHop(
  headers: Record<string, string>,
  next: URL,
  credentialOrigin: string,
): Record<string, string> {
  return credentialsFor(next, credentialOrigin) ? headers : withoutCredentials(headers);
}

/** The error for a `401` from another origin than the registry (its challenge is not answered). */
export function foreignChallengeError(responder: URL, registry: string, method: string): LadingError {
  const url = redactUrl(responder);
  return new LadingError(
    ErrorCode.Unauthorized,
    `${method} ${url}: ${responder.host}, reached by a redirect from registry ${registry}, asks for authentication; ` +
      `lading sends credentials only to the registry and the token service it names, so the request fails`,
    { registry, url, method, status: 401 },
  );
}
