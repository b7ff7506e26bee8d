import { createPrivateKey, randomBytes, sign, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './bins.ts';

export interface TokenRequestLog {
  method: string;
  scopes: string[];
  service: string | undefined;
  /** Who asked: a user name, or undefined for anonymous. Never a secret. */
  user: string | undefined;
  grant: 'get' | 'password' | 'refresh_token';
  status: number;
}

export interface TokenServerOptions {
  service: string;
  issuer: string;
  users: Record<string, string>;
  /** Repositories anonymous users may pull (prefix match). Default `public/`. */
  publicPrefix?: string;
  /** Actions a user gets on a repository (default: pull and push on everything). */
  grant?: (user: string | undefined, repository: string, wanted: string[]) => string[];
  expiresIn?: number;
}

export interface TokenServer {
  url: string;
  realm: string;
  certPath: string;
  log: TokenRequestLog[];
  /** Refresh tokens issued per user, for identity-token tests. */
  refreshTokens: Map<string, string>;
  stop(): Promise<void>;
}

function b64url(v: Buffer | string): string {
  return Buffer.from(v).toString('base64url');
}

/** A Docker token server (RS256 JWTs with an x5c header), as Docker Hub and GHCR run. */
export async function startTokenServer(opts: TokenServerOptions): Promise<TokenServer> {
  const dir = await mkdtemp(join(tmpdir(), 'lading-token-'));
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    keyPath,
    '-out',
    certPath,
    '-subj',
    '/CN=lading-test',
    '-days',
    '2',
  ]);
  const key = createPrivateKey(readFileSync(keyPath));
  const certDer = new X509Certificate(readFileSync(certPath)).raw;
  const log: TokenRequestLog[] = [];
  const refreshTokens = new Map<string, string>();
  const publicPrefix = opts.publicPrefix ?? 'public/';
  const grant =
    opts.grant ??
    ((user: string | undefined, repo: string, wanted: string[]) =>
      user ? wanted : repo.startsWith(publicPrefix) ? wanted.filter((a) => a === 'pull') : []);

  function issue(user: string | undefined, scopes: string[]): Record<string, unknown> {
    const now = Math.floor(Date.now() / 1000);
    const access = scopes
      .map((s) => {
        const parts = s.split(':');
        if (parts.length < 3 || parts[0] !== 'repository') return undefined;
        const actions = parts[parts.length - 1]!.split(',');
        const name = parts.slice(1, -1).join(':');
        return { type: 'repository', name, actions: grant(user, name, actions) };
      })
      .filter((a) => a !== undefined && a.actions.length > 0);
    const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer.toString('base64')] };
    const claims = {
      iss: opts.issuer,
      sub: user ?? '',
      aud: opts.service,
      exp: now + (opts.expiresIn ?? 300),
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access,
    };
    const data = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const token = `${data}.${b64url(sign('sha256', Buffer.from(data), key))}`;
    return {
      token,
      access_token: token,
      expires_in: opts.expiresIn ?? 300,
      issued_at: new Date().toISOString(),
    };
  }

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const reply = (status: number, body: unknown, entry: Omit<TokenRequestLog, 'status'>): void => {
      log.push({ ...entry, status });
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (url.pathname !== '/token') {
      res.writeHead(404).end();
      return;
    }
    if (req.method === 'GET') {
      const scopes = url.searchParams
        .getAll('scope')
        .flatMap((s) => s.split(' '))
        .filter(Boolean);
      const service = url.searchParams.get('service') ?? undefined;
      let user: string | undefined;
      const authz = req.headers.authorization;
      if (authz?.startsWith('Basic ')) {
        const text = Buffer.from(authz.slice(6), 'base64').toString('utf8');
        const i = text.indexOf(':');
        const u = text.slice(0, i);
        if (opts.users[u] === undefined || opts.users[u] !== text.slice(i + 1)) {
          reply(
            401,
            { errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] },
            { method: 'GET', scopes, service, user: u, grant: 'get' },
          );
          return;
        }
        user = u;
      }
      reply(200, issue(user, scopes), { method: 'GET', scopes, service, user, grant: 'get' });
      return;
    }
    if (req.method === 'POST') {
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString('utf8');
      });
      req.on('end', () => {
        const f = new URLSearchParams(body);
        const scopes = (f.get('scope') ?? '').split(' ').filter(Boolean);
        const service = f.get('service') ?? undefined;
        const g = f.get('grant_type');
        if (g === 'password') {
          const u = f.get('username') ?? '';
          if (opts.users[u] === undefined || opts.users[u] !== f.get('password')) {
            reply(
              401,
              { error: 'invalid_grant' },
              { method: 'POST', scopes, service, user: u, grant: 'password' },
            );
            return;
          }
          const refresh = randomBytes(16).toString('hex');
          refreshTokens.set(u, refresh);
          reply(
            200,
            { ...issue(u, scopes), refresh_token: refresh },
            { method: 'POST', scopes, service, user: u, grant: 'password' },
          );
          return;
        }
        if (g === 'refresh_token') {
          const t = f.get('refresh_token');
          const u = [...refreshTokens.entries()].find(([, v]) => v === t)?.[0];
          if (!u) {
            reply(
              401,
              { error: 'invalid_grant' },
              { method: 'POST', scopes, service, user: undefined, grant: 'refresh_token' },
            );
            return;
          }
          reply(200, issue(u, scopes), { method: 'POST', scopes, service, user: u, grant: 'refresh_token' });
          return;
        }
        reply(
          400,
          { error: 'unsupported_grant_type' },
          { method: 'POST', scopes, service, user: undefined, grant: 'password' },
        );
      });
      return;
    }
    res.writeHead(405).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    realm: `${url}/token`,
    certPath,
    log,
    refreshTokens,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
