import type { Agent as HttpAgent, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { isIP } from 'node:net';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCode, isLadingError, LadingError } from '../errors/index.ts';
import { redactAuthValues, redactHeaders, redactUrl } from '../util/index.ts';
import type { TlsSettings } from './cert-dir.ts';
import { headersForHop, REDIRECT_STATUSES, redirectTarget } from './origin-policy.ts';
import { DEFAULT_TIMEOUT_MS, StallWatch, type TimeoutPhase, timeoutError } from './timeouts.ts';
import { tlsAlertAfterHandshake } from './tls-alert.ts';

/** How lading retries: bounded attempts, jittered exponential backoff, `Retry-After` honoured. */
export interface RetryOptions {
  /** Extra attempts after the first (default 3). */
  times: number;
  /** Base delay in milliseconds (default 1000); attempt n waits about delay·2ⁿ⁻¹ (±50%). */
  delayMs: number;
  /** Upper bound for any single wait, including a server's `Retry-After` (default 60 s). */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryOptions = { times: 3, delayMs: 1000, maxDelayMs: 60_000 };

export interface HttpOptions {
  /** Verify TLS certificates and require HTTPS for non-loopback hosts (default true). */
  tlsVerify?: boolean;
  retry?: Partial<RetryOptions>;
  /** User-Agent header. */
  userAgent?: string;
  /** Called with one line per request/response (headers redacted). */
  onDebug?: (line: string) => void;
  /** Called when a request is retried (for progress/warnings). */
  onRetry?: (info: { url: string; attempt: number; delayMs: number; reason: string }) => void;
  /**
   * TLS settings (extra CAs, client certificate) for an HTTPS origin, by `host[:port]` as in its URL;
   * asked once per origin before the first request to it (see `cert-dir.ts`).
   */
  tlsFor?: (host: string) => Promise<TlsSettings | undefined>;
  /**
   * Bound in milliseconds for connecting, for the response headers after a request is sent, and
   * per window of a body read (see `timeouts.ts`; default 30 s).
   */
  timeoutMs?: number;
}

/** What a request may send. */
export type RequestBody = string | Uint8Array | Readable | null | undefined;

/**
 * A response body: a Readable (iterate it, pipe it) with the few helpers the client needs.
 * Every body must be consumed, dumped or destroyed, so its connection goes back to the pool.
 */
export type ResponseBody = Readable & {
  /** Reads and discards the rest (keeps the connection reusable). */
  dump(): Promise<void>;
  text(): Promise<string>;
  json(): Promise<unknown>;
};

export interface SendOptions {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  headers?: Record<string, string>;
  body?: RequestBody;
  signal?: AbortSignal;
  /** Retry this request (only for idempotent requests or bodies that can be re-sent). */
  retry?: boolean;
  /** Follow redirects (default true). Credentials are dropped when the origin changes. */
  followRedirects?: boolean;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: ResponseBody;
  /** The URL that finally answered (after redirects). */
  url: URL;
}

// Node's own HTTP client: it starts in a few milliseconds and a few MiB (undici cost ~40 ms and
// ~30 MiB of every registry command), and its C parser streams bodies as fast.
// Loaded through getBuiltinModule, not `import()`: an ESM import of node:http evaluates every
// export, and its lazy `WebSocket`/`fetch` getters load Node's bundled undici (~10 ms).
const nodeHttp = (): typeof import('node:http') => process.getBuiltinModule('node:http');
const nodeHttps = (): typeof import('node:https') => process.getBuiltinModule('node:https');

/** Sockets past their (TCP and TLS) handshake: a reused one has no connect phase to bound. */
const connected = new WeakSet<object>();

/** Connections per origin. */
const MAX_SOCKETS = 16;

const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const RETRY_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ECONNABORTED',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/** True when a thrown error is a network failure worth retrying. */
export function isRetryableError(err: unknown): boolean {
  if (isLadingError(err)) return err.temporary === true;
  const e = err as { code?: string; cause?: { code?: string }; name?: string };
  if (e?.name === 'AbortError') return false;
  return RETRY_CODES.has(e?.code ?? '') || RETRY_CODES.has(e?.cause?.code ?? '');
}

/** True for localhost, 127.0.0.0/8 and ::1 (with or without a port). */
export function isLoopbackHost(host: string): boolean {
  let h = host;
  if (h.startsWith('[')) h = h.slice(1, h.indexOf(']'));
  // One colon is host:port; a bare IPv6 address has at least two. (Not isIP: its first IPv6 test
  // builds a large regular expression, ~10 ms of every command's start.)
  else if (h.indexOf(':') !== -1 && h.indexOf(':') === h.lastIndexOf(':')) h = h.slice(0, h.indexOf(':'));
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)) return isIP(h) === 4;
  return h === '::1';
}

