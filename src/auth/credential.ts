import { inspect } from 'node:util';

/**
 * A credential for a registry. `source` names where it came from (`--creds`, a file path,
 * `docker-credential-pass`, ...), never the secret itself, for `--debug` reporting.
 */
export type Credential =
  | { kind: 'anonymous'; source: string }
  | { kind: 'basic'; username: string; password: string; source: string }
  /** A registry token sent as `Authorization: Bearer` directly. */
  | { kind: 'bearer'; token: string; source: string }
  /** An OAuth2 refresh token exchanged at the token realm. */
  | { kind: 'identity-token'; token: string; username?: string; source: string };

const REDACTED = '<redacted>';

/** The credential with its secret replaced by `<redacted>`. */
export function redactCredential(c: Credential): Record<string, unknown> {
  switch (c.kind) {
    case 'basic':
      return { kind: c.kind, username: c.username, password: REDACTED, source: c.source };
    case 'bearer':
      return { kind: c.kind, token: REDACTED, source: c.source };
    case 'identity-token':
      return c.username === undefined
        ? { kind: c.kind, token: REDACTED, source: c.source }
        : { kind: c.kind, username: c.username, token: REDACTED, source: c.source };
    default:
      return { kind: c.kind, source: c.source };
  }
}

/**
 * Makes a credential safe to log: `JSON.stringify`, `String()`, template strings and
 * `util.inspect`/`console.log` show the secret as `<redacted>`. The secret fields stay readable for
 * the code that sends them. (A spread copy `{...c}` is a plain object again: seal it anew.)
 */
export function sealCredential<C extends Credential>(c: C): C {
  Object.defineProperties(c, {
    toJSON: { value: () => redactCredential(c), enumerable: false, configurable: true },
    toString: {
      value: () => `[${c.kind} credential from ${c.source}]`,
      enumerable: false,
      configurable: true,
    },
    [inspect.custom]: {
      value: (_depth: number, options: object) => inspect(redactCredential(c), options),
      enumerable: false,
      configurable: true,
    },
  });
  return c;
}

/** The credential of anonymous access with the given source (default `anonymous`). */
export function anonymous(source = 'anonymous'): Credential {
  return sealCredential({ kind: 'anonymous', source });
}

export const ANONYMOUS: Credential = anonymous();
