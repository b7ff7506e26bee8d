import assert from 'node:assert/strict';
import { mkdir, mkdtemp, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type BuiltLayout, buildLayout } from '../helpers/images.ts';

// Issue 13.7: export keeps mtimes outside 1970..2038-01-19 (PAX mtime records, as Go's archive/tar
// writes them) and writes directories so that GNU tar's extraction keeps their mtimes. The layers
// are made by GNU tar; GNU tar and Python's tarfile read the export.

const TIMES: Record<string, number> = {
  'old/1960': -315_619_200,
  'old/1969-last-second': -1,
  'old/epoch': 0,
  'new/2038-after-int32': 2_147_483_648,
  'new/2106-after-uint32': 4_294_967_296,
  'new/2300': 10_413_792_000,
  'shared/from-lower': 1_000_000_000,
};
const DIRS: Record<string, number> = { old: -86_400 * 365 * 5, new: 7_258_118_400, shared: 1_600_000_000 };

let work: string;
let image: BuiltLayout;

/** Sets a file's mtime (Node's utimes turns times before 1970 into now: GNU touch does not). */
async function touch(path: string, t: number): Promise<void> {
  await run('touch', ['-m', '-h', '-d', `@${t}`, path]);
}

/** A layer tar made by GNU tar (POSIX format: PAX times) from a tree with these mtimes. */
async function gnuLayer(
  name: string,
  files: Record<string, number>,
  dirs: Record<string, number>,
): Promise<Buffer> {
  const root = join(work, name);
  for (const [p, t] of Object.entries(files)) {
    await mkdir(join(root, p, '..'), { recursive: true });
    await writeFile(join(root, p), p);
    await touch(join(root, p), t);
  }
  for (const [p, t] of Object.entries(dirs)) {
    await mkdir(join(root, p), { recursive: true });
    await touch(join(root, p), t);
  }
  const names = [...Object.keys(dirs), ...Object.keys(files)];
  return (
    await run('tar', [
      '--format=posix',
      '--no-recursion',
      '--numeric-owner',
      '-C',
      root,
      '-cf',
      '-',
      ...names,
    ])
  ).stdout;
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'lading-export-mtimes-'));
  const lower = Object.fromEntries(Object.entries(TIMES));
  // The upper layer holds the `shared` directory entry; its child comes from the lower layer,
  // after it in the export.
  const upper = await gnuLayer('upper', { 'shared/upper-file': 1_500_000_000 }, { shared: DIRS.shared! });
  image = await buildLayout({
    layers: [
      { entries: [], tar: await gnuLayer('lower', lower, { old: DIRS.old!, new: DIRS.new!, shared: 1 }) },
      { entries: [], tar: upper },
    ],
  });
});

test('GNU tar extracts every entry of an export with its mtime, directories included (1960..2300)', async () => {
  const out = join(work, 'fs.tar');
  const r = await runCli(['export', '-q', `oci:${image.dir}:${image.tag}`, '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  const dest = join(work, 'x');
  await mkdir(dest);
  await run('tar', ['-xf', out, '-C', dest]);
  const want = { ...TIMES, 'shared/upper-file': 1_500_000_000, ...DIRS };
  for (const [p, t] of Object.entries(want)) {
    const st = await stat(join(dest, p));
    assert.equal(Math.floor(st.mtimeMs / 1000), t, p);
  }
});

test("Python's tarfile reads every entry with its mtime", async () => {
  const out = join(work, 'fs-py.tar');
  const r = await runCli(['export', '-q', `oci:${image.dir}:${image.tag}`, '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  const py = await run('python3', [
    '-c',
    'import json,sys,tarfile\nwith tarfile.open(sys.argv[1]) as t: print(json.dumps({m.name.rstrip("/"): int(m.mtime // 1) for m in t.getmembers()}))',
    out,
  ]);
  const got = JSON.parse(py.stdout.toString()) as Record<string, number>;
  const want = { ...TIMES, 'shared/upper-file': 1_500_000_000, ...DIRS };
  assert.deepEqual(Object.fromEntries(Object.keys(want).map((k) => [k, got[k]])), want);
  assert.equal(Object.keys(got).length, Object.keys(want).length);
});
