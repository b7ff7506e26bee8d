import { createHash, createPrivateKey, randomBytes, sign, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeAtExit, requireBin, selfSignedCert } from './bins.ts';

/** One request the token server received. Never holds a secret (no password, token or header value). */
export interface TokenRequestLog {
  method: string;
  path: string;
  /** GET: the query parameters. POST: the form fields except `password` and `refresh_token`. */
  query: Record<string, string[]>;
  /** Whether an Authorization header was sent. */
  authorization: boolean;
  scopes: string[];
  service: string | undefined;
  /** Who asked: a user name, or undefined for anonymous. Never a secret. */
  user: string | undefined;
  grant: 'get' | 'password' | 'refresh_token';
  status: number;
  /** What the issued token grants (successful requests). */
  access?: TokenAccess[];
}

export interface TokenAccess {
  type: string;
  name: string;
  actions: string[];
}

/** Repositories a rule covers: a RegExp, or a string where `*` matches any run of characters (incl. `/`). */
export interface AccessRule {
  repository: string | RegExp;
  actions: string[];
}

/**
 * Who may do what. A user listed in `users` gets exactly the actions of the rules that match (the
 * union); an authenticated user not listed gets every action asked for; anonymous requests get
 * `anonymous` (default: pull on `publicPrefix*`).
 */
export interface TokenPolicy {
  users?: Record<string, AccessRule[]>;
  anonymous?: AccessRule[];
}

export interface TokenServerOptions {
  service: string;
  issuer: string;
  users: Record<string, string>;
  /** Repositories anonymous users may pull (prefix match). Default `public/`. */
  publicPrefix?: string;
  policy?: TokenPolicy;
  /** Actions granted, overriding `policy` and `publicPrefix` entirely. */
  grant?: (user: string | undefined, repository: string, wanted: string[]) => string[];
  /** Refuse anonymous token requests with 401 (as a private-only registry does). */
  denyAnonymous?: boolean;
  /** `expires_in` and the `exp` claim, seconds (default 300; the registry allows 60 s of clock skew). */
  expiresIn?: number;
  /** Leave `expires_in` out of the response (clients must assume 60 s). */
  omitExpiresIn?: boolean;
  /**
   * By default a request without `service`, or with another service, is refused with 400; with
   * `ignoreService` it is served (the token's `aud` is still the configured service), as lax token
   * servers do for clients that drop the parameter.
   */
  ignoreService?: boolean;
  /** JWT header key identification: the certificate chain (`x5c`, default), libtrust `kid`, or both. */
  keyId?: 'x5c' | 'kid' | 'both';
  /** Answer only `token` (old servers) or only `access_token` (OAuth2 servers); default both. */
  tokenField?: 'both' | 'token' | 'access_token';
  /** Let the test process exit while the server listens. */
  unref?: boolean;
}

export interface TokenServer {
  url: string;
  /** `${url}/token`, the realm in the registry's challenge. */
  realm: string;
  certPath: string;
  log: TokenRequestLog[];
  /** Refresh tokens issued per user, for identity-token tests. */
  refreshTokens: Map<string, string>;
  /** Decodes a token this server issued (header and claims, signature not checked). */
  decode(token: string): { header: Record<string, unknown>; claims: Record<string, unknown> };
  stop(): Promise<void>;
}

function b64url(v: Buffer | string): string {
  return Buffer.from(v).toString('base64url');
}

/** libtrust key id: base32 of the first 240 bits of sha256(DER SubjectPublicKeyInfo), 12 groups of 4. */
export function libtrustKeyId(spkiDer: Buffer): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const bytes = createHash('sha256').update(spkiDer).digest().subarray(0, 30);
  let bits = '';
  for (const b of bytes) bits += b.toString(2).padStart(8, '0');
  let out = '';
  for (let i = 0; i < bits.length; i += 5) out += alphabet[Number.parseInt(bits.slice(i, i + 5), 2)];
  return out.match(/.{4}/g)!.join(':');
}

