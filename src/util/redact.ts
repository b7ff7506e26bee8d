/** Query parameters that are part of the registry protocol and safe to show. */
const SAFE_QUERY = new Set(['n', 'last', 'digest', 'mount', 'from', 'service', 'scope', 'ns']);

/**
 * A URL safe to show in messages and logs: no userinfo, and every query parameter that is not part
 * of the registry protocol (signed CDN URLs carry credentials there) replaced by `REDACTED`.
 */
export function redactUrl(input: string | URL): string {
  let url: URL;
  try {
    url = new URL(String(input));
  } catch {
    return '<invalid url>';
  }
  url.username = '';
  url.password = '';
  for (const key of [...url.searchParams.keys()]) {
    if (!SAFE_QUERY.has(key)) url.searchParams.set(key, 'REDACTED');
  }
  return url.toString();
}

/** Header names whose values are secrets. */
const SECRET_HEADERS = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-registry-auth',
]);

/** A copy of `headers` with secret values replaced by `<redacted>`, for `--debug` output. */
export function redactHeaders(
  headers: Record<string, string | string[] | undefined>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    out[k] = SECRET_HEADERS.has(k.toLowerCase()) ? '<redacted>' : Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/**
 * Removes every occurrence of the given secrets from a text (used as a last line of defence on
 * messages that embed server-provided text).
 */
export function scrubSecrets(text: string, secrets: Iterable<string | undefined>): string {
  let out = redactAuthValues(text);
  for (const s of secrets) {
    if (s && s.length >= 4) out = out.split(s).join('<redacted>');
  }
  return out;
}

/**
 * Replaces anything that looks like an `Authorization` value (`Basic <base64>`, `Bearer <token>`)
 * in text a server sent (an error message echoing the request's header), whoever it belongs to.
 */
export function redactAuthValues(text: string): string {
  return text.replace(
    /\b(Basic|Bearer)(\s+|%20|\+)[A-Za-z0-9+/=._~-]{4,}(?![A-Za-z0-9+/=._~"-])/gi,
    '$1 <redacted>',
  );
}
