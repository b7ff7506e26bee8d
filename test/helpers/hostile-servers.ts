import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer as createTcpServer, type Socket, type Server as TcpServer } from 'node:net';
import { join } from 'node:path';

/**
 * Small lying HTTP servers for what a real registry will not do: foreign challenges, ambiguous
 * manifests, endless pagination, silence and trickles. Loopback only, ephemeral ports; every one
 * records its requests (headers included, so tests can assert what was NOT sent) and has `stop()`.
 */

export interface HostileRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
}

export interface HostileServer {
  /** `127.0.0.1:PORT`, for image references. */
  host: string;
  url: string;
  requests: HostileRequest[];
  stop(): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

/** Any handler on 127.0.0.1; requests are recorded before the handler runs. */
export async function startHostile(handler: Handler): Promise<HostileServer> {
  const requests: HostileRequest[] = [];
  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push({
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: { ...req.headers },
    });
    req.resume();
    try {
      await handler(req, res, url);
    } catch {
      res.destroy();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    requests,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function send(
  res: ServerResponse,
  status: number,
  body: string | Buffer,
  headers: Record<string, string> = {},
) {
  const b = Buffer.from(body);
  res.writeHead(status, { 'content-length': String(b.length), ...headers }).end(b);
}

/**
 * A token realm that hands out a token to anyone and records who asked (its `requests` show
 * whether an Authorization header or an `account` arrived).
 */
export function startRecordingRealm(): Promise<HostileServer> {
  return startHostile((_req, res) =>
    send(res, 200, JSON.stringify({ token: 'foreign-token', expires_in: 300 }), {
      'content-type': 'application/json',
    }),
  );
}

/**
 * A CDN stand-in that answers everything with `401` and `WWW-Authenticate: Bearer realm="REALM"`
 * (the challenge of another origin that a blob redirect lands on).
 */
export function startChallengingOrigin(realm: string): Promise<HostileServer> {
  return startHostile((_req, res) =>
    send(res, 401, '{"errors":[{"code":"UNAUTHORIZED"}]}', {
      'content-type': 'application/json',
      'www-authenticate': `Bearer realm="${realm}",service="cdn",scope="repository:x:pull"`,
    }),
  );
}

/** What a lying registry serves for one manifest path: bytes and the Content-Type it claims. */
export interface LyingManifest {
  body: Buffer;
  contentType: string;
}

/**
 * A registry that serves `GET/HEAD /v2/<repo>/manifests/<ref>` from `manifests` (key:
 * `repo/ref`, Content-Type as given, or chosen per request by `contentTypeFor`), blobs from an OCI
 * layout's `blobs/` directory, and `tags/list` from `tags` (a function, so it can lie about `Link`).
 */
export function startLyingRegistry(opts: {
  manifests?: Map<string, LyingManifest>;
  contentTypeFor?: (req: IncomingMessage, m: LyingManifest) => string;
  blobsDir?: string;
  tags?: (url: URL) => { body: string; link?: string };
}): Promise<HostileServer> {
  return startHostile(async (req, res, url) => {
    if (url.pathname === '/v2/' || url.pathname === '/v2') return send(res, 200, '{}');
    const man = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(url.pathname);
    if (man) {
      const m = opts.manifests?.get(`${man[1]}/${man[2]}`);
      if (!m) return send(res, 404, '{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
      const ct = opts.contentTypeFor?.(req, m) ?? m.contentType;
      if (req.method === 'HEAD') {
        res.writeHead(200, { 'content-length': String(m.body.length), 'content-type': ct }).end();
        return;
      }
      return send(res, 200, m.body, { 'content-type': ct });
    }
    const blob = /^\/v2\/.+\/blobs\/sha256:([0-9a-f]{64})$/.exec(url.pathname);
    if (blob && opts.blobsDir) {
      const file = join(opts.blobsDir, 'sha256', blob[1]!);
      const size = await stat(file).then(
        (s) => s.size,
        () => -1,
      );
      if (size < 0) return send(res, 404, '{"errors":[{"code":"BLOB_UNKNOWN"}]}');
      res.writeHead(200, { 'content-length': String(size), 'content-type': 'application/octet-stream' });
      if (req.method === 'HEAD') return void res.end();
      createReadStream(file).pipe(res);
      return;
    }
    if (/\/tags\/list$/.test(url.pathname) && opts.tags) {
      const t = opts.tags(url);
      return send(res, 200, t.body, {
        'content-type': 'application/json',
        ...(t.link ? { link: t.link } : {}),
      });
    }
    send(res, 404, '{"errors":[{"code":"NAME_UNKNOWN"}]}');
  });
}

/** A TCP server that accepts connections and never sends a byte (nor closes). */
export async function startSilentServer(): Promise<HostileServer> {
  const sockets = new Set<Socket>();
  const server: TcpServer = createTcpServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    s.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    requests: [],
    stop: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * An HTTP server that answers every request with `200` and `body`, one byte per `intervalMs`:
 * the whole response (status line and headers too), or with `headersAtOnce` only the body —
 * a connection that never goes idle.
 */
export async function startTrickleServer(
  body: Buffer,
  intervalMs: number,
  opts: { headersAtOnce?: boolean } = {},
): Promise<HostileServer> {
  const sockets = new Set<Socket>();
  const requests: HostileRequest[] = [];
  const server: TcpServer = createTcpServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    let started = false;
    s.on('data', (chunk: Buffer) => {
      if (started) return;
      started = true;
      const line = /^(\S+) (\S+)/.exec(chunk.toString('latin1'));
      const url = new URL(line?.[2] ?? '/', 'http://x');
      requests.push({ method: line?.[1] ?? '', path: url.pathname, query: {}, headers: {} });
      const head = Buffer.from(
        `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`,
      );
      let out = opts.headersAtOnce ? body : Buffer.concat([head, body]);
      if (opts.headersAtOnce) s.write(head);
      const t = setInterval(() => {
        if (s.destroyed || out.length === 0) {
          clearInterval(t);
          s.end();
          return;
        }
        s.write(out.subarray(0, 1));
        out = out.subarray(1);
      }, intervalMs);
      s.on('close', () => {
        clearInterval(t);
        sockets.delete(s);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    requests,
    stop: () =>
      new Promise((resolve) => {
        for (const x of sockets) x.destroy();
        server.close(() => resolve());
      }),
  };
}
