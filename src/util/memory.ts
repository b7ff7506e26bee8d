import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Keeps memory flat while gigabytes stream through short-lived Buffers.
 *
 * V8 collects the JavaScript heap by its own size, but Buffer memory lives outside it: V8 only
 * counts it, and starts a collection once about 64 MiB more of it has been allocated. A pipeline
 * that moves 500 MiB in 512 KiB pieces therefore keeps up to ~64 MiB of dead Buffers around. This
 * watches the external memory V8 counts and runs a young-generation collection (a millisecond or
 * two: the chunks die young) whenever it grew by `stepBytes` since the last look. Measured on a
 * 200 MiB image: peak RSS of prefetch ~155 → ~130 MiB, copy ~155 → ~125 MiB, and both a little
 * faster (small young collections are cheap; 16 MiB steps kept ~140 MiB; full collections saved
 * more but cost 10% of the time). For the command-line process only: a library must not change
 * its host's garbage collection.
 */
export function keepBufferMemoryLow(stepBytes = 8 << 20, everyMs = 5): void {
  let gc: ((opts: { type: 'minor' | 'major' }) => void) | undefined;
  try {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as typeof gc;
  } catch {
    return;
  }
  if (typeof gc !== 'function') return;
  const external = (): number => getHeapStatistics().external_memory;
  let base = external();
  const check = (): void => {
    const now = external();
    if (now - base > stepBytes) {
      gc!({ type: 'minor' });
      base = external();
    } else if (now < base) {
      base = now;
    }
  };
  setInterval(check, everyMs).unref();
  churnCheck = check;
}

let churnCheck: (() => void) | undefined;
let churned = 0;

/**
 * Told by code that allocates Buffers in a long synchronous stretch (a layer inflated on this
 * thread), where the timer of {@link keepBufferMemoryLow} may not get its turn: every `bytes`
 * reported add up, and each 4 MiB runs the same check. Does nothing unless the command-line
 * process turned the check on.
 */
export function noteBufferChurn(bytes: number): void {
  if (!churnCheck) return;
  churned += bytes;
  if (churned < 4 << 20) return;
  churned = 0;
  churnCheck();
}
