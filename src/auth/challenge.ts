/** One authentication challenge from a `WWW-Authenticate` header. */
export interface Challenge {
  /** Lower-case scheme: `bearer`, `basic`, … */
  scheme: string;
  /** Auth-params with lower-case names; a token68 is kept under `token68`. */
  params: Record<string, string>;
}

const TOKEN = /[!#$%&'*+\-.^_`|~0-9A-Za-z]+/y;
const TOKEN68 = /[A-Za-z0-9\-._~+/]+=*/y;

/**
 * Parses one or several `WWW-Authenticate` header values (RFC 7235): several challenges per header,
 * quoted strings with `\` escapes, commas inside quotes, token68. Never throws: what cannot be
 * parsed ends the list.
 */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const values = Array.isArray(header) ? header : [header];
  const out: Challenge[] = [];
  for (const v of values) out.push(...parseOne(v));
  return out;
}

function parseOne(s: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const ws = (): void => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const token = (): string | undefined => {
    TOKEN.lastIndex = i;
    const m = TOKEN.exec(s);
    if (!m) return undefined;
    i = TOKEN.lastIndex;
    return m[0];
  };
  const quoted = (): string | undefined => {
    if (s[i] !== '"') return undefined;
    i++;
    let v = '';
    while (i < s.length && s[i] !== '"') {
      if (s[i] === '\\' && i + 1 < s.length) i++;
      v += s[i];
      i++;
    }
    if (s[i] !== '"') return undefined;
    i++;
    return v;
  };
  for (;;) {
    ws();
    while (s[i] === ',') {
      i++;
      ws();
    }
    if (i >= s.length) break;
    const scheme = token();
    if (!scheme) break;
    const ch: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(ch);
    ws();
    // token68?
    const save = i;
    TOKEN68.lastIndex = i;
    const t68 = TOKEN68.exec(s);
    if (t68) {
      const after = TOKEN68.lastIndex;
      let j = after;
      while (j < s.length && (s[j] === ' ' || s[j] === '\t')) j++;
      if ((j >= s.length || s[j] === ',') && !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\s*=/.test(s.slice(save))) {
        ch.params.token68 = t68[0];
        i = after;
        continue;
      }
    }
    i = save;
    // auth-params
    for (;;) {
      ws();
      const before = i;
      const name = token();
      if (!name) break;
      ws();
      if (s[i] !== '=') {
        // Next challenge's scheme.
        i = before;
        break;
      }
      i++;
      ws();
      const value = s[i] === '"' ? quoted() : token();
      if (value === undefined) return out;
      ch.params[name.toLowerCase()] = value;
      ws();
      if (s[i] === ',') {
        i++;
        continue;
      }
      break;
    }
  }
  return out;
}

/** Prints challenges back (quoted values), for tests and debugging. */
export function formatChallenge(c: Challenge): string {
  const params = Object.entries(c.params)
    .filter(([k]) => k !== 'token68')
    .map(([k, v]) => `${k}="${v.replace(/(["\\])/g, '\\$1')}"`);
  return [c.scheme, [c.params.token68, ...params].filter(Boolean).join(', ')].filter(Boolean).join(' ');
}
