import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Digest, digestAlgorithm, digestMismatch, VERIFIED_DIGEST } from '../digest/index.ts';
import { ErrorCode, isLadingError, LadingError } from '../errors/index.ts';
import { redactUrl } from '../util/index.ts';
import type { RegistryClient } from './client.ts';
import { responseError } from './errors.ts';
import { backoffDelay, type HttpResponse, isRetryableError, networkError } from './http.ts';
import {
  foreignChallengeError,
  headersForHop,
  mayAnswerChallenge,
  REDIRECT_STATUSES,
  redirectTarget,
} from './origin-policy.ts';
import { RawPool, type RawResponse } from './raw-http.ts';

/**
 * Blob bodies at the speed of the socket: `GET /v2/<repository>/blobs/<digest>` on a raw
 * connection (raw-http.ts), every byte handed to a synchronous consumer straight from the read
 * buffer after it was counted and hashed. What node:http and the old stream reader did is here too:
 * authorisation (the client's), redirects (credentials never leave the registry's origin, only
 * http(s), at most 10), `Range` resume after a broken connection (a `Content-Range` that does not
 * start where asked is refused; a server that ignores the range has its first bytes skipped),
 * retries with backoff on network errors and 408/429/5xx, the idle timeout, TLS with the
 * client's certificate settings. The digest and size are checked at the end, before it resolves.
 */

const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);
/** Bytes of an error or redirect body read (the rest is dropped with its connection). */
const SMALL_BODY = 64 * 1024;

const pools = new WeakMap<object, RawPool>();

function poolOf(client: RegistryClient): RawPool {
  let p = pools.get(client.http);
  if (!p) {
    p = new RawPool();
    pools.set(client.http, p);
  }
  return p;
}

/** A blob GET sent ahead of its read (see sendBlobRequestEarly), and how to call it off. */
interface EarlyGet {
  res: Promise<RawResponse | undefined>;
  stop: AbortController;
}
const early = new WeakMap<object, Map<string, EarlyGet>>();

/**
 * Closes the raw connections a client kept alive (its `close()` calls this), and calls off the
 * GETs sent early that nobody read: one still waiting for its answer would otherwise hold the
 * process until the answer or the timeout (a failed command lingered for twice --timeout).
 */
export function closeBlobConnections(client: RegistryClient): void {
  for (const e of early.get(client.http)?.values() ?? []) {
    e.stop.abort(new DOMException('the client closed', 'AbortError'));
    e.res.then(
      (r) => r?.discard(),
      () => {},
    );
  }
  early.delete(client.http);
  pools.get(client.http)?.close();
  pools.delete(client.http);
}

/**
 * Sends the GET of a blob now, for a {@link readBlob} of it soon (the next layer, while this one
 * is read): the registry's time to the first byte (15-30 ms for a docker-registry on this machine,
 * a network round trip or more for a remote one) then passes while the blob before it is read.
 * The response waits with its head read and its socket paused (the server's sending stops at the
 * socket buffers; no timeout runs against it, as lading is the one not reading) and unreferenced
 * (one never read holds nobody up); the first readBlob of the blob takes it, or
 * closeBlobConnections drops it. Unless `skip` resolves true first (the blob is cached): then
 * nothing is sent. Errors are the reader's: readBlob meets them as its first attempt's. It holds
 * no slot of the client's limiter (one connection more than --jobs while it waits): callers send
 * one ahead at a time.
 */
export function sendBlobRequestEarly(
  client: RegistryClient,
  repository: string,
  digest: Digest,
  opts: { signal?: AbortSignal; skip?: () => Promise<boolean> } = {},
): void {
  let byBlob = early.get(client.http);
  if (!byBlob) {
    byBlob = new Map();
    early.set(client.http, byBlob);
  }
  const key = `${repository}@${digest}`;
  if (byBlob.has(key)) return;
  const stop = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, stop.signal]) : stop.signal;
  const res = (async () => {
    if (await opts.skip?.()) return undefined;
    const url = new URL(`/v2/${repository}/blobs/${digest}`, await client.base(signal));
    const r = await openAt(client, repository, url, 0, blobWhat(client, repository, digest), signal);
    r.unref();
    return r;
  })();
  res.catch(() => {});
  byBlob.set(key, { res, stop });
}

/** The response sendBlobRequestEarly sent for this blob, once (undefined if none). */
function takeEarly(
  client: RegistryClient,
  repository: string,
  digest: Digest,
): Promise<RawResponse | undefined> {
  const byBlob = early.get(client.http);
  const key = `${repository}@${digest}`;
  const e = byBlob?.get(key);
  byBlob?.delete(key);
  return e?.res ?? Promise.resolve(undefined);
}

