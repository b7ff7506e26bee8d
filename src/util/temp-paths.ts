import { rmSync } from 'node:fs';
import { ErrorCode, LadingError } from '../errors/index.ts';

/** Temporary files and directories this process made and has not removed or renamed yet. */
const held = new Set<string>();
/** Set once the command is interrupted: no new temp path may be made from then on. */
let closed = false;

/**
 * Remembers a temporary file or directory, so that an interrupted command (Ctrl-C, SIGTERM)
 * removes it instead of leaving it beside the user's files. Returns `path`. Paths renamed into
 * place need no release: the name no longer exists.
 */
export function holdTemp(path: string): string {
  if (closed) throw new LadingError(ErrorCode.Aborted, 'interrupted', { path });
  held.add(path);
  return path;
}

/** Forgets a temporary path (it was removed or renamed). */
export function releaseTemp(path: string): void {
  held.delete(path);
}

/** Removes every temporary path still held, synchronously (for signal handlers). */
export function removeHeldTemps(): void {
  for (const path of held) {
    try {
      rmSync(path, { recursive: true, force: true });
    } catch {
      // best effort: the process is going away
    }
  }
  held.clear();
}

/** Refuses every later {@link holdTemp} (the command was interrupted and is winding down). */
export function closeTemps(): void {
  closed = true;
}

/** Whether {@link closeTemps} was called: the command was interrupted. */
export function tempsClosed(): boolean {
  return closed;
}

/** The temporary paths still held. */
export function heldTemps(): string[] {
  return [...held];
}