/** Parses `Retry-After` (seconds or an HTTP date) into milliseconds. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/** Backoff before attempt `n` (1-based): delay·2ⁿ⁻¹ with ±50% jitter, capped. */
export function backoffDelay(n: number, opts: RetryOptions): number {
  const base = opts.delayMs * 2 ** (n - 1);
  const jittered = base * (0.5 + Math.random());
  return Math.min(opts.maxDelayMs, Math.round(jittered));
}

/**
 * The HTTP layer of the registry client: retries, manual redirects that drop credentials across
 * origins, debug lines with secrets redacted, and network errors turned into LadingErrors.
 */
export class Http {
  readonly retry: RetryOptions;
  readonly tlsVerify: boolean;
  readonly userAgent: string;
  readonly timeoutMs: number;
  #agents: { http?: HttpAgent; https?: HttpsAgent } = {};
  readonly #debug: ((line: string) => void) | undefined;
  readonly #onRetry: HttpOptions['onRetry'];
  readonly #tlsFor: HttpOptions['tlsFor'];
  /** TLS settings per origin (`https://host:port`): pending, then settled. */
  readonly #tlsPending = new Map<string, Promise<TlsSettings | undefined>>();
  readonly #tls = new Map<string, TlsSettings | undefined>();

  constructor(opts: HttpOptions = {}) {
    this.tlsVerify = opts.tlsVerify !== false;
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.userAgent = opts.userAgent ?? 'lading/0.1';
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#debug = opts.onDebug;
    this.#onRetry = opts.onRetry;
    this.#tlsFor = opts.tlsFor;
  }