function blobWhat(client: RegistryClient, repository: string, digest: Digest): string {
  return `blob ${digest} in ${client.registry}/${repository}`;
}

export interface BlobReadOptions {
  /** Expected size: a different `Content-Length` fails at once, more bytes fail as they come. */
  size?: number;
  signal?: AbortSignal;
  onProgress?: (bytes: number) => void;
  /** Called once, when the registry has answered 200 and the first bytes are about to flow. */
  onStart?: () => void;
  /**
   * The consumer: each piece in order, exactly once, valid only during the call. It may return
   * false to pause until `flow.resume()`; an exception ends the read with it (no retry).
   */
  onData: (chunk: Buffer) => boolean | undefined;
  /** Filled by the reader: `resume()` continues after onData returned false. */
  flow?: { resume?: () => void };
}

/** A raw response as an {@link HttpResponse}, for the client's error and challenge helpers. */
function asHttpResponse(res: RawResponse, body: Buffer): HttpResponse {
  const stream = Readable.from([body]);
  return {
    status: res.status,
    headers: res.headers,
    url: res.url,
    body: Object.assign(stream, {
      dump: async () => {
        stream.destroy();
      },
      text: async () => body.toString('utf8'),
      json: async () => JSON.parse(body.toString('utf8')) as unknown,
    }),
  };
}

/** Reads a small body, or nothing if it is large or broken. */
async function smallBody(res: RawResponse): Promise<Buffer> {
  const length = res.contentLength;
  if (length !== undefined && length > SMALL_BODY) {
    res.discard();
    return Buffer.alloc(0);
  }
  return res.text(SMALL_BODY).catch(() => {
    res.discard();
    return Buffer.alloc(0);
  });
}

/** A failure on one hop, naming that hop's (redacted) URL and an untrusted certificate as such. */
function hopError(err: unknown, url: URL): unknown {
  if (isLadingError(err) || (err as { name?: string })?.name === 'AbortError') return err;
  const code = String((err as { code?: string })?.code ?? '');
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
    return new LadingError(
      ErrorCode.Network,
      `GET ${redactUrl(url)}: ${code} (its TLS certificate is not trusted: --cert-dir, certs.d or --tls-verify=false)`,
      { url: redactUrl(url), method: 'GET' },
      { cause: err },
    );
  }
  return networkError(err, 'GET', url);
}

/** Sends GET, following redirects with the credential rules; returns the final response. */
async function getFollowing(
  client: RegistryClient,
  start: URL,
  first: Record<string, string>,
  signal: AbortSignal | undefined,
): Promise<RawResponse> {
  let url = start;
  let headers = first;
  const pool = poolOf(client);
  for (let hop = 0; ; hop++) {
    signal?.throwIfAborted();
    const tls = await client.http.prepareTls(url);
    client.http.debug(`> GET ${redactUrl(url)} (blob body on a raw connection)`);
    let res: RawResponse;
    for (let fresh = 0; ; fresh++) {
      const conn = pool.connect(
        url,
        { rejectUnauthorized: client.http.tlsVerify, ca: tls?.ca, cert: tls?.cert, key: tls?.key },
        client.http.timeoutMs,
      );
      const onAbort = (): void => conn.destroy(signal!.reason ?? new DOMException('aborted', 'AbortError'));
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        res = await conn.request('GET', url, headers);
        break;
      } catch (err) {
        // A kept-alive connection the server had closed meanwhile: once more on a new one.
        if (conn.reused && fresh === 0 && !signal?.aborted && isRetryableError(err)) continue;
        throw hopError(err, url);
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    }
    client.http.debug(`< ${res.status} GET ${redactUrl(url)}`);
    const location = res.header('location');
    if (REDIRECT_STATUSES.has(res.status) && location) {
      await smallBody(res);
      const next = redirectTarget(url, location, hop, start);
      // Credentials are for the registry's origin only, never for a redirect target (and once
      // dropped, they do not come back).
      headers = headersForHop(headers, next, start.origin);
      url = next;
      continue;
    }
    return res;
  }
}

/**
 * One authorised GET of the blob from `offset` (a `Range` request when above 0): answers a 401
 * as the client does (new challenge, wider scope, fresh token), and returns a 200 or 206; any
 * other status is thrown as the registry's error (temporary for 408/429/5xx).
 */
