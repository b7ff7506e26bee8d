import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Keeps memory flat while gigabytes stream through short-lived Buffers.
 *
 * V8 collects the JavaScript heap by its own size, but Buffer memory lives outside it: V8 only
 * counts it, and starts a collection once about 64 MiB more of it has been allocated. A pipeline
 * that moves 500 MiB in 512 KiB pieces therefore keeps up to ~64 MiB of dead Buffers around. This
 * watches Buffer memory and runs a young-generation collection (a few milliseconds; the chunks die
 * young) whenever it grew by `stepBytes` since the last look. For the command-line process only:
 * a library must not change its host's garbage collection.
 */
export function keepBufferMemoryLow(stepBytes = 24 << 20, everyMs = 5): void {
  let gc: ((opts: { type: 'minor' | 'major' }) => void) | undefined;
  try {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as typeof gc;
  } catch {
    return;
  }
  if (typeof gc !== 'function') return;
  let base = process.memoryUsage().arrayBuffers;
  setInterval(() => {
    const now = process.memoryUsage().arrayBuffers;
    if (now - base > stepBytes) {
      gc!({ type: 'minor' });
      const after = process.memoryUsage().arrayBuffers;
      // Buffers that outlived a young collection went to the old generation: collect that too.
      if (after - base > stepBytes) gc!({ type: 'major' });
      base = process.memoryUsage().arrayBuffers;
    } else if (now < base) {
      base = now;
    }
  }, everyMs).unref();
}
