import { ErrorCode, LadingError } from '../errors/index.ts';
import { redactUrl } from '../util/index.ts';

/**
 * Time bounds for talking to a server, as plain pieces any HTTP path can use (node:http here, a
 * raw-socket blob reader later). One number, `timeoutMs` (`--timeout`), bounds every wait:
 * - connecting (TCP and TLS handshake) must finish within it;
 * - after the request is sent, the response headers must arrive within it (a silent server or a
 *   hanging token endpoint, even one trickling its headers);
 * - while a body is read, every window of that length must bring at least MIN_PROGRESS_BYTES,
 *   unless lading itself is not reading (a trickle of 1 byte/s is cut; a slow disk is not blamed
 *   on the server).
 */

/** Default for `--timeout`. */
export const DEFAULT_TIMEOUT_MS = 30_000;
/** Bytes a body must bring per timeout window while lading is reading it. */
export const MIN_PROGRESS_BYTES = 1024;

export type TimeoutPhase = 'connect' | 'response' | 'body' | 'idle';

function seconds(ms: number): string {
  return ms >= 1000 ? `${Number((ms / 1000).toFixed(1))} s` : `${ms} ms`;
}

/** The (retryable) error for a bound that ran out, naming the host and the phase. */
export function timeoutError(
  phase: TimeoutPhase,
  method: string,
  url: URL,
  timeoutMs: number,
  got?: number,
): LadingError {
  const host = url.host;
  const why =
    phase === 'connect'
      ? `could not connect to ${host} within ${seconds(timeoutMs)}`
      : phase === 'response'
        ? `no response from ${host} within ${seconds(timeoutMs)}`
        : phase === 'body'
          ? `${host} sent only ${got ?? 0} bytes in ${seconds(timeoutMs)} (too slow; see --timeout)`
          : `${host} sent nothing for ${seconds(timeoutMs)}`;
  const safe = redactUrl(url);
  return new LadingError(ErrorCode.Network, `${method} ${safe}: ${why}`, {
    url: safe,
    method,
    temporary: true,
  });
}

/**
 * Watches a body being read: calls `onStall(bytes)` when a window of `timeoutMs` brought fewer
 * than `minBytes` (`bytesRead()` is a running count, e.g. the socket's `bytesRead`) and the
 * reader was not the one holding things up (`excused()` false). Polls; adds no stream listeners.
 */
export class StallWatch {
  readonly #timer: NodeJS.Timeout;

  constructor(
    timeoutMs: number,
    bytesRead: () => number,
    excused: () => boolean,
    onStall: (bytes: number) => void,
    minBytes = MIN_PROGRESS_BYTES,
  ) {
    let last = bytesRead();
    this.#timer = setInterval(() => {
      const now = bytesRead();
      const got = now - last;
      last = now;
      if (got < minBytes && !excused()) {
        this.stop();
        onStall(got);
      }
    }, timeoutMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
