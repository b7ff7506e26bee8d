import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

/** A fault to inject for matching requests. A request gets the first rule that matches and has uses left. */
export interface FaultRule {
  /** Only this method (e.g. 'GET', 'HEAD'); any when absent. */
  method?: string;
  /** Tested against the request target (path and query). */
  path: RegExp;
  /** Further predicate on the request (headers etc.). */
  when?: (req: IncomingMessage) => boolean;
  /** How many matching requests get the fault (default 1; `Infinity` for all). */
  times?: number;
  /** Send the headers and this many body bytes, then destroy the connection. */
  dropAfterBytes?: number;
  /**
   * Read this many bytes of the REQUEST body (an upload), then destroy the connection without
   * answering; nothing is forwarded.
   */
  dropRequestAfterBytes?: number;
  /** Answer with this status (e.g. 429, 500, 503) instead of forwarding. */
  status?: number;
  /** `Retry-After` of a `status` answer. */
  retryAfter?: string;
  /** Body of a `status` answer (default empty). */
  body?: string;
  /** Flip the byte at this body offset (length unchanged). */
  tamperAt?: number;
  /**
   * Answer a redirect to the same path on this origin, with an S3-like signed query
   * (`X-Amz-Signature=…`), as Docker Hub, GHCR and ECR do for blobs.
   */
  redirectTo?: string;
  /** Status of a `redirectTo` answer (default 307). */
  redirectStatus?: 301 | 302 | 303 | 307 | 308;
  /** Wait this long before handling the request. */
  delayMs?: number;
  /** Forward without the `Range` header and without `Accept-Ranges` (a registry that ignores ranges). */
  ignoreRange?: boolean;
  /** Set (string) or remove (null) response headers of a forwarded request. */
  responseHeaders?: Record<string, string | null>;
  /** Point a forwarded response's registry `Location` at this origin (e.g. another proxy) instead of this proxy. */
  locationTo?: string;
  /** Set request headers before forwarding (a storage backend that authorises by its own means). */
  requestHeaders?: Record<string, string>;
}

export interface ProxyLogEntry {
  method: string;
  /** The request target, path and query. */
  path: string;
  range: string | undefined;
  /** Whether an Authorization header was sent (never its value). */
  authorization: boolean;
  /** Status sent to the client (0 when the upstream did not answer). */
  status: number;
  /** Body bytes sent to the client. */
  bytes: number;
  fault?: 'drop' | 'tamper' | 'redirect' | 'delay' | `status ${number}`;
}

export interface FaultProxy {
  /** `127.0.0.1:PORT`, for image references. */
  host: string;
  url: string;
  upstream: string;
  log: ProxyLogEntry[];
  rules: (FaultRule & { left: number })[];
  addRule(rule: FaultRule): void;
  /** Removes every rule and empties the log. */
  clear(): void;
  stop(): Promise<void>;
}

const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
];

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

function withoutHopByHop(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ...h };
  for (const k of HOP_BY_HOP) delete out[k];
  return out;
}

/**
 * A real HTTP reverse proxy in front of a registry that forwards faithfully (streaming, all headers,
 * HEAD, Range, uploads) and injects what a registry will not do on demand: dropped connections,
 * 429/5xx, tampered bytes, redirects to another origin, delays. `Location` headers pointing at the
 * registry are rewritten to the proxy; `WWW-Authenticate` is left alone (the token server is separate).
 */
