import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';

const util = pathToFileURL(join(import.meta.dirname, '..', '..', 'src', 'util', 'index.ts')).href;

/**
 * Runs `cleanup` in a child process right after queueing, behind a busy libuv thread pool, the
 * file-system requests that make a held temp directory and a held temp file: the situation of a
 * Ctrl-C that lands while a `dir:` copy is `mkdir -p`-ing its staging directory. The four pbkdf2
 * jobs keep every pool thread busy, so the two requests are certainly still queued when the
 * signal handler's removal runs; process.exit drains the queue before the process ends.
 */
function runInterrupted(dir: string, cleanup: string): { status: number | null; stderr: string } {
  const script = `
    import { pbkdf2 } from 'node:crypto';
    import { mkdir, writeFile } from 'node:fs';
    const { holdTemp, removeHeldTemps, removeTempsThenExit } = await import(${JSON.stringify(util)});
    for (let i = 0; i < 4; i++) pbkdf2('a', 'b', 300000, 32, 'sha256', () => {});
    const stage = holdTemp(${JSON.stringify(join(dir, '.d.lading-x.tmp'))});
    mkdir(stage, { recursive: true }, () => {});
    writeFile(holdTemp(${JSON.stringify(join(dir, '.f.lading-x.tmp'))}), 'partial', () => {});
    ${cleanup}
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { PATH: process.env.PATH, UV_THREADPOOL_SIZE: '4' },
    encoding: 'utf8',
  });
  return { status: r.status, stderr: r.stderr };
}

test('an interrupt waits for the file-system requests in flight, then removes what they made', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lading-interrupt-cleanup-'));
  try {
    const r = runInterrupted(dir, 'removeTempsThenExit(() => process.exit(130));');
    assert.equal(r.status, 130, r.stderr);
    assert.deepEqual(await readdir(dir), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the race is real: one synchronous removal before exit leaves what queued requests make', async () => {
  // The handler lading had before: it fails the check above, deterministically.
  const dir = await mkdtemp(join(tmpdir(), 'lading-interrupt-cleanup-'));
  try {
    const r = runInterrupted(dir, 'removeHeldTemps(); process.exit(130);');
    assert.equal(r.status, 130, r.stderr);
    assert.deepEqual((await readdir(dir)).sort(), ['.d.lading-x.tmp', '.f.lading-x.tmp']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('no new temp path is made once the command is interrupted', () => {
  const script = `
    const { holdTemp, removeTempsThenExit } = await import(${JSON.stringify(util)});
    removeTempsThenExit(() => {});
    try { holdTemp('/nonexistent/.x.tmp'); console.log('held'); } catch (e) { console.log(e.code); }
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.stdout.trim(), 'E_ABORTED', r.stderr);
});
