import { parseChallenges } from '../auth/index.ts';
import { Limits, readAtMost } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { redactUrl } from '../util/index.ts';
import type { Http, HttpResponse } from './http.ts';

/** What the registry client needs to know about a credential (the `auth` module produces these). */
export type RegistryCredential =
  | { kind: 'anonymous'; source?: string }
  | { kind: 'basic'; username: string; password: string; source?: string }
  | { kind: 'bearer'; token: string; source?: string }
  | { kind: 'identity-token'; token: string; username?: string; source?: string };

/** Resolves the credential for a repository of this registry. */
export type CredentialLookup = (repository: string) => Promise<RegistryCredential>;

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

const MIN_TOKEN_LIFETIME_S = 60;

/**
 * Answers a registry's authentication challenges: Bearer tokens (GET with optional Basic
 * credentials, or the OAuth2 POST form), Basic, registry tokens given directly. Tokens are cached
 * per realm, service, scope set and credential until shortly before they expire.
 */
export class Authenticator {
  readonly #http: Http;
  readonly #lookup: CredentialLookup;
  readonly #registry: string;
  #challenge: Challenge | undefined;
  readonly #tokens = new Map<string, CachedToken>();
  readonly #pending = new Map<string, Promise<CachedToken>>();
  readonly #credentials = new Map<string, Promise<RegistryCredential>>();
  /** Every secret this authenticator has handled, to scrub from server-provided text. */
  readonly secrets = new Set<string>();

  constructor(http: Http, registry: string, lookup: CredentialLookup) {
    this.#http = http;
    this.#registry = registry;
    this.#lookup = lookup;
  }