export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const up = new URL(upstream);
  const log: ProxyLogEntry[] = [];
  const rules: (FaultRule & { left: number })[] = [];
  let self = '';
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    const rule = rules.find(
      (r) =>
        r.left > 0 && (!r.method || r.method === req.method) && r.path.test(path) && (!r.when || r.when(req)),
    );
    if (rule) rule.left--;
    const entry: ProxyLogEntry = {
      method: req.method ?? 'GET',
      path,
      range: req.headers.range,
      authorization: req.headers.authorization !== undefined,
      status: 0,
      bytes: 0,
    };
    log.push(entry);
    if (rule?.delayMs) {
      entry.fault = 'delay';
      await new Promise((r) => setTimeout(r, rule.delayMs));
    }
    if (rule?.dropRequestAfterBytes !== undefined) {
      const limit = rule.dropRequestAfterBytes;
      entry.fault = 'drop';
      let got = 0;
      req.on('data', (c: Buffer) => {
        got += c.length;
        if (got > limit) req.socket.destroy();
      });
      req.on('end', () => req.socket.destroy());
      return;
    }
    if (rule?.status) {
      entry.status = rule.status;
      entry.fault = `status ${rule.status}`;
      const body = Buffer.from(rule.body ?? '');
      const h: Record<string, string> = { 'content-length': String(body.length) };
      if (body.length) h['content-type'] = 'application/json';
      if (rule.retryAfter) h['retry-after'] = rule.retryAfter;
      res.writeHead(rule.status, h).end(req.method === 'HEAD' ? undefined : body);
      req.resume();
      return;
    }
    if (rule?.redirectTo) {
      const status = rule.redirectStatus ?? 307;
      entry.status = status;
      entry.fault = 'redirect';
      const target = new URL(path, rule.redirectTo.endsWith('/') ? rule.redirectTo : `${rule.redirectTo}/`);
      const base = new URL(rule.redirectTo);
      target.pathname = base.pathname.replace(/\/$/, '') + new URL(path, 'http://x').pathname;
      target.searchParams.set('X-Amz-Algorithm', 'AWS4-HMAC-SHA256');
      target.searchParams.set('X-Amz-Expires', '300');
      target.searchParams.set('X-Amz-Signature', 's3cr3t-signature');
      res.writeHead(status, { location: target.href, 'content-length': '0' }).end();
      req.resume();
      return;
    }
    const headers = withoutHopByHop(req.headers);
    headers.host = up.host;
    if (rule?.ignoreRange) delete headers.range;
    for (const [k, v] of Object.entries(rule?.requestHeaders ?? {})) headers[k.toLowerCase()] = v;
    const proxied = httpRequest(
      { host: up.hostname, port: up.port, method: req.method, path, headers },
      (upRes) => {
        const status = upRes.statusCode ?? 502;
        entry.status = status;
        const out = withoutHopByHop(upRes.headers);
        if (typeof out.location === 'string') {
          const loc = new URL(out.location, upstream);
          if (loc.origin === up.origin) out.location = (rule?.locationTo ?? self) + loc.pathname + loc.search;
        }
        if (rule?.ignoreRange) delete out['accept-ranges'];
        for (const [k, v] of Object.entries(rule?.responseHeaders ?? {})) {
          if (v === null) delete out[k.toLowerCase()];
          else out[k.toLowerCase()] = v;
        }
        res.writeHead(status, out);
        res.on('close', () => upRes.destroy());
        let sent = 0;
        upRes.on('data', (chunk: Buffer) => {
          let c = chunk;
          if (rule?.tamperAt !== undefined && rule.tamperAt >= sent && rule.tamperAt < sent + c.length) {
            c = Buffer.from(c);
            c[rule.tamperAt - sent] = c[rule.tamperAt - sent]! ^ 0xff;
            entry.fault = 'tamper';
          }
          if (rule?.dropAfterBytes !== undefined && sent + c.length > rule.dropAfterBytes) {
            const part = c.subarray(0, rule.dropAfterBytes - sent);
            entry.fault = 'drop';
            entry.bytes += part.length;
            upRes.destroy();
            // Flush the partial chunk, then cut the connection without a terminating chunk.
            res.write(part, () => res.socket?.destroy());
            return;
          }
          sent += c.length;
          entry.bytes += c.length;
          res.write(c);
        });
        upRes.on('end', () => res.end());
        upRes.on('error', () => res.destroy());
      },
    );
    proxied.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'content-length': '0' }).end();
      else res.destroy();
    });
    req.pipe(proxied);
  });
  const port = await listen(server);
  self = `http://127.0.0.1:${port}`;
  return {
    host: `127.0.0.1:${port}`,
    url: self,
    upstream,
    log,
    rules,
    addRule: (r) => rules.push({ ...r, left: r.times ?? 1 }),
    clear: () => {
      rules.length = 0;
      log.length = 0;
    },
    stop: () => close(server),
  };
}

