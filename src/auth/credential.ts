import { inspect } from 'node:util';

/** A credential for a registry, with where it came from (never the secret itself) in `source`. */
export type Credential =
  | { kind: 'anonymous'; source?: string }
  | { kind: 'basic'; username: string; password: string; source?: string }
  | { kind: 'bearer'; token: string; source?: string }
  | { kind: 'identity-token'; token: string; username?: string; source?: string };

const REDACTED = '<redacted>';

function redacted(c: Credential): Record<string, unknown> {
  switch (c.kind) {
    case 'basic':
      return { kind: c.kind, username: c.username, password: REDACTED, source: c.source };
    case 'bearer':
    case 'identity-token':
      return { kind: c.kind, token: REDACTED, source: c.source };
    default:
      return { kind: c.kind, source: c.source };
  }
}

/**
 * Makes a credential safe to log: `JSON.stringify`, `String()` and `util.inspect` show the secret
 * as `<redacted>`. The secret fields stay readable for the code that sends them.
 */
export function sealCredential<C extends Credential>(c: C): C {
  Object.defineProperties(c, {
    toJSON: { value: () => redacted(c), enumerable: false },
    toString: { value: () => `[${c.kind} credential from ${c.source ?? 'unknown'}]`, enumerable: false },
    [inspect.custom]: { value: () => redacted(c), enumerable: false },
  });
  return c;
}

export const ANONYMOUS: Credential = sealCredential({ kind: 'anonymous', source: 'anonymous' });
