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
  /** Milliseconds between plain lines (default 5000). */
  intervalMs?: number;
  label?: string;
  /** The terminal's width now (it may change while running); default 80. */
  columns?: () => number | undefined;
  /**
   * The whole amount, when known before the first blob starts (the layers of an unpack): then
   * the total is shown as such; otherwise only what has started is known ("of at least").
   */
  total?: number;
  /** What the blobs are called in the summary (default "blobs"). */
  unit?: string;
  /**
   * Without a terminal, whether a last line is written at the end (default true); prefetch keeps
   * its stderr to nix-prefetch-docker's `->` lines when it ends within one interval.
   */
  plainFinal?: boolean;
}

/** `811.7 B/s`, `1.5 KiB`: one decimal place at most, whole bytes as they are. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const text = i === 0 && Number.isInteger(v) ? String(v) : v.toFixed(1);
  return `${text} ${units[i]}`;
}

/** Seconds with one decimal place. */
function formatSecs(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

/**
 * Cuts a line to fit a terminal of `columns`: one column is left free, so the terminal never wraps
 * it (a wrapped line would make the redraw move up too few lines and leave stale lines behind).
 */
export function fitLine(line: string, columns: number): string {
  const max = Math.max(columns - 1, 1);
  const chars = [...line];
  if (chars.length <= max) return line;
  return `${chars.slice(0, max - 1).join('')}…`;
}

/**
 * A label and its numbers on one line of a terminal of `columns`: the label gives way first (cut in
 * its middle, so both ends of `SOURCE → DEST` stay readable), the numbers only when nothing is left.
 */
export function fitLabelled(label: string, rest: string, columns: number): string {
  const max = Math.max(columns - 1, 1);
  const full = label ? `${label}: ${rest}` : rest;
  if ([...full].length <= max) return full;
  const room = max - [...rest].length - 2;
  const chars = [...label];
  if (room < 8) return fitLine(full, columns);
  const head = Math.ceil((room - 1) / 2);
  const tail = room - 1 - head;
  return `${chars.slice(0, head).join('')}…${chars.slice(chars.length - tail).join('')}: ${rest}`;
}

/** Blobs shown one per line on a terminal at most; the rest are counted in one line. */
const MAX_BLOB_LINES = 6;
const BAR = 20;

/**
 * Progress on stderr, the same for every long command: on a terminal, the blobs in transfer and a
 * summary redrawn in place, each line fitted to the terminal's width; otherwise a plain line every
 * few seconds (CI logs) and a final one; nothing when quiet. Stdout is never touched.
 */
export class Progress {
  readonly #o: ProgressOptions;
  readonly #blobs = new Map<string, BlobState>();
  readonly #start = Date.now();
  #timer: NodeJS.Timeout | undefined;
  #finished = false;
  #paused = false;
  /** Bytes reported without blobs ({@link addBytes}): what a transfer knows only as a count. */
  #bytes = 0;
  /** Lines the live display holds on the terminal now (the cursor is on the line below them). */
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
    if (this.#o.quiet || this.#finished) return;
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

  /** Bytes fetched, for a transfer that reports no blobs (prefetch): shown as a count and rate. */
  addBytes(n: number): void {
    if (!this.#o.quiet && !this.#finished) this.#bytes += n;
  }

  /** A blob whose reading stopped before its end (extract had what it needed): no longer in transfer. */
  stopped(digest: string): void {
    const b = this.#blobs.get(digest);
    if (b && b.state === 'copying') b.state = 'done';
  }

  #totals(): { done: number; size: number; finished: number } {
    let done = 0;
    let size = 0;
    let finished = 0;
    for (const b of this.#blobs.values()) {
      done += Math.min(b.done, b.size || b.done);
      size += b.size;
      if (b.state === 'done' || b.state === 'skipped') finished++;
    }
    return { done, size, finished };
  }

  #summary(final: boolean, columns = Number.POSITIVE_INFINITY): string {
    const { done, size, finished } = this.#totals();
    const ms = Date.now() - this.#start;
    if (this.#blobs.size === 0) {
      const rate = ms > 0 ? (this.#bytes * 1000) / ms : 0;
      const rest = `${formatBytes(this.#bytes)} fetched (${formatBytes(rate)}/s, ${formatSecs(ms)})`;
      return fitLabelled(this.#o.label ?? '', rest, columns);
    }
    const rate = ms > 0 ? (done * 1000) / ms : 0;
    const unit = this.#o.unit ?? 'blobs';
    // While running, blobs not started yet are unknown: the total only grows, so say so.
    const total =
      this.#o.total !== undefined
        ? ` / ${formatBytes(this.#o.total)}`
        : final
          ? ` / ${formatBytes(size)}`
          : ` of at least ${formatBytes(size)}`;
    const rest = `${formatBytes(done)}${total} (${finished}/${this.#blobs.size} ${unit}, ${formatBytes(rate)}/s, ${formatSecs(ms)})`;
    return fitLabelled(this.#o.label ?? '', rest, columns);
  }

  #blobLine(b: BlobState, now: number): string {
    const frac = b.size ? Math.min(b.done, b.size) / b.size : 1;
    const fill = Math.round(frac * BAR);
    const bar = `[${'='.repeat(fill)}${' '.repeat(BAR - fill)}]`;
    const t = now - b.started;
    const rate = t > 0 ? `  ${formatBytes((b.done * 1000) / t)}/s` : '';
    const pct = `${String(Math.floor(frac * 100)).padStart(3)}%`;
    return `  ${b.digest.slice(7, 19)} ${bar} ${pct}  ${formatBytes(Math.min(b.done, b.size || b.done))} / ${formatBytes(b.size)}${rate}`;
  }

  /** Takes the live display off the screen and stops redrawing it until {@link resume}. */
  pause(): void {
    this.#paused = true;
    if (this.#o.tty && this.#drawn > 0) this.#o.out.write(`\r\x1b[${this.#drawn}A\x1b[J`);
    this.#drawn = 0;
  }

  resume(): void {
    this.#paused = false;
  }

  #render(final: boolean): void {
    if (this.#paused && !final) return;
    if (!this.#o.tty) {
      if (this.#blobs.size === 0 && this.#bytes === 0 && !final) return;
      this.#o.out.write(`${this.#summary(final)}\n`);
      return;
    }
    const columns = this.#o.columns?.() || 80;
    const lines: string[] = [];
    if (!final) {
      const now = Date.now();
      const active = [...this.#blobs.values()].filter((b) => b.state === 'copying');
      for (const b of active.slice(0, MAX_BLOB_LINES)) lines.push(this.#blobLine(b, now));
      if (active.length > MAX_BLOB_LINES) lines.push(`  … and ${active.length - MAX_BLOB_LINES} more`);
    }
    lines.push(this.#summary(final, columns));
    // Back to the first line of the display, each line rewritten, and whatever was below cleared.
    let s = this.#drawn ? `\r\x1b[${this.#drawn}A` : '\r';
    s += lines.map((l) => `\x1b[2K${fitLine(l, columns)}\n`).join('');
    s += '\x1b[J';
    this.#o.out.write(s);
    this.#drawn = lines.length;
  }

  /**
   * Writes a line of text (a warning) above the live display, which is then drawn again below
   * it; without a live display the text is written as it is.
   */
  print(text: string): void {
    if (!this.#o.tty || this.#drawn === 0 || this.#finished) {
      this.#o.out.write(text);
      return;
    }
    this.#o.out.write(`\r\x1b[${this.#drawn}A\x1b[J${text}`);
    this.#drawn = 0;
    this.#render(false);
  }

  /**
   * The command failed: the timer stops, a live display is erased (the error message follows
   * alone), and nothing more is printed; later calls do nothing.
   */
  abandon(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#o.tty && this.#drawn > 0) this.#o.out.write(`\r\x1b[${this.#drawn}A\x1b[J`);
    this.#drawn = 0;
  }

  /** Prints the final state once (on a terminal, only the summary stays); later calls do nothing. */
  finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#o.quiet || (this.#blobs.size === 0 && this.#bytes === 0)) return;
    if (this.#o.tty || this.#o.plainFinal !== false) this.#render(true);
  }
}