  /** The credential for `repository` (memoised). */
  credential(repository: string): Promise<RegistryCredential> {
    let p = this.#credentials.get(repository);
    if (!p) {
      p = this.#lookup(repository).then((c) => {
        if (c.kind === 'basic') {
          this.secrets.add(c.password);
          // What a server echoing the header would show.
          this.secrets.add(basicHeader(c.username, c.password).slice('Basic '.length));
        }
        if (c.kind === 'bearer' || c.kind === 'identity-token') this.secrets.add(c.token);
        return c;
      });
      this.#credentials.set(repository, p);
    }
    return p;
  }

  /** Remembers the challenge of a 401 (from the /v2/ ping or any request). */
  learn(res: HttpResponse): Challenge | undefined {
    const challenges = parseChallenges(res.headers['www-authenticate']);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const chosen = bearer ?? challenges.find((c) => c.scheme === 'basic') ?? challenges[0];
    if (chosen) this.#challenge = chosen;
    return chosen;
  }

  get scheme(): string | undefined {
    return this.#challenge?.scheme;
  }

  /**
   * The `Authorization` header for a request needing `scopes` in `repository`, or undefined when
   * the registry asked for nothing (or there is nothing to send).
   */
  async authorization(
    repository: string,
    scopes: string[],
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const cred = await this.credential(repository);
    if (cred.kind === 'bearer') return `Bearer ${cred.token}`;
    const ch = this.#challenge;
    if (!ch) return undefined;
    if (ch.scheme === 'basic') {
      if (cred.kind === 'basic') return basicHeader(cred.username, cred.password);
      return undefined;
    }
    if (ch.scheme === 'bearer') {
      const token = await this.#token(ch, cred, scopes, signal);
      this.secrets.add(token.token);
      return `Bearer ${token.token}`;
    }
    return undefined;
  }

  /** Whether requests will carry credentials (for error messages). */
  async hasCredentials(repository: string): Promise<boolean> {
    return (await this.credential(repository)).kind !== 'anonymous';
  }

  /** After a 401 on an authorised request: the extra scopes the server asks for, if any. */
  insufficientScope(res: HttpResponse): string[] {
    const ch = parseChallenges(res.headers['www-authenticate']).find((c) => c.scheme === 'bearer');
    if (ch?.params.error === 'insufficient_scope' && ch.params.scope)
      return ch.params.scope.split(' ').filter(Boolean);
    return [];
  }

  /** Forgets cached tokens (after the server rejected one). */
  invalidate(): void {
    this.#tokens.clear();
  }

  async #token(
    ch: Challenge,
    cred: RegistryCredential,
    scopes: string[],
    signal?: AbortSignal,
  ): Promise<CachedToken> {
    const realm = ch.params.realm;
    if (!realm) {
      throw new LadingError(
        ErrorCode.Auth,
        `registry ${this.#registry} sent a Bearer challenge without a realm`,
        {
          registry: this.#registry,
        },
      );
    }
    const service = ch.params.service;
    const sorted = [...new Set(scopes)].sort();
    const who =
      cred.kind === 'basic' ? `basic:${cred.username}` : cred.kind === 'identity-token' ? 'identity' : 'anon';
    const key = `${realm}|${service ?? ''}|${sorted.join(' ')}|${who}`;
    const cached = this.#tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return cached;
    let pending = this.#pending.get(key);
    if (!pending) {
      pending = this.#fetchToken(realm, service, sorted, cred, signal).finally(() =>
        this.#pending.delete(key),
      );
      this.#pending.set(key, pending);
    }
    const token = await pending;
    this.#tokens.set(key, token);
    return token;
  }

  async #fetchToken(
    realm: string,
    service: string | undefined,
    scopes: string[],
    cred: RegistryCredential,
    signal?: AbortSignal,
  ): Promise<CachedToken> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new LadingError(ErrorCode.Auth, `registry ${this.#registry} sent an invalid token realm`, {
        registry: this.#registry,
      });
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new LadingError(ErrorCode.Auth, `token realm must be http(s), got ${url.protocol}`, {
        registry: this.#registry,
      });
    }
    let res: HttpResponse;
    if (cred.kind === 'identity-token') {
      res = await this.#postForm(
        url,
        {
          grant_type: 'refresh_token',
          refresh_token: cred.token,
          service,
          scope: scopes.join(' '),
          client_id: 'lading',
        },
        signal,
      );
    } else {
      const q = new URL(url);
      if (service) q.searchParams.set('service', service);
      for (const s of scopes) q.searchParams.append('scope', s);
      if (cred.kind === 'basic') q.searchParams.set('account', cred.username);
      const headers: Record<string, string> = {};
      if (cred.kind === 'basic') headers.authorization = basicHeader(cred.username, cred.password);
      res = await this.#http.send(q, { method: 'GET', headers, signal });
      if ((res.status === 404 || res.status === 405) && cred.kind === 'basic') {
        // Token servers that only speak the OAuth2 form (RFC 6749 password grant).
        await res.body.dump().catch(() => {});
        res = await this.#postForm(
          url,
          {
            grant_type: 'password',
            username: cred.username,
            password: cred.password,
            service,
            scope: scopes.join(' '),
            client_id: 'lading',
          },
          signal,
        );
      }
    }
    if (res.status !== 200) {
      await res.body.dump().catch(() => {});
      const rejected = res.status === 401 || res.status === 403;
      throw new LadingError(
        rejected ? ErrorCode.Unauthorized : ErrorCode.Auth,
        `token request to ${redactUrl(url)} for registry ${this.#registry} failed with HTTP ${res.status}${
          rejected
            ? cred.kind === 'anonymous'
              ? ' (anonymous access refused)'
              : ' (credentials rejected)'
            : ''
        }`,
        { registry: this.#registry, url: redactUrl(url), status: res.status, temporary: res.status >= 500 },
      );
    }
    const raw = await readAtMost(res.body, Limits.token, `token response from ${redactUrl(url)}`);
    let json: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new LadingError(ErrorCode.Auth, `token response from ${redactUrl(url)} is not JSON`, {
        registry: this.#registry,
      });
    }
    const token = typeof json.token === 'string' && json.token ? json.token : json.access_token;
    if (typeof token !== 'string' || !token) {
      throw new LadingError(ErrorCode.Auth, `token response from ${redactUrl(url)} has no token`, {
        registry: this.#registry,
      });
    }
    const lifetime = Math.max(
      MIN_TOKEN_LIFETIME_S,
      typeof json.expires_in === 'number' ? json.expires_in : 0,
    );
    const issued = typeof json.issued_at === 'string' ? Date.parse(json.issued_at) : Number.NaN;
    const start = Number.isNaN(issued) || issued > Date.now() ? Date.now() : issued;
    // Refresh a little early so a token never expires in flight.
    return { token, expiresAt: start + lifetime * 1000 - 5_000 };
  }

  #postForm(
    url: URL,
    fields: Record<string, string | undefined>,
    signal?: AbortSignal,
  ): Promise<HttpResponse> {
    const body = new URLSearchParams();
    for (const [k, v] of Object.entries(fields)) if (v) body.set(k, v);
    return this.#http.send(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: body.toString(),
      signal,
    });
  }
}

function basicHeader(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}