  /**
   * Loads the TLS settings for `url`'s origin (once; a failure is not cached). Requests do this
   * themselves; callers use it to fail on a bad certificate directory before anything else.
   */
  async prepareTls(url: URL): Promise<TlsSettings | undefined> {
    if (url.protocol !== 'https:' || !this.#tlsFor) return undefined;
    const origin = url.origin;
    if (this.#tls.has(origin)) return this.#tls.get(origin);
    let p = this.#tlsPending.get(origin);
    if (!p) {
      p = this.#tlsFor(url.host);
      this.#tlsPending.set(origin, p);
    }
    try {
      const settings = await p;
      this.#tls.set(origin, settings);
      return settings;
    } finally {
      this.#tlsPending.delete(origin);
    }
  }

  /**
   * After a failed HTTPS request: the alert the server sends when it refuses the connection's
   * client certificate (or its absence), found with one plain TLS connection; undefined otherwise.
   */
  async clientCertAlert(url: URL): Promise<string | undefined> {
    if (url.protocol !== 'https:') return undefined;
    return tlsAlertAfterHandshake(url, await this.prepareTls(url), this.tlsVerify);
  }

  debug(line: string): void {
    // Request headers are redacted by name; a server may still echo a credential into a URL.
    this.#debug?.(redactAuthValues(line));
  }

  /** Sends one request, with retries and redirects. Non-2xx responses are returned, not thrown. */
  async send(url: URL, opts: SendOptions): Promise<HttpResponse> {
    const retries = opts.retry === false ? 0 : this.retry.times;
    for (let attempt = 0; ; attempt++) {
      let res: HttpResponse;
      try {
        res = await this.#sendFollowing(url, opts);
      } catch (err) {
        if (attempt < retries && isRetryableError(err) && !opts.signal?.aborted) {
          const delayMs = backoffDelay(attempt + 1, this.retry);
          this.#retrying(url, attempt + 1, delayMs, describeNetworkError(err));
          await sleep(delayMs, undefined, { signal: opts.signal });
          continue;
        }
        throw networkError(err, opts.method, url);
      }
      if (RETRY_STATUS.has(res.status) && attempt < retries) {
        const after = parseRetryAfter(res.headers['retry-after']);
        const delayMs = Math.min(this.retry.maxDelayMs, after ?? backoffDelay(attempt + 1, this.retry));
        await res.body.dump().catch(() => {});
        this.#retrying(url, attempt + 1, delayMs, `HTTP ${res.status}`);
        await sleep(delayMs, undefined, { signal: opts.signal });
        continue;
      }
      return res;
    }
  }

  #retrying(url: URL, attempt: number, delayMs: number, reason: string): void {
    const safe = redactUrl(url);
    this.debug(`retry ${attempt}/${this.retry.times} in ${delayMs} ms: ${reason} (${safe})`);
    this.#onRetry?.({ url: safe, attempt, delayMs, reason });
  }

  async #sendFollowing(start: URL, opts: SendOptions): Promise<HttpResponse> {
    let url = start;
    let headers: Record<string, string> = { 'user-agent': this.userAgent, ...opts.headers };
    let method = opts.method;
    let body = opts.body;
    for (let hop = 0; ; hop++) {
      this.debug(`> ${method} ${redactUrl(url)} ${JSON.stringify(redactHeaders(headers))}`);
      const res = await this.#request(url, method, headers, body, opts.signal);
      this.debug(`< ${res.statusCode} ${method} ${redactUrl(url)}`);
      const location = res.headers.location;
      if (opts.followRedirects !== false && REDIRECT_STATUSES.has(res.statusCode) && location) {
        await res.body.dump().catch(() => {});
        const next = redirectTarget(url, Array.isArray(location) ? location[0]! : location, hop, start);
        // Credentials are for the origin the caller addressed, never for a redirect target
        // (S3/CDN signed URLs reject them, and they leak).
        headers = headersForHop(headers, next, start.origin);
        if (res.statusCode === 303 && method !== 'HEAD') {
          method = 'GET';
          body = undefined;
        }
        url = next;
        continue;
      }
      return { status: res.statusCode, headers: res.headers, body: res.body, url };
    }
  }

