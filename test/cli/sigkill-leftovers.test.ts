import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { requireBin, run, track, untrack } from '../helpers/bins.ts';
import { type BuiltLayout, bigImage, buildLayout, pushLayout } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

// Issue 12.7: a SIGKILLed command cannot clean up. Its temp names carry its pid and start time, so
// the next run recognises them as stale and removes them: beside the destination, in the cache
// and in TMPDIR.
const bin = join(import.meta.dirname, '..', '..', 'bin', 'lading');
const KILLS = 20;
let reg: TestRegistry;
let layout: BuiltLayout;
let work: string;

before(async () => {
  reg = await sharedRegistry('none');
  layout = await buildLayout(bigImage(4));
  await pushLayout(layout, reg, 'sigkill/app:1');
  work = await mkdtemp(join(tmpdir(), 'lading-sigkill-'));
});
after(async () => {
  await stopSharedRegistries();
  await rm(work, { recursive: true, force: true });
});

/** Every path under `dir` (relative), directories with a trailing slash. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      out.push(relative(dir, p) + (e.isDirectory() ? '/' : ''));
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out.sort();
}

const isTemp = (p: string): boolean => /lading-tmp-|\.tmp(\/|$)|\.lading-/.test(p);

/** A fingerprint of a tree: names, kinds and file contents. */
async function fingerprint(dir: string): Promise<string> {
  const h = createHash('sha256');
  for (const p of await tree(dir)) {
    h.update(`${p}\n`);
    if (!p.endsWith('/')) h.update(await readFile(join(dir, p)).catch(() => Buffer.from('?')));
  }
  return h.digest('hex');
}

/** Runs the real CLI; with `killAfterMs`, SIGKILLs it then. Resolves with its wall time. */
async function lading(args: string[], env: NodeJS.ProcessEnv, killAfterMs?: number): Promise<number> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  track(child);
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  clearTimeout(timer);
  untrack(child);
  if (killAfterMs === undefined) assert.equal(code, 0, stderr);
  return performance.now() - t0;
}

for (const kind of ['unpack (registry, through the cache)', 'copy to docker-archive'] as const) {
  test(`${KILLS} SIGKILLs at random points during ${kind}, then a rerun: correct result, no temp left`, async (t) => {
    const box = await mkdtemp(join(work, 'box-'));
    const tmp = join(box, 'tmp');
    const cache = join(box, 'cache');
    const dest = join(box, 'dest');
    await mkdir(tmp);
    await mkdir(dest);
    const env = { PATH: process.env.PATH, HOME: '/nonexistent', TMPDIR: tmp, LADING_CACHE_DIR: cache };
    const unpack = kind.startsWith('unpack');
    const args = (out: string) =>
      unpack
        ? ['unpack', '-q', `${reg.host}/sigkill/app:1`, out]
        : ['copy', '-q', `oci:${layout.dir}:latest`, `docker-archive:${out}:sigkill/app:1`];
    // The reference: one uninterrupted run (with a cold cache), and how long it takes.
    const refDir = join(box, 'ref');
    await mkdir(refDir);
    const full = await lading(args(join(refDir, 'out')), { ...env, LADING_CACHE_DIR: join(box, 'refcache') });
    const reference = await fingerprint(refDir);
    const delays: number[] = [];
    let leftovers = 0;
    for (let i = 0; i < KILLS; i++) {
      // Node's start-up takes a good part of a run: the kills fall in its later 3/4.
      const delay = Math.round((0.25 + 0.75 * Math.random()) * full);
      delays.push(delay);
      await lading(args(join(dest, 'out')), env, delay);
      leftovers = Math.max(
        leftovers,
        [...(await tree(dest)), ...(await tree(cache)), ...(await tree(tmp))].filter(isTemp).length,
      );
      // A killed unpack may have finished just before the signal: start each from nothing there.
      if (unpack) await rm(join(dest, 'out'), { recursive: true, force: true });
      else await rm(join(dest, 'out'), { force: true });
    }
    await lading(args(join(dest, 'out')), env);
    t.diagnostic(`at most ${leftovers} temp names were left between two runs`);
    const what = `killed after ${delays.join(', ')} ms of a ${Math.round(full)} ms run; at most ${leftovers} temp names were left between runs`;
    assert.equal(await fingerprint(dest), reference, `the result after the kills differs (${what})`);
    for (const [where, dir] of [
      ['beside the destination', dest],
      ['in the cache', cache],
      ['in TMPDIR', tmp],
    ] as const)
      assert.deepEqual((await tree(dir)).filter(isTemp), [], `temp names ${where} (${what})`);
    if (!unpack) {
      // The archive is one skopeo reads.
      const r = await run(requireBin('skopeo'), ['inspect', `docker-archive:${join(dest, 'out')}`]);
      assert.equal(r.code, 0);
    }
  });
}