export interface BlobOriginRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  /** Every request header (lower-case names), to assert e.g. that no Authorization arrived. */
  headers: IncomingHttpHeaders;
  status: number;
}

export interface BlobOrigin {
  url: string;
  requests: BlobOriginRequest[];
  stop(): Promise<void>;
}

export interface BlobOriginOptions {
  /** Refuse (403) a request without `X-Amz-Signature`, as S3 does for a presigned URL (default true). */
  requireSignature?: boolean;
  /** Refuse (400) a request that carries Authorization, as S3 does next to a signature (default true). */
  rejectAuthorization?: boolean;
}

/**
 * A second origin standing in for S3 or a CDN: serves `/v2/…/blobs/sha256:HEX` straight from the
 * registry's storage directory (GET, HEAD, single `Range`), requires the signed query parameter,
 * refuses an Authorization header, and records every request's headers.
 */
export async function startBlobOrigin(storageDir: string, opts: BlobOriginOptions = {}): Promise<BlobOrigin> {
  const requests: BlobOriginRequest[] = [];
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const rec: BlobOriginRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: { ...req.headers },
      status: 0,
    };
    requests.push(rec);
    req.resume();
    const answer = (status: number, body = '', headers: Record<string, string> = {}): void => {
      rec.status = status;
      res.writeHead(status, { 'content-length': String(Buffer.byteLength(body)), ...headers }).end(body);
    };
    if (opts.requireSignature !== false && !url.searchParams.get('X-Amz-Signature'))
      return answer(403, '<Error><Code>AccessDenied</Code></Error>');
    if (opts.rejectAuthorization !== false && req.headers.authorization)
      return answer(
        400,
        '<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>',
      );
    if (req.method !== 'GET' && req.method !== 'HEAD') return answer(405);
    const m = /^\/v2\/.+\/blobs\/sha256:([0-9a-f]{64})$/.exec(url.pathname);
    if (!m) return answer(404);
    const file = join(
      storageDir,
      'docker',
      'registry',
      'v2',
      'blobs',
      'sha256',
      m[1]!.slice(0, 2),
      m[1]!,
      'data',
    );
    let size: number;
    try {
      size = (await stat(file)).size;
    } catch {
      return answer(404, '<Error><Code>NoSuchKey</Code></Error>');
    }
    let start = 0;
    let end = size - 1;
    let status = 200;
    const headers: Record<string, string> = {
      'content-type': 'application/octet-stream',
      'accept-ranges': 'bytes',
      etag: `"${m[1]}"`,
    };
    const range = req.headers.range;
    if (range) {
      const r = /^bytes=(\d*)-(\d*)$/.exec(range);
      if (!r || (r[1] === '' && r[2] === '')) return answer(416, '', { 'content-range': `bytes */${size}` });
      if (r[1] === '') start = Math.max(0, size - Number(r[2]));
      else {
        start = Number(r[1]);
        if (r[2] !== '') end = Math.min(end, Number(r[2]));
      }
      if (start >= size || start > end) return answer(416, '', { 'content-range': `bytes */${size}` });
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${size}`;
    }
    headers['content-length'] = String(end - start + 1);
    rec.status = status;
    res.writeHead(status, headers);
    if (req.method === 'HEAD' || end < start) {
      res.end();
      return;
    }
    const s = createReadStream(file, { start, end });
    s.on('error', () => res.destroy());
    res.on('close', () => s.destroy());
    s.pipe(res);
  });
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}`, requests, stop: () => close(server) };
}