function globToRegExp(glob: string): RegExp {
  return new RegExp(
    `^${glob
      .split('*')
      .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
}

function matches(rule: AccessRule, repo: string): boolean {
  return typeof rule.repository === 'string'
    ? globToRegExp(rule.repository).test(repo)
    : rule.repository.test(repo);
}

/** Parses one scope (`repository:NAME:ACTIONS`, NAME may hold `:` as in `host:5000/x`). */
function parseScope(s: string): TokenAccess | undefined {
  const first = s.indexOf(':');
  const last = s.lastIndexOf(':');
  if (first < 0 || last <= first) return undefined;
  return {
    type: s.slice(0, first),
    name: s.slice(first + 1, last),
    actions: s
      .slice(last + 1)
      .split(',')
      .filter(Boolean),
  };
}

async function readBody(req: IncomingMessage, limit = 65536): Promise<string> {
  let body = '';
  for await (const c of req) {
    body += (c as Buffer).toString('utf8');
    if (body.length > limit) throw new Error('body too large');
  }
  return body;
}

/**
 * A Docker token server (RS256 JWTs with an `x5c` header, as Docker Hub and GHCR run) on 127.0.0.1:
 * `GET /token?service=&scope=&account=` with optional Basic auth (`offline_token=true` adds a refresh
 * token), and the OAuth2 `POST /token` form with `grant_type=password` or `refresh_token`.
 */
export async function startTokenServer(opts: TokenServerOptions): Promise<TokenServer> {
  requireBin('openssl');
  const dir = await mkdtemp(join(tmpdir(), 'lading-token-'));
  const unregisterDir = removeAtExit(dir);
  const { keyPath, certPath } = await selfSignedCert(dir, { cn: 'lading-test' });
  const key = createPrivateKey(readFileSync(keyPath));
  const cert = new X509Certificate(readFileSync(certPath));
  const kid = libtrustKeyId(cert.publicKey.export({ type: 'spki', format: 'der' }));
  const log: TokenRequestLog[] = [];
  const refreshTokens = new Map<string, string>();
  const publicPrefix = opts.publicPrefix ?? 'public/';
  const anonymousRules = opts.policy?.anonymous ?? [{ repository: `${publicPrefix}*`, actions: ['pull'] }];
  const grant =
    opts.grant ??
    ((user: string | undefined, repo: string, wanted: string[]): string[] => {
      const rules = user === undefined ? anonymousRules : opts.policy?.users?.[user];
      if (rules === undefined) return wanted;
      const allowed = new Set(rules.filter((r) => matches(r, repo)).flatMap((r) => r.actions));
      return allowed.has('*') ? wanted : wanted.filter((a) => allowed.has(a));
    });
  const keyId = opts.keyId ?? 'x5c';
  const expiresIn = opts.expiresIn ?? 300;

  function issue(
    user: string | undefined,
    scopes: string[],
  ): { body: Record<string, unknown>; access: TokenAccess[] } {
    const now = Math.floor(Date.now() / 1000);
    const access: TokenAccess[] = [];
    for (const s of scopes) {
      const a = parseScope(s);
      if (!a) continue;
      let actions: string[] = [];
      if (a.type === 'repository') actions = grant(user, a.name, a.actions);
      else if (a.type === 'registry' && a.name === 'catalog' && user !== undefined) actions = a.actions;
      if (actions.length > 0) access.push({ type: a.type, name: a.name, actions });
    }
    const header: Record<string, unknown> = { alg: 'RS256', typ: 'JWT' };
    if (keyId !== 'kid') header.x5c = [cert.raw.toString('base64')];
    if (keyId !== 'x5c') header.kid = kid;
    const claims = {
      iss: opts.issuer,
      sub: user ?? '',
      aud: opts.service,
      exp: now + expiresIn,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access,
    };
    const data = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const token = `${data}.${b64url(sign('sha256', Buffer.from(data), key))}`;
    const body: Record<string, unknown> = { issued_at: new Date(now * 1000).toISOString() };
    if (opts.tokenField !== 'access_token') body.token = token;
    if (opts.tokenField !== 'token') body.access_token = token;
    if (!opts.omitExpiresIn) body.expires_in = expiresIn;
    return { body, access };
  }

  function checkUser(u: string, p: string | null | undefined): boolean {
    return Object.hasOwn(opts.users, u) && opts.users[u] === p;
  }

  function newRefresh(u: string): string {
    const refresh = randomBytes(16).toString('hex');
    refreshTokens.set(u, refresh);
    return refresh;
  }

  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const entry: TokenRequestLog = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: {},
      authorization: req.headers.authorization !== undefined,
      scopes: [],
      service: undefined,
      user: undefined,
      grant: 'get',
      status: 0,
    };
    log.push(entry);
    const reply = (status: number, body: unknown): void => {
      entry.status = status;
      const h: Record<string, string> = { 'content-type': 'application/json' };
      if (status === 401) h['www-authenticate'] = 'Basic realm="lading-token"';
      res.writeHead(status, h).end(JSON.stringify(body));
    };
    const error = (status: number, code: string, message: string, oauth = code.toLowerCase()): void =>
      reply(status, { errors: [{ code, message }], error: oauth, error_description: message });
    if (url.pathname !== '/token') return error(404, 'NOT_FOUND', 'no such endpoint');
    let fields: URLSearchParams;
    if (req.method === 'GET') {
      fields = url.searchParams;
    } else if (req.method === 'POST') {
      entry.grant = 'password';
      try {
        fields = new URLSearchParams(await readBody(req));
      } catch {
        return error(413, 'TOO_LARGE', 'form too large');
      }
    } else {
      return error(405, 'UNSUPPORTED', 'GET or POST');
    }
    for (const [k, v] of fields) {
      if (k === 'password' || k === 'refresh_token') continue;
      entry.query[k] = [...(entry.query[k] ?? []), v];
    }
    entry.scopes = fields
      .getAll('scope')
      .flatMap((s) => s.split(' '))
      .filter(Boolean);
    entry.service = fields.get('service') ?? undefined;
    if (!opts.ignoreService && entry.service !== opts.service)
      return error(
        400,
        'INVALID_SERVICE',
        entry.service === undefined ? 'service is required' : `unknown service ${entry.service}`,
      );

    if (req.method === 'GET') {
      const authz = req.headers.authorization;
      if (authz !== undefined) {
        const m = /^Basic\s+(\S+)$/i.exec(authz);
        const text = m ? Buffer.from(m[1]!, 'base64').toString('utf8') : '';
        const i = text.indexOf(':');
        const u = i < 0 ? '' : text.slice(0, i);
        entry.user = u || undefined;
        if (i < 0 || !checkUser(u, text.slice(i + 1))) return error(401, 'UNAUTHORIZED', 'bad credentials');
      } else if (opts.denyAnonymous) {
        return error(401, 'UNAUTHORIZED', 'authentication required');
      }
      const { body, access } = issue(entry.user, entry.scopes);
      entry.access = access;
      if (entry.user !== undefined && fields.get('offline_token') === 'true')
        body.refresh_token = newRefresh(entry.user);
      return reply(200, body);
    }

    const g = fields.get('grant_type');
    if (g === 'password') {
      const u = fields.get('username') ?? '';
      entry.user = u || undefined;
      if (!checkUser(u, fields.get('password')))
        return error(401, 'UNAUTHORIZED', 'bad credentials', 'invalid_grant');
      const { body, access } = issue(u, entry.scopes);
      entry.access = access;
      if (fields.get('access_type') !== 'online') body.refresh_token = newRefresh(u);
      return reply(200, body);
    }
    if (g === 'refresh_token') {
      entry.grant = 'refresh_token';
      const t = fields.get('refresh_token');
      const u = [...refreshTokens.entries()].find(([, v]) => v === t)?.[0];
      if (u === undefined) return error(401, 'UNAUTHORIZED', 'unknown refresh token', 'invalid_grant');
      entry.user = u;
      const { body, access } = issue(u, entry.scopes);
      entry.access = access;
      return reply(200, body);
    }
    return error(
      400,
      'UNSUPPORTED',
      'grant_type must be password or refresh_token',
      'unsupported_grant_type',
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  if (opts.unref) server.unref();
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  let stopped: Promise<void> | undefined;
  return {
    url,
    realm: `${url}/token`,
    certPath,
    log,
    refreshTokens,
    decode(token) {
      const [h, c] = token.split('.');
      return {
        header: JSON.parse(Buffer.from(h ?? '', 'base64url').toString('utf8')) as Record<string, unknown>,
        claims: JSON.parse(Buffer.from(c ?? '', 'base64url').toString('utf8')) as Record<string, unknown>,
      };
    },
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }).then(async () => {
        await rm(dir, { recursive: true, force: true });
        unregisterDir();
      });
      return stopped;
    },
  };
}
