import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type BuiltLayout, buildLayout, smallImage } from '../helpers/images.ts';

// Data safety of the local writers (issue 13.1, 13.2): a destination that is not empty and not
// recognisably an image of the same kind, or a file where a directory belongs, is refused with
// every file left as it was; skopeo refuses the same cases.

let work: string;
let image: BuiltLayout;
const src = () => `oci:${image.dir}:${image.tag}`;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'lading-dest-'));
  image = await buildLayout(smallImage('dest-safety'));
});

async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { recursive: true })) {
    const p = join(dir, e);
    if ((await stat(p)).isFile()) out[e] = (await readFile(p)).toString('base64');
  }
  return out;
}

describe('dir: destinations', () => {
  test('a directory of user files with a file named version is refused and left alone', async () => {
    const proj = join(work, 'proj');
    await mkdir(proj);
    await writeFile(join(proj, 'version'), '1.2.3\n');
    await writeFile(join(proj, 'notes.txt'), 'precious');
    const before = await snapshot(proj);
    const r = await runCli(['copy', '-q', src(), `dir:${proj}`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /^lading: error: dir:.*proj: .*proj is not empty and is not a dir: image \(it holds "notes.txt"\); refusing/m,
    );
    assert.match(r.stderr, /remove it first/);
    assert.deepEqual(await snapshot(proj), before);
    // skopeo refuses it as well.
    const s = await run('skopeo', ['copy', '-q', src(), `dir:${proj}`], { allowFail: true });
    assert.notEqual(s.code, 0);
  });

  test('only a version file with other content is refused too', async () => {
    const proj = join(work, 'proj-version');
    await mkdir(proj);
    await writeFile(join(proj, 'version'), '1.2.3\n');
    const r = await runCli(['copy', '-q', src(), `dir:${proj}`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /has no dir: version file/);
    assert.equal(await readFile(join(proj, 'version'), 'utf8'), '1.2.3\n');
  });

  test('a regular file is refused, not replaced by a directory', async () => {
    const file = join(work, 'precious.txt');
    await writeFile(file, 'keep me');
    const r = await runCli(['copy', '-q', src(), `dir:${file}`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /precious\.txt is a regular file; refusing/);
    assert.equal(await readFile(file, 'utf8'), 'keep me');
  });

  test('an earlier dir: image (skopeo-written) is replaced', async () => {
    const d = join(work, 'skopeo-dir');
    await run('skopeo', ['copy', '-q', src(), `dir:${d}`]);
    const r = await runCli(['copy', '-q', src(), `dir:${d}`]);
    assert.equal(r.code, 0, r.stderr);
    const inspect = JSON.parse((await run('skopeo', ['inspect', `dir:${d}`])).stdout.toString());
    assert.equal(inspect.Digest, image.digest);
  });
});

describe('oci: destinations', () => {
  test('a non-layout directory is refused and left alone (a stray oci-layout name is not enough)', async () => {
    const d = join(work, 'not-layout');
    await mkdir(d);
    await writeFile(join(d, 'oci-layout'), 'my notes about OCI');
    await writeFile(join(d, 'index.json'), '{"mine":true}');
    const before = await snapshot(d);
    const r = await runCli(['copy', '-q', src(), `oci:${d}:1`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /is not empty and is not an OCI layout/);
    assert.deepEqual(await snapshot(d), before);
  });

  test('a regular file is refused with a message, not ENOTDIR', async () => {
    const f = join(work, 'afile');
    await writeFile(f, 'x');
    const r = await runCli(['copy', '-q', src(), `oci:${f}:1`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /afile is a regular file; refusing/);
    assert.equal(await readFile(f, 'utf8'), 'x');
  });
});

describe('archive destinations', () => {
  for (const t of ['oci-archive', 'docker-archive']) {
    test(`${t}: an existing file or directory is refused and left alone`, async () => {
      const f = join(work, `${t}-existing.tar`);
      await writeFile(f, 'not an archive');
      const r = await runCli(['copy', '-q', src(), `${t}:${f}`]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /is an existing file; refusing to overwrite it/);
      assert.equal(await readFile(f, 'utf8'), 'not an archive');
      const d = join(work, `${t}-dir`);
      await mkdir(d);
      const r2 = await runCli(['copy', '-q', src(), `${t}:${d}`]);
      assert.equal(r2.code, 1, r2.stderr);
      assert.match(r2.stderr, /is a directory; refusing/);
    });
  }

  test('oci-archive: a write leaves no staging directory in TMPDIR', async () => {
    const tmp = join(work, 'tmp');
    await mkdir(tmp);
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    try {
      const out = join(work, 'clean.tar');
      const r = await runCli(['copy', '-q', src(), `oci-archive:${out}:1`]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(existsSync(out));
      assert.deepEqual(await readdir(tmp), []);
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
  });
});

describe('unpack destinations', () => {
  test('a regular file is refused by name and left alone', async () => {
    const f = join(work, 'unpack-file');
    await writeFile(f, 'keep');
    const r = await runCli(['unpack', '-q', src(), f]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /unpack-file is a regular file: unpack writes into a new or empty directory/);
    assert.equal(await readFile(f, 'utf8'), 'keep');
  });
});
