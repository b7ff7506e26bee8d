import { readFile } from 'node:fs/promises';
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

/** A fault to inject for matching requests. */
export interface FaultRule {
  method?: string;
  path: RegExp;
  /** How many matching requests get the fault (default 1). */
  times?: number;
  /** Send headers and this many body bytes, then destroy the connection. */
  dropAfterBytes?: number;
  /** Answer with this status (e.g. 429, 503) and no body. */
  status?: number;
  retryAfter?: string;
  /** Flip the byte at this body offset (length unchanged). */
  tamperAt?: number;
  /** Answer 307 to the same path on this origin (with a signed-looking query string). */
  redirectTo?: string;
  /** Wait this long before forwarding. */
  delayMs?: number;
}

export interface ProxyLogEntry {
  method: string;
  path: string;
  range: string | undefined;
  authorization: boolean;
  status: number;
  fault?: string;
}

export interface FaultProxy {
  host: string;
  url: string;
  log: ProxyLogEntry[];
  rules: FaultRule[];
  addRule(rule: FaultRule): void;
  clear(): void;
  stop(): Promise<void>;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/**
 * A real HTTP reverse proxy in front of a registry that forwards faithfully (streaming, HEAD, Range)
 * and injects what a registry will not do on demand: dropped connections, 429/5xx, tampered bytes,
 * redirects to another origin.
 */
export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const up = new URL(upstream);
  const log: ProxyLogEntry[] = [];
  const rules: (FaultRule & { left: number })[] = [];
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    const rule = rules.find((r) => r.left > 0 && (!r.method || r.method === req.method) && r.path.test(path));
    if (rule) rule.left--;
    if (rule?.delayMs) await new Promise((r) => setTimeout(r, rule.delayMs));
    const entry: ProxyLogEntry = {
      method: req.method ?? 'GET',
      path,
      range: req.headers.range,
      authorization: Boolean(req.headers.authorization),
      status: 0,
    };
    log.push(entry);
    if (rule?.status) {
      entry.status = rule.status;
      entry.fault = `status ${rule.status}`;
      const h: Record<string, string> = { 'content-length': '0' };
      if (rule.retryAfter) h['retry-after'] = rule.retryAfter;
      res.writeHead(rule.status, h).end();
      req.resume();
      return;
    }
    if (rule?.redirectTo) {
      entry.status = 307;
      entry.fault = 'redirect';
      res
        .writeHead(307, {
          location: `${rule.redirectTo}${path}?X-Amz-Signature=s3cr3t-signature&X-Amz-Expires=300`,
          'content-length': '0',
        })
        .end();
      req.resume();
      return;
    }
    const headers = { ...req.headers, host: up.host };
    const proxied = httpRequest(
      { host: up.hostname, port: up.port, method: req.method, path, headers },
      (upRes) => {
        entry.status = upRes.statusCode ?? 0;
        const outHeaders = { ...upRes.headers };
        if (typeof outHeaders.location === 'string' && outHeaders.location.startsWith(upstream)) {
          outHeaders.location = outHeaders.location.replace(upstream, `http://${req.headers.host}`);
        }
        res.writeHead(upRes.statusCode ?? 502, outHeaders);
        let sent = 0;
        upRes.on('data', (chunk: Buffer) => {
          let c = chunk;
          if (rule?.tamperAt !== undefined && rule.tamperAt >= sent && rule.tamperAt < sent + c.length) {
            c = Buffer.from(c);
            c[rule.tamperAt - sent] = c[rule.tamperAt - sent]! ^ 0xff;
            entry.fault = 'tamper';
          }
          if (rule?.dropAfterBytes !== undefined && sent + c.length > rule.dropAfterBytes) {
            res.write(c.subarray(0, rule.dropAfterBytes - sent));
            entry.fault = 'drop';
            upRes.destroy();
            res.socket?.destroy();
            return;
          }
          sent += c.length;
          res.write(c);
        });
        upRes.on('end', () => res.end());
      },
    );
    proxied.on('error', () => res.destroy());
    req.pipe(proxied);
  });
  const port = await listen(server);
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    log,
    rules,
    addRule: (r) => rules.push({ ...r, left: r.times ?? 1 }),
    clear: () => {
      rules.length = 0;
      log.length = 0;
    },
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface BlobOrigin {
  url: string;
  /** Headers of every request it received (lower-case names). */
  requests: { path: string; headers: Record<string, string | string[] | undefined> }[];
  stop(): Promise<void>;
}

/**
 * A second origin standing in for S3 or a CDN: serves blobs straight from the registry's storage
 * directory, requires the signed query parameter, and records the headers it received.
 */
export async function startBlobOrigin(storageDir: string): Promise<BlobOrigin> {
  const requests: BlobOrigin['requests'] = [];
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push({ path: url.pathname, headers: { ...req.headers } });
    if (!url.searchParams.get('X-Amz-Signature')) {
      res.writeHead(403).end('missing signature');
      return;
    }
    if (req.headers.authorization) {
      res.writeHead(400).end('Only one auth mechanism allowed');
      return;
    }
    const m = /^\/v2\/.*\/blobs\/sha256:([0-9a-f]{64})$/.exec(url.pathname);
    if (!m) {
      res.writeHead(404).end();
      return;
    }
    try {
      const data = await readFile(
        join(storageDir, 'docker', 'registry', 'v2', 'blobs', 'sha256', m[1]!.slice(0, 2), m[1]!, 'data'),
      );
      res
        .writeHead(200, { 'content-length': String(data.length), 'content-type': 'application/octet-stream' })
        .end(data);
    } catch {
      res.writeHead(404).end();
    }
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