async function openAt(
  client: RegistryClient,
  repository: string,
  url: URL,
  offset: number,
  what: string,
  signal: AbortSignal | undefined,
): Promise<RawResponse> {
  let scopes = [`repository:${repository}:pull`];
  for (let attempt = 0; ; attempt++) {
    const authz = await client.auth.authorization(repository, scopes, signal);
    const headers: Record<string, string> = { 'user-agent': client.http.userAgent };
    if (authz) headers.authorization = authz;
    if (offset > 0) headers.range = `bytes=${offset}-`;
    const res = await getFollowing(client, url, headers, signal);
    if (res.status === 200 || res.status === 206) return res;
    const body = await smallBody(res);
    const http = asHttpResponse(res, body);
    if (res.status === 401 && !mayAnswerChallenge(res.url, url.origin)) {
      // A challenge from a redirect target (a CDN, S3) is not answered (origin-policy.ts).
      throw foreignChallengeError(res.url, client.registry, 'GET');
    }
    if (res.status === 401 && attempt < 2) {
      const before = client.auth.scheme;
      const wider = client.auth.insufficientScope(http);
      client.auth.learn(http);
      const more = wider.filter((s) => !scopes.includes(s));
      if (more.length) scopes = [...scopes, ...more];
      else if (authz && before === client.auth.scheme) {
        if (attempt >= 1) return failWith(client, repository, http, what);
        client.auth.invalidate();
      } else if (!authz && !client.auth.scheme) return failWith(client, repository, http, what);
      continue;
    }
    return failWith(client, repository, http, what);
  }
}

async function failWith(
  client: RegistryClient,
  repository: string,
  res: HttpResponse,
  what: string,
): Promise<never> {
  const err = await responseError(res, {
    method: 'GET',
    what,
    registry: client.registry,
    authenticated: await client.auth.hasCredentials(repository),
    secrets: client.auth.secrets,
  });
  if (RETRY_STATUS.has(res.status)) err.temporary = true;
  throw err;
}

/**
 * Checks a response to a read from `offset`: a 206 must resume exactly there (and answer a
 * `Range` request), a 200 must announce the expected size. Returns how many leading bytes to
 * drop (a 200 to a resume sends the whole blob again); a bad answer is discarded and thrown.
 */
function checkResumed(
  res: RawResponse,
  offset: number,
  size: number | undefined,
  what: string,
  registry: string,
): number {
  const source = redactUrl(res.url);
  if (res.status === 206) {
    const cr = res.header('content-range') ?? '';
    const m = /^bytes (\d+)-/.exec(cr);
    if (offset > 0 && m && Number(m[1]) === offset) return 0;
    res.discard();
    throw new LadingError(
      ErrorCode.Registry,
      offset > 0
        ? `resume of ${what} got Content-Range ${JSON.stringify(cr)}, wanted bytes ${offset}-`
        : `${what}: HTTP 206 to a request without Range [GET ${source}]`,
      { registry, url: source },
    );
  }
  const length = res.contentLength;
  if (size !== undefined && length !== undefined && length !== size) {
    res.discard();
    throw new LadingError(
      ErrorCode.SizeMismatch,
      `size mismatch for ${what}: expected ${size} bytes, the registry sends ${length} [GET ${source}]`,
      { registry, url: source, expected: size, found: length },
    );
  }
  return offset;
}

/**
 * Reads blob `digest` of `repository` into `opts.onData`, verified: resolves only when every
 * byte arrived and the size and digest match; rejects otherwise (after the consumer saw the
 * bytes: it must not commit anything before this resolves). Holds no concurrency slot: callers do.
 */
