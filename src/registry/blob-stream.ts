import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Digest, VerifyStream } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { redactUrl } from '../util/index.ts';
import type { RegistryClient } from './client.ts';
import { responseError } from './errors.ts';
import { backoffDelay, isRetryableError, networkError } from './http.ts';

/** Bytes handed downstream at a time. */
const BLOCK = 512 * 1024;

/**
 * Opens `GET /v2/<repository>/blobs/<digest>` as one verified stream. If the connection breaks
 * after some bytes, the rest is requested with `Range: bytes=N-` (a server that ignores the range
 * gets its first N bytes skipped) and the whole blob is still hashed once, end to end.
 * Only this function opens blob bodies.
 */
export async function openBlobStream(
  client: RegistryClient,
  repository: string,
  digest: Digest,
  opts: { size?: number; signal?: AbortSignal; onProgress?: (bytes: number) => void },
): Promise<Readable> {
  const path = `/v2/${repository}/blobs/${digest}`;
  const what = `blob ${digest} in ${client.registry}/${repository}`;
  const first = await client.request({ method: 'GET', path, repository, signal: opts.signal });
  if (first.status !== 200) {
    throw await responseError(first, {
      method: 'GET',
      what,
      registry: client.registry,
      authenticated: await client.auth.hasCredentials(repository),
      secrets: client.auth.secrets,
    });
  }
  const lengthHeader = first.headers['content-length'];
  const length =
    lengthHeader === undefined
      ? undefined
      : Number(Array.isArray(lengthHeader) ? lengthHeader[0] : lengthHeader);
  const source = redactUrl(first.url);
  if (opts.size !== undefined && length !== undefined && length !== opts.size) {
    await first.body.dump().catch(() => {});
    throw new LadingError(
      ErrorCode.SizeMismatch,
      `size mismatch for ${what}: expected ${opts.size} bytes, the registry sends ${length} [GET ${source}]`,
      { registry: client.registry, url: source, expected: opts.size, found: length },
    );
  }
  const size = opts.size ?? length;
  const retry = client.http.retry;

  async function* chunks(): AsyncGenerator<Buffer> {
    let offset = 0;
    // The response being read (destroyed on failure) and what is iterated (the same body, or the
    // body after skipping what a server that ignored `Range` sends again).
    let response = first.body;
    let body: AsyncIterable<Buffer> = first.body;
    let failures = 0;
    // Socket reads arrive in 64 KiB pieces; handing them on in bigger blocks makes every stage
    // downstream (hashing, file writes) cost a tenth of the calls.
    let held: Buffer[] = [];
    let heldBytes = 0;
    const release = (): Buffer => {
      const block = held.length === 1 ? held[0]! : Buffer.concat(held, heldBytes);
      held = [];
      heldBytes = 0;
      return block;
    };
    for (;;) {
      try {
        for await (const chunk of body) {
          offset += chunk.length;
          opts.onProgress?.(chunk.length);
          held.push(chunk);
          heldBytes += chunk.length;
          if (heldBytes >= BLOCK) yield release();
        }
        if (heldBytes) yield release();
        return;
      } catch (err) {
        response.destroy();
        // What arrived before the failure is good: pass it on before resuming after it.
        if (heldBytes) yield release();
        if (opts.signal?.aborted) throw err;
        if (!isRetryableError(err) || failures >= retry.times) throw networkError(err, 'GET', first.url);
        if (size !== undefined && offset >= size) throw networkError(err, 'GET', first.url);
        failures++;
        await sleep(backoffDelay(failures, retry), undefined, { signal: opts.signal });
        client.http.debug(`resuming ${what} at byte ${offset}`);
        const res = await client.request({
          method: 'GET',
          path,
          repository,
          headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
          signal: opts.signal,
        });
        if (res.status === 206) {
          const cr = String(res.headers['content-range'] ?? '');
          const m = /^bytes (\d+)-/.exec(cr);
          if (!m || Number(m[1]) !== offset) {
            await res.body.dump().catch(() => {});
            throw new LadingError(
              ErrorCode.Registry,
              `resume of ${what} got Content-Range ${JSON.stringify(cr)}, wanted bytes ${offset}-`,
              {
                registry: client.registry,
                url: redactUrl(res.url),
              },
            );
          }
          response = res.body;
          body = res.body;
        } else if (res.status === 200) {
          // Range ignored (or a retry at byte 0): skip what we already have.
          response = res.body;
          body = skipBytes(res.body, offset);
        } else {
          throw await responseError(res, {
            method: 'GET',
            what,
            registry: client.registry,
            authenticated: await client.auth.hasCredentials(repository),
            secrets: client.auth.secrets,
          });
        }
      }
    }
  }

  const verify = new VerifyStream({ digest, size, source: `${what} [GET ${source}]` });
  pipeline(Readable.from(chunks(), { objectMode: false, highWaterMark: 1 << 20 }), verify, {
    signal: opts.signal,
  }).catch((err) => {
    if (!verify.destroyed) verify.destroy(err);
  });
  return verify;
}

async function* skipBytes(body: AsyncIterable<Buffer>, n: number): AsyncGenerator<Buffer> {
  let left = n;
  for await (const chunk of body) {
    if (left >= chunk.length) {
      left -= chunk.length;
      continue;
    }
    yield left > 0 ? chunk.subarray(left) : chunk;
    left = 0;
  }
}
