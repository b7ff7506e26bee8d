import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
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

/**
 * The start time of a process (clock ticks since boot, field 22 of /proc/PID/stat), or undefined
 * when there is no such process (or no /proc). With the pid it names one process for good: a
 * pid reused later has another start time.
 */
function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

let self: string | undefined;
/** `PID-STARTTIME` of this process (STARTTIME 0 without /proc). */
export function owner(): string {
  self ??= `${process.pid}-${startTimeOf(process.pid) ?? '0'}`;
  return self;
}

/** Every temp name lading makes carries this mark, its owner and a random part. */
const TEMP_NAME = /\.lading-tmp-(\d+)-(\d+)-[0-9a-f]{8}(\.tmp)?$/;

/**
 * A name for a temporary file or directory: `.LABEL.lading-tmp-PID-START-RANDOM` (+ `.tmp` for
 * files). The owner in the name lets a later run recognise a leftover whose process is gone (a
 * SIGKILL, a power cut) and remove it ({@link sweepStaleTemps}).
 */
export function tempName(label: string, file = false): string {
  return `.${label}.lading-tmp-${owner()}-${randomBytes(4).toString('hex')}${file ? '.tmp' : ''}`;
}

/** Whether a temp name's owner is gone: the pid is free, or now names a process started later. */
export function isStaleTempName(name: string): boolean {
  const m = TEMP_NAME.exec(name);
  return m ? ownerGone(`${m[1]}-${m[2]}`) : false;
}

/** Whether the process an {@link owner} string names has ended (its pid is free or reused). */
export function ownerGone(who: string): boolean {
  const m = /^(\d+)-(\d+)$/.exec(who);
  if (!m) return true;
  const pid = Number(m[1]);
  if (pid === process.pid) return who !== owner();
  const start = startTimeOf(pid);
  if (start === undefined) {
    // No /proc entry: gone, unless /proc is missing altogether (then ask the kernel).
    if (startTimeOf(process.pid) !== undefined) return true;
    try {
      process.kill(pid, 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }
  return m[2] !== '0' && start !== m[2];
}

const swept = new Set<string>();

/**
 * Removes the temp files and directories in `dir` that a process which no longer runs left
 * behind. Once per directory per process; a directory that cannot be read is left alone.
 */
export async function sweepStaleTemps(dir: string): Promise<void> {
  if (swept.has(dir)) return;
  swept.add(dir);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  await Promise.all(
    names
      .filter((n) => n.includes('.lading-tmp-') && isStaleTempName(n))
      .map((n) => rm(join(dir, n), { recursive: true, force: true }).catch(() => {})),
  );
}

/**
 * A held temp file name beside `path` (so the final rename stays on one file system), after
 * removing stale ones there.
 */
export async function tempFileBeside(path: string): Promise<string> {
  await sweepStaleTemps(dirname(path));
  return holdTemp(join(dirname(path), tempName(basename(path), true)));
}

/**
 * Makes a held temp directory in `parent` (mode 0700, or `mode` less the umask for one that
 * becomes the result), after removing stale ones there.
 */
export async function makeTempDir(parent: string, label: string, mode = 0o700): Promise<string> {
  await sweepStaleTemps(parent);
  const dir = holdTemp(join(parent, tempName(label)));
  await mkdir(dir, { mode });
  return dir;
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