export async function readBlob(
  client: RegistryClient,
  repository: string,
  digest: Digest,
  opts: BlobReadOptions,
): Promise<void> {
  const what = blobWhat(client, repository, digest);
  let sentEarly: Promise<RawResponse | undefined> | undefined = takeEarly(client, repository, digest);
  const base = await client.base(opts.signal);
  const url = new URL(`/v2/${repository}/blobs/${digest}`, base);
  const hash = createHash(digestAlgorithm(digest));
  const retry = client.http.retry;
  let offset = 0;
  let failures = 0;
  let source = redactUrl(url);
  let started = false;
  const sizeError = (got: number, how: string): LadingError =>
    new LadingError(
      ErrorCode.SizeMismatch,
      `size mismatch for ${what}: expected ${opts.size} bytes, ${how} ${got} [GET ${source}]`,
      { registry: client.registry, url: source, expected: opts.size, found: got },
    );
  for (;;) {
    let res: RawResponse | undefined;
    // The GET sent early (if any) is this read's first attempt.
    const early = sentEarly;
    sentEarly = undefined;
    let fromEarly = early !== undefined;
    try {
      res = early ? await early : undefined;
      fromEarly = res !== undefined;
      res ??= await openAt(client, repository, url, offset, what, opts.signal);
      source = redactUrl(res.url);
      // 200 to a resume: the whole blob again, its first `offset` bytes dropped.
      let skip = checkResumed(res, offset, opts.size, what, client.registry);
      if (!started) {
        started = true;
        opts.onStart?.();
      }
      const current = res;
      if (opts.flow) opts.flow.resume = () => current.resume();
      const onAbort = (): void => current.discard();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        await current.pipe((chunk) => {
          let piece = chunk;
          if (skip > 0) {
            const drop = Math.min(skip, piece.length);
            skip -= drop;
            piece = piece.subarray(drop);
            if (!piece.length) return undefined;
          }
          offset += piece.length;
          if (opts.size !== undefined && offset > opts.size) throw sizeError(offset, 'got more than');
          hash.update(piece);
          opts.onProgress?.(piece.length);
          return opts.onData(piece);
        });
      } finally {
        opts.signal?.removeEventListener('abort', onAbort);
      }
      break;
    } catch (err) {
      res?.discard();
      if (opts.signal?.aborted) throw networkError(opts.signal.reason ?? err, 'GET', url);
      // A GET sent early waited, paused, while the blob before it was read: its connection closed
      // meanwhile (a server's write timeout, a proxy's idle one; seen only once reading resumes,
      // after the bytes it had buffered) is not this read failing. Resumed from where those bytes
      // ended, once, without counting it. Its answers (404, 503) count as they would have.
      if (fromEarly && !isLadingError(err) && isRetryableError(err)) continue;
      const temporary = isLadingError(err) ? err.temporary === true : isRetryableError(err);
      if (!temporary || failures >= retry.times)
        throw isLadingError(err) ? err : networkError(err, 'GET', url);
      if (opts.size !== undefined && offset >= opts.size) throw networkError(err, 'GET', url);
      failures++;
      const after = isLadingError(err) ? (err.retryAfter ?? 0) * 1000 : 0;
      const delay = Math.min(retry.maxDelayMs, after || backoffDelay(failures, retry));
      client.http.debug(`retry ${failures}/${retry.times} of ${what} at byte ${offset} in ${delay} ms`);
      await sleep(delay, undefined, { signal: opts.signal });
    }
  }
  if (opts.size !== undefined && offset !== opts.size) throw sizeError(offset, 'got only');
  const found = `${digestAlgorithm(digest)}:${hash.digest('hex')}`;
  if (found !== digest) throw digestMismatch(digest, found, offset, `${what} [GET ${source}]`);
}

/**
 * {@link readBlob} as a Readable (what the streaming consumers take): resolves when the registry
 * answered, ends only after the digest and size checked out, errors otherwise. Each piece is
 * copied out of the read buffer; backpressure pauses the connection.
 */
export function openBlobReadable(
  client: RegistryClient,
  repository: string,
  digest: Digest,
  opts: { size?: number; signal?: AbortSignal; onProgress?: (bytes: number) => void },
): Promise<Readable> {
  const stop = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, stop.signal]) : stop.signal;
  const flow: { resume?: () => void } = {};
  const out = new Readable({
    highWaterMark: 1 << 20,
    read() {
      flow.resume?.();
    },
    destroy(err, cb) {
      if (!ended) stop.abort(new DOMException('the consumer stopped reading', 'AbortError'));
      cb(err);
    },
  });
  // It ends only after the digest (and the size, when given) checked out: sinks need not hash it again.
  Object.assign(out, { [VERIFIED_DIGEST]: digest, expectedSize: opts.size });
  let ended = false;
  let started = false;
  return new Promise<Readable>((resolve, reject) => {
    readBlob(client, repository, digest, {
      size: opts.size,
      signal,
      onProgress: opts.onProgress,
      flow,
      onStart: () => {
        started = true;
        resolve(out);
      },
      onData: (chunk) => out.push(Buffer.from(chunk)),
    }).then(
      () => {
        ended = true;
        out.push(null);
      },
      (err) => {
        ended = true;
        if (started) out.destroy(err);
        else reject(err);
      },
    );
  });
}
