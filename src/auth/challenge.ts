/** One authentication challenge from a `WWW-Authenticate` header. */
export interface Challenge {
  /** Lower-case scheme: `bearer`, `basic`, ... */
  scheme: 'bearer' | 'basic' | (string & {});
  /** Auth-params with lower-case names (the first of a repeated name wins). */
  params: Record<string, string>;
  /** The token68 form (`Basic dXNlcg==`, `Negotiate abc`), when the challenge has one instead of params. */
  token68?: string;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN = /[!#$%&'*+\-.^_`|~0-9A-Za-z]+/y;
const TOKEN68 = /[A-Za-z0-9\-._~+/]+=*/y;
/** Lenient unquoted value: registries send unquoted URLs, which are not RFC tokens. */
const BARE_VALUE = /[^\s,"]+/y;

/**
 * Parses one or several `WWW-Authenticate` header values (RFC 7235 §4.1): several challenges per
 * header, auth-params with quoted strings and `\` escapes, commas inside quotes, token68, empty list
 * elements, case-insensitive scheme and param names. Never throws: parsing stops at the first thing
 * it cannot read and returns the challenges read so far.
 */
export function parseChallenges(header: string | readonly string[] | undefined | null): Challenge[] {
  if (header === undefined || header === null) return [];
  const values = typeof header === 'string' ? [header] : header;
  const out: Challenge[] = [];
  for (const v of values) if (typeof v === 'string') parseHeader(v, out);
  return out;
}

function setParam(params: Record<string, string>, name: string, value: string): void {
  // defineProperty: a param named `__proto__` must stay a plain own property.
  if (!Object.hasOwn(params, name))
    Object.defineProperty(params, name, { value, enumerable: true, writable: true, configurable: true });
}

function parseHeader(s: string, out: Challenge[]): void {
  let i = 0;
  const ows = (): void => {
    while (s[i] === ' ' || s[i] === '\t') i++;
  };
  /** Skips whitespace and empty list elements. */
  const separators = (): void => {
    for (;;) {
      ows();
      if (s[i] !== ',') return;
      i++;
    }
  };
  const match = (re: RegExp): string | undefined => {
    re.lastIndex = i;
    const m = re.exec(s);
    if (!m) return undefined;
    i = re.lastIndex;
    return m[0];
  };
  const quoted = (): string | undefined => {
    let v = '';
    for (let j = i + 1; j < s.length; j++) {
      const c = s[j];
      if (c === '"') {
        i = j + 1;
        return v;
      }
      if (c === '\\' && j + 1 < s.length) j++;
      v += s[j];
    }
    return undefined;
  };

  for (;;) {
    separators();
    if (i >= s.length) return;
    const scheme = match(TOKEN);
    if (scheme === undefined) return;
    const ch: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(ch);
    const afterScheme = i;
    ows();
    if (i >= s.length || s[i] === ',') continue;
    if (i === afterScheme) return; // `Basic"x"`: no space after the scheme
    // token68: followed only by whitespace, then the end or a comma.
    const start = i;
    const t68 = match(TOKEN68);
    if (t68 !== undefined) {
      ows();
      if (i >= s.length || s[i] === ',') {
        ch.token68 = t68;
        continue;
      }
      i = start;
    }
    // #auth-param
    for (;;) {
      const before = i;
      const name = match(TOKEN);
      if (name === undefined) return;
      ows();
      if (s[i] !== '=') {
        // Not a param: the scheme of the next challenge.
        i = before;
        break;
      }
      i++;
      ows();
      const value =
        s[i] === '"' ? quoted() : (match(BARE_VALUE) ?? (s[i] === ',' || i >= s.length ? '' : undefined));
      if (value === undefined) return;
      setParam(ch.params, name.toLowerCase(), value);
      ows();
      if (i >= s.length) return;
      if (s[i] !== ',') return;
      separators();
      if (i >= s.length) return;
    }
  }
}

function quote(v: string): string {
  return `"${v.replace(/(["\\])/g, '\\$1')}"`;
}

/** Prints one challenge (values quoted), the inverse of {@link parseChallenges}. */
export function formatChallenge(c: Challenge): string {
  if (c.token68 !== undefined) return `${c.scheme} ${c.token68}`;
  const params = Object.entries(c.params).map(([k, v]) => `${k}=${quote(v)}`);
  return params.length ? `${c.scheme} ${params.join(', ')}` : c.scheme;
}

/** Prints a challenge list as one header value. */
export function formatChallenges(cs: readonly Challenge[]): string {
  return cs.map(formatChallenge).join(', ');
}

/** What a Bearer challenge with `error="insufficient_scope"` asks for (RFC 6750 §3.1). */
export interface InsufficientScope {
  /** The scopes the server wants (`repository:org/app:pull`), split at spaces; may be empty. */
  scopes: string[];
  realm?: string;
  service?: string;
  /** The server's `error_description`, if any. */
  description?: string;
}

/**
 * Detects `Bearer error="insufficient_scope", scope="..."` in `WWW-Authenticate` header values;
 * undefined when no Bearer challenge reports that error.
 */
export function parseScopeError(
  header: string | readonly string[] | undefined | null,
): InsufficientScope | undefined {
  const ch = parseChallenges(header).find(
    (c) => c.scheme === 'bearer' && c.params.error?.toLowerCase() === 'insufficient_scope',
  );
  if (!ch) return undefined;
  const r: InsufficientScope = { scopes: (ch.params.scope ?? '').split(' ').filter(Boolean) };
  if (ch.params.realm !== undefined) r.realm = ch.params.realm;
  if (ch.params.service !== undefined) r.service = ch.params.service;
  if (ch.params.error_description !== undefined) r.description = ch.params.error_description;
  return r;
}

/** Whether `s` is an RFC 7230 token (usable as a scheme or param name). */
export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (const c of s) if (!TCHAR.test(c)) return false;
  return true;
}
