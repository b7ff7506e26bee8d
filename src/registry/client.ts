import type { Readable } from 'node:stream';
import { type Digest, Limits, parseDigest, readAtMost } from '../digest/index.ts';
import { ErrorCode, isLadingError, LadingError } from '../errors/index.ts';
import { MANIFEST_ACCEPT, manifestDigest } from '../image/index.ts';
import type { Reference } from '../reference/index.ts';
import { Limiter, redactUrl } from '../util/index.ts';
import { Authenticator, type CredentialLookup, type RegistryCredential } from './authenticator.ts';
import { closeBlobConnections, openBlobReadable } from './blob-reader.ts';
import { type CertDirOptions, certsForHost } from './cert-dir.ts';
import { responseError } from './errors.ts';
import { Http, type HttpOptions, type HttpResponse, isLoopbackHost, type SendOptions } from './http.ts';
import { foreignChallengeError, mayAnswerChallenge } from './origin-policy.ts';
import { PageWalk } from './pagination.ts';
import { drain, header } from './response.ts';
import { clientCertAlert } from './tls-alert.ts';
import { answersTlsInPlainHttp } from './tls-sniff.ts';
import { mountBlob, type UploadOptions, uploadBlob, uploadBlobStream } from './upload.ts';

export interface RegistryClientOptions extends HttpOptions, CertDirOptions {
  /** Registry host as in references (`docker.io`, `127.0.0.1:5000`). */
  registry: string;
  /** Host to connect to, if different (Docker Hub's `registry-1.docker.io`). */
  apiHost?: string;
  /** Credentials per repository (default: anonymous). */
  credentials?: CredentialLookup;
  /** Parallel requests to this registry (default 6). */
  jobs?: number;
  /** Force a scheme instead of HTTPS-with-loopback-fallback. */
  scheme?: 'https' | 'http';
}

/** A manifest as served: exact bytes plus what the registry said about it. */
export interface FetchedManifest {
  bytes: Buffer;
  /** Digest of `bytes` (verified against the reference's digest and `Docker-Content-Digest`). */
  digest: Digest;
  /** Content-Type the registry served. */
  contentType: string;
}

/** What a HEAD of a manifest tells. */
export interface ManifestHead {
  digest: Digest | undefined;
  contentType: string;
  size: number | undefined;
}

export interface RequestOptions {
  method: SendOptions['method'];
  /** Path below the registry root, e.g. `/v2/library/alpine/manifests/latest`. */
  path: string;
  /** Repository the request is about (for credentials). */
  repository: string;
  /** Token scopes the request needs (default pull on `repository`). */
  scopes?: string[];
  headers?: Record<string, string>;
  body?: SendOptions['body'];
  signal?: AbortSignal;
  retry?: boolean;
  /** Full URL instead of `path` (upload locations). */
  url?: URL;
  /** Send no credentials (a URL on another origin than the registry's). */
  anonymous?: boolean;
}

const DEFAULT_JOBS = 6;

/**
 * A client for one OCI Distribution / Docker Registry v2 registry. It learns the scheme and the
 * authentication challenge once (`GET /v2/`), answers challenges, retries, bounds concurrency,
 * and verifies every manifest and blob it returns.
 */
export class RegistryClient {
  readonly registry: string;
  readonly apiHost: string;
  readonly http: Http;
  readonly limiter: Limiter;
  readonly auth: Authenticator;
  #base: Promise<URL> | undefined;
  readonly #scheme: 'https' | 'http' | undefined;

  constructor(opts: RegistryClientOptions) {
    this.registry = opts.registry;
    this.apiHost = opts.apiHost ?? opts.registry;
    const { certDir, perHostCertDirs } = opts;
    // containers-certs.d: the registry's own origin uses --cert-dir (or the per-host directory of
    // the registry's name, `docker.io` rather than its API host); any other origin (token realm,
    // redirect target) only its own per-host directory, so a client certificate never goes elsewhere.
    const tlsFor =
      opts.tlsFor ??
      ((host: string) =>
        host === this.apiHost
          ? certsForHost(this.registry, { certDir, perHostCertDirs })
          : certsForHost(host, { perHostCertDirs }));
    this.http = new Http({ ...opts, tlsFor });
    this.limiter = new Limiter(opts.jobs ?? DEFAULT_JOBS);
    this.auth = new Authenticator(
      this.http,
      this.registry,
      opts.credentials ?? (async (): Promise<RegistryCredential> => ({ kind: 'anonymous' })),
    );
    this.#scheme = opts.scheme;
  }