  #agent(url: URL): HttpAgent | HttpsAgent {
    if (url.protocol === 'https:') {
      if (!this.#agents.https) {
        const { Agent } = nodeHttps();
        this.#agents.https = new Agent({
          keepAlive: true,
          maxSockets: MAX_SOCKETS,
          rejectUnauthorized: this.tlsVerify,
        });
      }
      return this.#agents.https;
    }
    if (!this.#agents.http) {
      const { Agent } = nodeHttp();
      this.#agents.http = new Agent({ keepAlive: true, maxSockets: MAX_SOCKETS });
    }
    return this.#agents.http;
  }

  /** One request, no redirects or retries: resolves when the response headers arrive. */
  async #request(
    url: URL,
    method: SendOptions['method'],
    headers: Record<string, string>,
    body: RequestBody,
    signal?: AbortSignal,
  ): Promise<{ statusCode: number; headers: IncomingHttpHeaders; body: ResponseBody }> {
    const agent = this.#agent(url);
    const { request } = url.protocol === 'https:' ? nodeHttps() : nodeHttp();
    // Per-origin TLS settings go with the request: the https agent keys its sockets by them too.
    const tls = await this.prepareTls(url);
    const tlsOptions: { ca?: string[]; cert?: Buffer; key?: Buffer } = {};
    if (tls?.ca) tlsOptions.ca = tls.ca;
    if (tls?.cert && tls.key) {
      tlsOptions.cert = tls.cert;
      tlsOptions.key = tls.key;
    }
    signal?.throwIfAborted();
    return new Promise((resolve, reject) => {
      const req = request(url, { method, headers, agent, signal, ...tlsOptions });
      const t = this.timeoutMs;
      let res: IncomingMessage | undefined;
      const fail = (phase: TimeoutPhase, got?: number) =>
        req.destroy(timeoutError(phase, method, url, t, got));
      // Our own reader being behind (unread data buffered), or a body already complete, is not
      // the server's fault.
      const excused = () =>
        (res?.readableLength ?? 0) > 0 || (res?.socket?.readableLength ?? 0) > 0 || res?.complete === true;
      let sent = false;
      req.setTimeout(t, () => {
        if (!excused()) fail(res || !sent ? 'idle' : 'response');
      });
      let connectTimer: NodeJS.Timeout | undefined;
      let responseTimer: NodeJS.Timeout | undefined;
      req.once('socket', (socket) => {
        if (connected.has(socket)) return;
        connectTimer = setTimeout(() => fail('connect'), t);
        socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
          connected.add(socket);
          clearTimeout(connectTimer);
        });
      });
      // The whole request is out: the headers must follow within the bound (a trickle too).
      req.once('finish', () => {
        sent = true;
        // (A fast server may have answered before our last write was acknowledged.)
        if (res) return;
        responseTimer = setTimeout(() => fail('response'), t);
      });
      const clearTimers = () => {
        clearTimeout(connectTimer);
        clearTimeout(responseTimer);
      };
      req.once('close', clearTimers);
      req.once('error', reject);
      req.once('response', (r: IncomingMessage) => {
        res = r;
        clearTimers();
        req.off('error', reject);
        // An error after the headers belongs to the body stream (which has its own listeners).
        req.on('error', (err) => r.destroy(err));
        const socket = r.socket;
        const watch = new StallWatch(
          t,
          () => socket?.bytesRead ?? 0,
          excused,
          (got) => fail('body', got),
        );
        r.once('close', () => watch.stop());
        r.once('end', () => watch.stop());
        resolve({ statusCode: r.statusCode ?? 0, headers: r.headers, body: responseBody(r) });
      });
      if (body === undefined || body === null) req.end();
      else if (typeof body === 'string' || body instanceof Uint8Array) req.end(body);
      else pipeline(body, req).catch((err) => req.destroy(err));
    });
  }

  async close(): Promise<void> {
    this.#agents.http?.destroy();
    this.#agents.https?.destroy();
    this.#agents = {};
  }
}

/** Adds the body helpers to a response. */
function responseBody(res: IncomingMessage): ResponseBody {
  const readAll = async (): Promise<Buffer> => {
    const parts: Buffer[] = [];
    for await (const c of res) parts.push(c as Buffer);
    return Buffer.concat(parts);
  };
  return Object.assign(res, {
    dump: async (): Promise<void> => {
      if (res.readableEnded || res.destroyed) return;
      // A body left unread would keep its connection busy; a big one is cut instead of read.
      const length = Number(res.headers['content-length'] ?? Number.NaN);
      if (!(length <= 1 << 20)) {
        res.destroy();
        return;
      }
      res.resume();
      await new Promise<void>((resolve) => {
        res.once('end', resolve);
        res.once('close', resolve);
        res.once('error', () => resolve());
      });
    },
    text: async (): Promise<string> => (await readAll()).toString('utf8'),
    json: async (): Promise<unknown> => JSON.parse((await readAll()).toString('utf8')),
  }) as ResponseBody;
}

function describeNetworkError(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  return e?.cause?.code ?? e?.code ?? e?.cause?.message ?? e?.message ?? String(err);
}

/** Turns a network failure into a LadingError with a redacted URL. */
export function networkError(err: unknown, method: string, url: URL): LadingError {
  if (isLadingError(err)) return err;
  const e = err as { name?: string };
  if (e?.name === 'AbortError') {
    return new LadingError(ErrorCode.Aborted, `${method} ${redactUrl(url)} aborted`, {
      url: redactUrl(url),
      method,
    });
  }
  return new LadingError(
    ErrorCode.Network,
    `${method} ${redactUrl(url)}: ${describeNetworkError(err)}`,
    { url: redactUrl(url), method, temporary: isRetryableError(err) },
    { cause: err },
  );
}
