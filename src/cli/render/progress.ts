import type { Writable } from 'node:stream';
import type { CopyEvent } from '../../copy/index.ts';

interface BlobState {
  digest: string;
  size: number;
  done: number;
  state: 'waiting' | 'copying' | 'done' | 'skipped';
  started: number;
}

export interface ProgressOptions {
  out: Writable;
  /** Live redraw on a terminal; periodic plain lines otherwise. */
  tty: boolean;
  /** Nothing at all. */
  quiet?: boolean;
  /** Seconds between plain lines (default 5). */
  intervalMs?: number;
  label?: string;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/**
 * Progress on stderr: per-blob state and rate redrawn in place on a TTY, a plain line every few
 * seconds otherwise (CI logs), nothing when quiet. Stdout is never touched.
 */
export class Progress {
  readonly #o: ProgressOptions;
  readonly #blobs = new Map<string, BlobState>();
  readonly #start = Date.now();
  #timer: NodeJS.Timeout | undefined;
  #finished = false;
  #drawn = 0;

  constructor(opts: ProgressOptions) {
    this.#o = opts;
    if (!opts.quiet) {
      this.#timer = setInterval(() => this.#render(false), opts.tty ? 200 : (opts.intervalMs ?? 5000));
      this.#timer.unref();
    }
  }

  /** Feed events from the copy orchestrator (or any transfer). */
  readonly onEvent = (e: CopyEvent): void => {
    if (this.#o.quiet) return;
    if (e.type === 'manifest') return;
    let b = this.#blobs.get(e.digest);
    if (!b) {
      b = {
        digest: e.digest,
        size: 'size' in e ? e.size : 0,
        done: 0,
        state: 'waiting',
        started: Date.now(),
      };
      this.#blobs.set(e.digest, b);
    }
    if (e.type === 'blob-start') {
      b.state = 'copying';
      b.started = Date.now();
    } else if (e.type === 'blob-progress') b.done += e.bytes;
    else if (e.type === 'blob-done') {
      b.state = 'done';
      b.done = b.size;
    } else if (e.type === 'blob-skip') {
      b.state = 'skipped';
      b.done = b.size;
    }
  };

  #totals(): { done: number; size: number } {
    let done = 0;
    let size = 0;
    for (const b of this.#blobs.values()) {
      done += Math.min(b.done, b.size || b.done);
      size += b.size;
    }
    return { done, size };
  }

  #render(final: boolean): void {
    const { done, size } = this.#totals();
    const secs = (Date.now() - this.#start) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    const label = this.#o.label ? `${this.#o.label}: ` : '';
    if (!this.#o.tty) {
      if (this.#blobs.size === 0 && !final) return;
      this.#o.out.write(
        `${label}${formatBytes(done)} / ${formatBytes(size)} (${this.#count('done') + this.#count('skipped')}/${this.#blobs.size} blobs, ${formatBytes(rate)}/s, ${secs.toFixed(1)}s)\n`,
      );
      return;
    }
    const lines: string[] = [];
    for (const b of this.#blobs.values()) {
      const pct = b.size ? Math.floor((100 * Math.min(b.done, b.size)) / b.size) : 100;
      const t = (Date.now() - b.started) / 1000;
      const r = b.state === 'copying' && t > 0 ? ` ${formatBytes(b.done / t)}/s` : '';
      lines.push(
        `  ${b.digest.slice(7, 19)}  ${b.state.padEnd(8)} ${String(pct).padStart(3)}%  ${formatBytes(b.size).padStart(10)}${r}`,
      );
    }
    lines.push(
      `${label}${formatBytes(done)} / ${formatBytes(size)}  ${formatBytes(rate)}/s  ${secs.toFixed(1)}s`,
    );
    let s = this.#drawn ? `\x1b[${this.#drawn}A` : '';
    s += lines.map((l) => `\x1b[2K${l}`).join('\n');
    this.#o.out.write(`${s}\n`);
    this.#drawn = lines.length;
  }

  #count(state: BlobState['state']): number {
    let n = 0;
    for (const b of this.#blobs.values()) if (b.state === state) n++;
    return n;
  }

  /** Stops the timer and prints the final state. */
  /** Prints the final state once; later calls do nothing. */
  finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (!this.#o.quiet && this.#blobs.size > 0) this.#render(true);
  }
}