  /** The registry's base URL, after the scheme check and the `/v2/` ping. */
  base(signal?: AbortSignal): Promise<URL> {
    this.#base ??= this.#ping(signal);
    this.#base.catch(() => {
      this.#base = undefined;
    });
    return this.#base;
  }

  async #ping(signal?: AbortSignal): Promise<URL> {
    // A bad certificate directory is an error of its own, not a reason to try plain HTTP.
    await this.http.prepareTls(new URL(`https://${this.apiHost}/`));
    const { candidates, retry } = await this.#candidates();
    let lastError: unknown;
    for (const base of candidates) {
      const url = new URL('/v2/', base);
      let res: HttpResponse;
      try {
        res = await this.http.send(url, { method: 'GET', signal, retry });
      } catch (err) {
        lastError = err;
        if (base.protocol === 'https:') {
          // The server wants a client certificate it trusts: say so (not "connection closed"),
          // and do not fall back to plain HTTP.
          const alert =
            clientCertAlert(err) ?? (isSocketError(err) ? await this.http.clientCertAlert(url) : undefined);
          if (alert) throw await this.#clientCertError(url, alert, err);
        }
        // The server speaks TLS but its certificate is not trusted: falling back to plain HTTP
        // would only hide that.
        if (isCertificateError(err)) break;
        continue;
      }
      await drain(res);
      if (res.status === 401) {
        // A challenge only counts from the registry itself, not from where /v2/ redirected to.
        if (mayAnswerChallenge(res.url, base.origin)) this.auth.learn(res);
      } else if (res.status !== 200 && res.status !== 404) {
        // 404: some registries do not implement /v2/ but serve the API.
        throw await responseError(res, {
          method: 'GET',
          what: `registry ${this.registry}`,
          registry: this.registry,
        });
      }
      return base;
    }
    if (isLadingError(lastError)) {
      const hint = isCertificateError(lastError)
        ? ` (the certificate is not trusted: add its CA as DIR/NAME.crt with --cert-dir DIR or in certs.d/${this.registry}/, or NODE_EXTRA_CA_CERTS; or use --tls-verify=false)`
        : !isLoopbackHost(this.apiHost) && this.http.tlsVerify
          ? ' (for plain HTTP use --tls-verify=false)'
          : '';
      throw new LadingError(
        lastError.code,
        `cannot reach registry ${this.registry}: ${lastError.message}${hint}`,
        { registry: this.registry, url: lastError.url, temporary: lastError.temporary },
        { cause: lastError },
      );
    }
    throw lastError;
  }

  /**
   * The base URLs to ping, in order: the forced scheme; else HTTPS, then plain HTTP where Docker's
   * rule allows it (loopback, or --tls-verify=false), without the HTTPS attempt when the port
   * answers a TLS hello in HTTP (it could only fail: tls-sniff.ts). Retries (network errors, 5xx)
   * only where there is no other scheme to try, as before the sniff.
   */
  async #candidates(): Promise<{ candidates: URL[]; retry: boolean }> {
    if (this.#scheme) return { candidates: [new URL(`${this.#scheme}://${this.apiHost}/`)], retry: true };
    const https = new URL(`https://${this.apiHost}/`);
    if (!isLoopbackHost(this.apiHost) && this.http.tlsVerify) return { candidates: [https], retry: true };
    const http = new URL(`http://${this.apiHost}/`);
    const plainOnly =
      https.port !== '' &&
      (await answersTlsInPlainHttp(https.hostname, Number(https.port), this.http.timeoutMs));
    if (!plainOnly) return { candidates: [https, http], retry: false };
    this.http.debug(`${this.apiHost} answers a TLS hello in plain HTTP: no HTTPS attempt`);
    return { candidates: [http], retry: false };
  }

  async #clientCertError(url: URL, alert: string, cause: unknown): Promise<LadingError> {
    const tls = await this.http.prepareTls(url).catch(() => undefined);
    const offered = tls?.cert
      ? `did not accept the client certificate from ${tls.dir}`
      : `requires a client certificate and none was found (put NAME.cert and NAME.key in --cert-dir DIR or in certs.d/${this.registry}/)`;
    return new LadingError(
      ErrorCode.Unauthorized,
      `registry ${this.registry} refused the TLS connection (${alert}): it ${offered}`,
      { registry: this.registry, url: redactUrl(url) },
      { cause },
    );
  }

  /**
   * Sends an authorised request. Answers a 401 once (new challenge, `insufficient_scope` widening,
   * Basic instead of Bearer) and returns the final response; non-2xx responses are returned.
   */
  async request(opts: RequestOptions): Promise<HttpResponse> {
    const base = await this.base(opts.signal);
    const url = opts.url ?? new URL(opts.path, base);
    let scopes = opts.scopes ?? [`repository:${opts.repository}:pull`];
    for (let attempt = 0; ; attempt++) {
      const authz = opts.anonymous
        ? undefined
        : await this.auth.authorization(opts.repository, scopes, opts.signal);
      const headers = { ...opts.headers };
      if (authz) headers.authorization = authz;
      const res = await this.http.send(url, {
        method: opts.method,
        headers,
        body: opts.body,
        signal: opts.signal,
        retry: opts.retry,
      });
      if (res.status !== 401 || attempt >= 2 || opts.anonymous) return res;
      if (!mayAnswerChallenge(res.url, base.origin)) {
        await drain(res);
        throw foreignChallengeError(res.url, this.registry, opts.method);
      }
      const before = this.auth.scheme;
      const wider = this.auth.insufficientScope(res);
      this.auth.learn(res);
      const more = wider.filter((s) => !scopes.includes(s));
      if (more.length) {
        scopes = [...scopes, ...more];
      } else if (authz && before === this.auth.scheme) {
        // Same challenge, token refused: drop cached tokens and try once more, then give up.
        if (attempt >= 1) return res;
        this.auth.invalidate();
      } else if (!authz && !this.auth.scheme) {
        return res;
      }
      await drain(res);
    }
  }

  /** The LadingError for a failed response (secrets redacted). */
  async errorFor(
    res: HttpResponse,
    method: string,
    what: string,
    repository: string,
    ref?: string,
  ): Promise<LadingError> {
    return responseError(res, {
      method,
      what,
      ref,
      registry: this.registry,
      authenticated: await this.auth.hasCredentials(repository),
      secrets: this.auth.secrets,
    });
  }

  /**
   * Checks that the registry accepts this client's credentials (what `login` does before storing
   * them): a token without scopes for Bearer registries, `GET /v2/` for Basic ones.
   */
  async checkCredentials(signal?: AbortSignal): Promise<void> {
    await this.base(signal);
    const res = await this.request({ method: 'GET', path: '/v2/', repository: '', scopes: [], signal });
    if (res.status !== 200) {
      throw await this.errorFor(res, 'GET', `login to ${this.registry}`, '');
    }
    await drain(res);
  }

  /** HEAD of a manifest: the digest without downloading (a HEAD is not a Docker Hub pull). */
  async headManifest(ref: Reference, signal?: AbortSignal): Promise<ManifestHead | undefined> {
    return this.limiter.run(async () => {
      const res = await this.request({
        method: 'HEAD',
        path: `/v2/${ref.repository}/manifests/${ref.identifier}`,
        repository: ref.repository,
        headers: { accept: MANIFEST_ACCEPT },
        signal,
      });
      await drain(res);
      if (res.status === 404) return undefined;
      if (res.status !== 200)
        throw await this.errorFor(res, 'HEAD', `manifest ${ref}`, ref.repository, String(ref));
      const dcd = header(res, 'docker-content-digest');
      const length = header(res, 'content-length');
      return {
        digest: dcd ? parseDigest(dcd, 'Docker-Content-Digest') : undefined,
        contentType: header(res, 'content-type') ?? '',
        size: length ? Number(length) : undefined,
      };
    });
  }

  /**
   * GET a manifest by tag or digest: exact bytes, capped at 4 MiB, digest checked against the
   * reference's digest and the `Docker-Content-Digest` header.
   */
  async getManifest(ref: Reference, signal?: AbortSignal): Promise<FetchedManifest> {
    return this.limiter.run(async () => {
      const what = `manifest ${ref}`;
      const res = await this.request({
        method: 'GET',
        path: `/v2/${ref.repository}/manifests/${ref.identifier}`,
        repository: ref.repository,
        headers: { accept: MANIFEST_ACCEPT },
        signal,
      });
      if (res.status !== 200) throw await this.errorFor(res, 'GET', what, ref.repository, String(ref));
      const bytes = await readAtMost(res.body, Limits.manifest, what);
      const algorithm = ref.digest?.startsWith('sha512:') ? 'sha512' : 'sha256';
      const digest = manifestDigest(bytes, algorithm);
      const url = redactUrl(res.url);
      if (ref.digest && digest !== ref.digest) {
        throw new LadingError(
          ErrorCode.DigestMismatch,
          `digest mismatch for ${what}: expected ${ref.digest}, got ${digest} (${bytes.length} bytes) [GET ${url}]`,
          { ref: String(ref), registry: this.registry, url, expected: ref.digest, found: digest },
        );
      }
      const dcd = header(res, 'docker-content-digest');
      if (dcd && !ref.digest) {
        const served = parseDigest(dcd, 'Docker-Content-Digest');
        const ours = served.startsWith('sha512:') ? manifestDigest(bytes, 'sha512') : digest;
        if (served !== ours) {
          throw new LadingError(
            ErrorCode.DigestMismatch,
            `digest mismatch for ${what}: the registry says ${served}, the bytes hash to ${ours} [GET ${url}]`,
            { ref: String(ref), registry: this.registry, url, expected: served, found: ours },
          );
        }
      }
      return { bytes, digest, contentType: header(res, 'content-type') ?? '' };
    });
  }

  /** Whether a blob exists (HEAD). */
  async blobExists(repository: string, digest: Digest, signal?: AbortSignal): Promise<boolean> {
    return this.limiter.run(async () => {
      const res = await this.request({
        method: 'HEAD',
        path: `/v2/${repository}/blobs/${digest}`,
        repository,
        signal,
      });
      await drain(res);
      if (res.status === 200) return true;
      if (res.status === 404) return false;
      throw await this.errorFor(res, 'HEAD', `blob ${digest} in ${this.registry}/${repository}`, repository);
    });
  }

  /**
   * A blob as a verified stream: size and digest are checked inside the stream, so the consumer
   * sees an error instead of `end` when the bytes are wrong. A broken connection resumes with
   * `Range`. The concurrency slot is held until the stream ends.
   */
  async openBlob(
    repository: string,
    digest: Digest,
    opts: { size?: number; signal?: AbortSignal; onProgress?: (bytes: number) => void } = {},
  ): Promise<Readable> {
    await this.limiter.acquire();
    try {
      const stream = await openBlobReadable(this, repository, digest, opts);
      let released = false;
      const release = (): void => {
        if (!released) {
          released = true;
          this.limiter.release();
        }
      };
      stream.once('close', release);
      stream.once('end', release);
      stream.once('error', release);
      return stream;
    } catch (err) {
      this.limiter.release();
      throw err;
    }
  }

  /** Reads a small blob (a config) into memory, verified, capped at `limit`. */
  async getBlobBytes(
    repository: string,
    digest: Digest,
    opts: { size?: number; limit?: number; signal?: AbortSignal } = {},
  ): Promise<Buffer> {
    const limit = opts.limit ?? Limits.config;
    if (opts.size !== undefined && opts.size > limit) {
      throw new LadingError(
        ErrorCode.TooLarge,
        `blob ${digest} is ${opts.size} bytes, over the ${limit}-byte limit`,
        {
          registry: this.registry,
          expected: limit,
          found: opts.size,
        },
      );
    }
    const stream = await this.openBlob(repository, digest, { size: opts.size, signal: opts.signal });
    return readAtMost(stream, limit, `blob ${digest}`);
  }

  /**
   * The last `n` bytes of a blob (`Range: bytes=-n`), or undefined when the registry does not
   * serve ranges (it is then not read). Unverified: for hints that are checked later.
   */
  async blobTail(
    repository: string,
    digest: Digest,
    n: number,
    signal?: AbortSignal,
  ): Promise<Buffer | undefined> {
    return this.limiter.run(async () => {
      const res = await this.request({
        method: 'GET',
        path: `/v2/${repository}/blobs/${digest}`,
        repository,
        headers: { range: `bytes=-${n}` },
        signal,
      });
      if (res.status !== 206) {
        await drain(res);
        return undefined;
      }
      const tail = await readAtMost(res.body, n, `the end of blob ${digest}`);
      return tail.length === n ? tail : undefined;
    });
  }

  /** Every tag of a repository, following `Link` pagination. */
  async listTags(
    repository: string,
    opts: { signal?: AbortSignal; pageSize?: number } = {},
  ): Promise<string[]> {
    const { signal } = opts;
    const tags: string[] = [];
    let path: string | undefined = `/v2/${repository}/tags/list${opts.pageSize ? `?n=${opts.pageSize}` : ''}`;
    const walk = new PageWalk(`tags of ${this.registry}/${repository}`);
    while (path) {
      const current: string = path;
      walk.visit(current);
      const res = await this.limiter.run(() =>
        this.request({ method: 'GET', path: current, repository, signal }),
      );
      if (res.status !== 200)
        throw await this.errorFor(res, 'GET', `tags of ${this.registry}/${repository}`, repository);
      const raw = await readAtMost(res.body, Limits.manifest, `tag list of ${repository}`);
      walk.read(raw.length);
      let json: { tags?: unknown };
      try {
        json = JSON.parse(raw.toString('utf8'));
      } catch {
        throw new LadingError(ErrorCode.Registry, `tag list of ${this.registry}/${repository} is not JSON`, {
          registry: this.registry,
        });
      }
      if (Array.isArray(json.tags)) for (const t of json.tags) if (typeof t === 'string') tags.push(t);
      path = nextLink(header(res, 'link'));
    }
    return tags;
  }

  /**
   * Tries a cross-repository mount of `digest` from `fromRepository` (same registry). Returns true
   * when the registry mounted it; false when it started an ordinary upload instead (cancelled).
   */
  mountBlob(
    repository: string,
    digest: Digest,
    fromRepository: string,
    signal?: AbortSignal,
  ): Promise<boolean> {
    return this.limiter.run(() => mountBlob(this, repository, digest, fromRepository, signal));
  }

  /**
   * Uploads a blob: monolithic (one streaming `PUT ?digest=`) or in `chunkSize` PATCH chunks
   * (registry/upload.ts). The registry checks the digest; `open` is called again for each retry.
   */
  uploadBlob(
    repository: string,
    digest: Digest,
    size: number,
    open: () => Promise<Readable>,
    opts: UploadOptions = {},
  ): Promise<void> {
    return this.limiter.run(() => uploadBlob(this, repository, digest, size, open, opts));
  }

  /**
   * Uploads a blob whose digest is known only at its end (a layer compressed on the fly), hashed
   * while it is sent. Returns digest and size.
   */
  uploadBlobStream(
    repository: string,
    open: () => Promise<Readable>,
    opts: Omit<UploadOptions, 'chunkSize'> = {},
  ): Promise<{ digest: Digest; size: number }> {
    return this.limiter.run(() => uploadBlobStream(this, repository, open, opts));
  }

  /** Retries a failed upload gets (from --retry-times). */
  get retryTimes(): number {
    return this.http.retry.times;
  }

  debug(line: string): void {
    this.http.debug(line);
  }

  /** Pushes a manifest under a tag or its digest; checks the digest the registry reports. */
  async putManifest(
    repository: string,
    tagOrDigest: string,
    bytes: Uint8Array,
    mediaType: string,
    signal?: AbortSignal,
  ): Promise<Digest> {
    const digest = manifestDigest(bytes);
    return this.limiter.run(async () => {
      const what = `manifest ${this.registry}/${repository}:${tagOrDigest}`;
      const res = await this.request({
        method: 'PUT',
        path: `/v2/${repository}/manifests/${tagOrDigest}`,
        repository,
        scopes: [`repository:${repository}:pull,push`],
        headers: { 'content-type': mediaType },
        body: Buffer.from(bytes),
        signal,
      });
      await drain(res);
      if (res.status !== 201 && res.status !== 200) throw await this.errorFor(res, 'PUT', what, repository);
      const dcd = header(res, 'docker-content-digest');
      if (dcd && dcd !== digest) {
        throw new LadingError(
          ErrorCode.DigestMismatch,
          `${what}: the registry stored ${dcd}, expected ${digest}`,
          {
            registry: this.registry,
            expected: digest,
            found: dcd,
          },
        );
      }
      return digest;
    });
  }

  async close(): Promise<void> {
    closeBlobConnections(this);
    await this.http.close();
  }
}

