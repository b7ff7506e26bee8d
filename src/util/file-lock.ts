import { open, readFile, stat, unlink } from 'node:fs/promises';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { ioError } from './atomic-file.ts';
import { holdTemp, owner, ownerGone, releaseTemp } from './temp-paths.ts';

/**
 * Runs `fn` holding an exclusive lock: the file `lockPath`, created with O_EXCL and holding this
 * process's `PID-STARTTIME`. Other lading processes wait for it (polling); a lock whose owner has
 * ended (SIGKILL) is taken over. What another program does is not covered: skopeo and umoci do
 * not know this lock.
 */
export async function withFileLock<T>(
  lockPath: string,
  what: string,
  fn: () => Promise<T>,
  opts: { timeoutMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  const me = owner();
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(lockPath, 'wx', 0o644);
      holdTemp(lockPath);
      try {
        await fh.writeFile(me);
      } finally {
        await fh.close();
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(err, lockPath);
    }
    const holder = await readFile(lockPath, 'utf8').catch(() => undefined);
    // An empty file is a lock being written right now, or one whose writer died in between.
    const empty =
      holder === '' && Date.now() - ((await stat(lockPath).catch(() => undefined))?.mtimeMs ?? 0) > 5000;
    if ((holder && ownerGone(holder)) || empty) {
      // Re-read just before removing it, so another waiter's fresh lock is not removed.
      if ((await readFile(lockPath, 'utf8').catch(() => undefined)) === holder)
        await unlink(lockPath).catch(() => {});
      continue;
    }
    if (Date.now() > deadline)
      throw new LadingError(
        ErrorCode.Io,
        `${what} is locked by process ${holder?.split('-')[0] ?? '?'} (${lockPath}); remove the file if no lading runs`,
        { path: lockPath },
      );
    await new Promise((r) => setTimeout(r, Math.min(100, 5 + attempt * 5) * (0.5 + Math.random())));
  }
  try {
    return await fn();
  } finally {
    await unlink(lockPath).catch(() => {});
    releaseTemp(lockPath);
  }
}
