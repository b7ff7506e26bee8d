import type { Readable } from 'node:stream';
import type { Digest } from '../digest/index.ts';
import { isLadingError, type LadingError } from '../errors/index.ts';
import type { HttpResponse } from './http.ts';
import { drain, header } from './response.ts';
import { sha256Counter } from './sha256-counter.ts';

// A blob upload in three steps, as go-containerregistry's remote/write.go has them: start (POST),
// send (one PUT, PATCH chunks, or one streamed PATCH hashed on the way), commit (PUT ?digest=),
// inside one retry wrapper that starts over from the POST.

/** What the upload protocol needs from the registry client. */
export interface UploadClient {
  readonly registry: string;
  base(signal?: AbortSignal): Promise<URL>;
  request(opts: {
    method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
    path: string;
    url?: URL;
    repository: string;
    scopes: string[];
    headers?: Record<string, string>;
    body?: Buffer | Readable;
    signal?: AbortSignal;
    retry?: boolean;
    anonymous?: boolean;
  }): Promise<HttpResponse>;
  errorFor(res: HttpResponse, method: string, what: string, repository: string): Promise<LadingError>;
  readonly retryTimes: number;
  debug(line: string): void;
}

/** An upload session: where the next request goes. */
interface Session {
  location: URL;
}

/**
 * One upload's requests. Credentials go to the registry's own origin only: an upload `Location`
 * on another origin (a storage backend, or a lying registry pointing elsewhere) is sent to without
 * the Authorization header (issue 12.1: credentials belong to the registry the user named).
 */
class Upload {
  readonly #c: UploadClient;
  readonly #repository: string;
  readonly #what: string;
  readonly #signal: AbortSignal | undefined;
  readonly #scopes: string[];

  constructor(c: UploadClient, repository: string, what: string, signal?: AbortSignal) {
    this.#c = c;
    this.#repository = repository;
    this.#what = what;
    this.#signal = signal;
    this.#scopes = [`repository:${repository}:pull,push`];
  }

  /** POST: opens a session. */
  async start(): Promise<Session> {
    const res = await this.#c.request({
      method: 'POST',
      path: `/v2/${this.#repository}/blobs/uploads/`,
      repository: this.#repository,
      scopes: this.#scopes,
      signal: this.#signal,
      retry: true,
    });
    await drain(res);
    if (res.status !== 202) throw await this.#c.errorFor(res, 'POST', this.#what, this.#repository);
    return { location: new URL(header(res, 'location') ?? '', res.url) };
  }

  /** One request to the session's location; the session moves to the `Location` answered. */
  async send(
    s: Session,
    method: 'PUT' | 'PATCH',
    want: number,
    headers: Record<string, string>,
    body?: Buffer | Readable,
  ): Promise<void> {
    const res = await this.#c.request({
      method,
      url: s.location,
      path: '',
      repository: this.#repository,
      scopes: this.#scopes,
      headers,
      body,
      signal: this.#signal,
      retry: false,
      anonymous: !(await this.#sameOrigin(s.location)),
    });
    await drain(res);
    if (res.status !== want) throw await this.#c.errorFor(res, method, this.#what, this.#repository);
    s.location = new URL(header(res, 'location') ?? s.location.href, res.url);
  }

  /** The closing PUT with the digest (the registry checks it). */
  async commit(s: Session, digest: Digest): Promise<void> {
    s.location.searchParams.set('digest', digest);
    await this.send(s, 'PUT', 201, { 'content-length': '0' });
  }

  /** Cancels a session (best effort). */
  async cancel(s: Session): Promise<void> {
    const res = await this.#c
      .request({
        method: 'DELETE',
        url: s.location,
        path: '',
        repository: this.#repository,
        scopes: this.#scopes,
        signal: this.#signal,
        anonymous: !(await this.#sameOrigin(s.location)),
      })
      .catch(() => undefined);
    if (res) await drain(res);
  }

  async #sameOrigin(u: URL): Promise<boolean> {
    return u.origin === (await this.#c.base(this.#signal)).origin;
  }
}

/** Runs `attempt` and starts over (a fresh session) after a temporary failure, a few times. */
async function withRetry<T>(
  c: UploadClient,
  what: string,
  signal: AbortSignal | undefined,
  attempt: () => Promise<T>,
): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      const retryable = isLadingError(err) ? err.temporary === true : true;
      if (!retryable || n >= c.retryTimes || signal?.aborted) throw err;
      c.debug(`${what} failed (${(err as Error).message}); starting over`);
    }
  }
}

