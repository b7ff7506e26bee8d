import { rmSync } from 'node:fs';
import { closeTemps, heldTemps } from './temp-paths.ts';

/** Whether a file-system request of this process is still in libuv's thread pool. */
function fsBusy(): boolean {
  return process.getActiveResourcesInfo().some((r) => r.startsWith('FSReq'));
}

/**
 * After Ctrl-C or SIGTERM: removes every held temp path, then calls `exit` (synchronously, in the
 * same tick as the last check) once none exists and no file-system request is in flight.
 *
 * One synchronous removal then process.exit is not enough: a request already handed to the
 * thread pool (the `mkdir -p` of a staging directory, the open of a temp file) runs after the
 * removal, because process.exit drains the pool before the process ends, and makes the path
 * again. So this waits for those requests and removes again, until a round finds the pool idle.
 * New temp paths are refused from the start (holdTemp throws), so the command winds down.
 */
export function removeTempsThenExit(exit: () => void): void {
  closeTemps();
  const round = (): void => {
    for (const path of heldTemps()) {
      try {
        rmSync(path, { recursive: true, force: true });
      } catch {
        // a request still in flight may have added an entry: the next round retries
      }
    }
    if (!fsBusy()) {
      // Nothing can make a path any more: done, whether or not a removal failed for good
      // (a read-only directory): waiting would not change that.
      exit();
      return;
    }
    const wait = (): void => {
      if (fsBusy()) setTimeout(wait, 5);
      else round();
    };
    wait();
  };
  round();
}