const CERT_ERRORS =
  /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS_CERT_ALTNAME_INVALID|HOSTNAME_MISMATCH/;

/** True for a connection the other side closed or reset (what a refused client certificate looks like). */
function isSocketError(err: unknown): boolean {
  const e = err as { code?: string; cause?: { code?: string; cause?: { code?: string } } };
  return [e?.code, e?.cause?.code, e?.cause?.cause?.code].some(
    (c) => c === 'UND_ERR_SOCKET' || c === 'ECONNRESET' || c === 'EPIPE',
  );
}

/** True for a TLS certificate verification failure (as opposed to a connection failure). */
function isCertificateError(err: unknown): boolean {
  const e = err as { code?: string; cause?: { code?: string; cause?: { code?: string } } };
  return [e?.code, e?.cause?.code, e?.cause?.cause?.code].some(
    (c) => typeof c === 'string' && CERT_ERRORS.test(c),
  );
}

/** The next page from an RFC 5988 `Link: </v2/…?last=x&n=y>; rel="next"` header (same origin only). */
export function nextLink(link: string | undefined): string | undefined {
  if (!link) return undefined;
  for (const part of link.split(',')) {
    const m = /<([^>]*)>\s*;\s*rel="?next"?/i.exec(part);
    if (m?.[1]) {
      const target = m[1];
      if (target.startsWith('/')) return target;
      try {
        const u = new URL(target);
        return u.pathname + u.search;
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}
