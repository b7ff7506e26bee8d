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
 *
 * A window only counts when this process had the chance to read in it: a tick that comes more
 * than half a window late (the event loop was busy, or the process was not scheduled) starts a
 * new window, and a verdict waits for the next poll of the event loop (timers run before I/O, so
 * bytes that arrived while the loop was away are read first).
 */
/**
 * A monotonic clock in milliseconds. Not `performance.now()`: the global `performance` loads
 * Node's perf_hooks on first use, ~6 ms of the first request of every command (cpu profile).
 */
function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export class StallWatch {
  readonly #timer: NodeJS.Timeout;
  #stopped = false;

  constructor(
    timeoutMs: number,
    bytesRead: () => number,
    excused: () => boolean,
    onStall: (bytes: number) => void,
    minBytes = MIN_PROGRESS_BYTES,
  ) {
    let last = bytesRead();
    let lastTick = nowMs();
    this.#timer = setInterval(() => {
      const tick = nowMs();
      const late = tick - lastTick > timeoutMs * 1.5;
      lastTick = tick;
      if (late) {
        last = bytesRead();
        return;
      }
      const from = last;
      last = bytesRead();
      if (last - from >= minBytes || excused()) return;
      setImmediate(() => {
        if (this.#stopped) return;
        const got = bytesRead() - from;
        if (got < minBytes && !excused()) {
          this.stop();
          onStall(got);
        }
      });
    }, timeoutMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }
}