export interface UploadOptions {
  /** Send in PATCH chunks of this many bytes, then the closing PUT (default: one PUT). */
  chunkSize?: number;
  signal?: AbortSignal;
  /** Bytes sent since the previous call. */
  onProgress?: (bytes: number) => void;
}

/**
 * Uploads a blob of known digest and size: monolithic (one streaming `PUT ?digest=`) or chunked.
 * `open` is called again for each retry, so a broken upload starts over cleanly.
 */
export function uploadBlob(
  c: UploadClient,
  repository: string,
  digest: Digest,
  size: number,
  open: () => Promise<Readable>,
  opts: UploadOptions = {},
): Promise<void> {
  const what = `upload of ${digest} to ${c.registry}/${repository}`;
  return withRetry(c, what, opts.signal, async () => {
    const up = new Upload(c, repository, what, opts.signal);
    const s = await up.start();
    const body = await open();
    if (opts.chunkSize && opts.chunkSize < size) {
      let offset = 0;
      for await (const chunk of chunked(body, opts.chunkSize)) {
        await up.send(
          s,
          'PATCH',
          202,
          {
            'content-type': 'application/octet-stream',
            'content-length': String(chunk.length),
            'content-range': `${offset}-${offset + chunk.length - 1}`,
          },
          chunk,
        );
        offset += chunk.length;
        opts.onProgress?.(chunk.length);
      }
      await up.commit(s, digest);
      return;
    }
    s.location.searchParams.set('digest', digest);
    const upload = opts.onProgress ? sha256Counter(body, opts.onProgress, { hash: false }).stream : body;
    await up.send(
      s,
      'PUT',
      201,
      { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      upload,
    );
  });
}

/**
 * Uploads a blob whose digest is known only at its end (a layer compressed on the fly): one
 * streamed `PATCH` hashed while it is sent, then the closing `PUT` with the computed digest, which
 * the registry checks. Returns digest and size.
 */
export function uploadBlobStream(
  c: UploadClient,
  repository: string,
  open: () => Promise<Readable>,
  opts: Omit<UploadOptions, 'chunkSize'> = {},
): Promise<{ digest: Digest; size: number }> {
  const what = `streamed upload to ${c.registry}/${repository}`;
  return withRetry(c, what, opts.signal, async () => {
    const up = new Upload(c, repository, what, opts.signal);
    const s = await up.start();
    const counted = sha256Counter(await open(), opts.onProgress);
    await up.send(s, 'PATCH', 202, { 'content-type': 'application/octet-stream' }, counted.stream);
    const digest = counted.digest();
    await up.commit(s, digest);
    return { digest, size: counted.size() };
  });
}

/**
 * A cross-repository mount: true when the registry mounted the blob; false when it opened an
 * ordinary upload session instead (cancelled at once).
 */
export async function mountBlob(
  c: UploadClient,
  repository: string,
  digest: Digest,
  fromRepository: string,
  signal?: AbortSignal,
): Promise<boolean> {
  const q = new URLSearchParams({ mount: digest, from: fromRepository });
  const res = await c.request({
    method: 'POST',
    path: `/v2/${repository}/blobs/uploads/?${q}`,
    repository,
    scopes: [`repository:${repository}:pull,push`, `repository:${fromRepository}:pull`],
    signal,
    retry: true,
  });
  await drain(res);
  if (res.status === 201) return true;
  if (res.status === 202) {
    const loc = header(res, 'location');
    const what = `mount of ${digest} into ${c.registry}/${repository}`;
    if (loc) await new Upload(c, repository, what, signal).cancel({ location: new URL(loc, res.url) });
    return false;
  }
  throw await c.errorFor(res, 'POST', `mount of ${digest} into ${c.registry}/${repository}`, repository);
}

/** Re-chunks a stream into buffers of exactly `size` bytes (the last may be shorter). */
async function* chunked(stream: Readable, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let have = 0;
  for await (const c of stream as AsyncIterable<Buffer>) {
    let chunk = c;
    while (have + chunk.length >= size) {
      const take = size - have;
      parts.push(chunk.subarray(0, take));
      yield Buffer.concat(parts, size);
      chunk = chunk.subarray(take);
      parts = [];
      have = 0;
    }
    if (chunk.length) {
      parts.push(chunk);
      have += chunk.length;
    }
  }
  if (have) yield Buffer.concat(parts, have);
}
