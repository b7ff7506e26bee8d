import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { sweepStaleTemps, tempName } from '../../src/util/index.ts';
import { track, untrack } from '../helpers/bins.ts';

/** Field 22 of /proc/PID/stat, as the kernel reports it (read here independently). */
async function startTime(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, 'latin1');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

test('sweepStaleTemps removes what ended processes left, never a running process’s temp', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lading-sweep-'));
  const alive = spawn('sleep', ['60']);
  track(alive);
  // A process that has ended: its pid and start time, read while it still ran (sleep 0.2).
  const done = spawn('sleep', ['0.2']);
  const ended = new Promise((r) => done.on('exit', r));
  const donePid = done.pid!;
  const doneStart = await startTime(donePid);
  await ended;
  try {
    const liveStart = await startTime(alive.pid!);
    const names = {
      live: `.rootfs.lading-tmp-${alive.pid}-${liveStart}-0123abcd`,
      liveFile: `.x.tar.lading-tmp-${alive.pid}-${liveStart}-89abcdef.tmp`,
      mine: tempName('mine', true),
      dead: `.rootfs.lading-tmp-${donePid}-${doneStart}-00000000`,
      // The pid of a running process, but another start time: the pid was reused.
      reused: `.y.lading-tmp-${alive.pid}-${Number(liveStart) - 1}-11111111.tmp`,
      user: '.rootfs.lading-tmp-notours',
      plain: 'keep.txt',
    };
    for (const [k, n] of Object.entries(names)) {
      if (k === 'live' || k === 'dead') {
        await mkdir(join(dir, n));
        await writeFile(join(dir, n, 'inside'), 'x');
      } else await writeFile(join(dir, n), 'x');
    }
    await sweepStaleTemps(dir);
    assert.deepEqual(
      (await readdir(dir)).sort(),
      [names.live, names.liveFile, names.mine, names.user, names.plain].sort(),
    );
  } finally {
    alive.kill('SIGKILL');
    untrack(alive);
    await rm(dir, { recursive: true, force: true });
  }
});
