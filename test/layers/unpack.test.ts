import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import type { Digest } from '../../src/digest/index.ts';
import { type LayerBlob, unpackRootfs } from '../../src/layers/index.ts';
import { run } from '../helpers/bins.ts';
import {
  buildLayout,
  type EntrySpec,
  type ImageSpec,
  layerTar,
  opaqueWhiteout,
  whiteout,
} from '../helpers/images.ts';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;

async function blob(
  entries: EntrySpec[],
  compression: 'gzip' | 'zstd' | 'none' = 'gzip',
): Promise<LayerBlob> {
  const raw = await layerTar(entries);
  const data = compression === 'gzip' ? gzipSync(raw) : compression === 'zstd' ? zstdCompressSync(raw) : raw;
  return { digest: sha(data), size: data.length, open: async () => Readable.from([data]) };
}

/** A destination inside a sandbox that also holds a canary directory outside it. */
async function sandbox(): Promise<{ dest: string; canary: string }> {
  const root = await mkdtemp(join(tmpdir(), 'lading-unpack-'));
  const canary = join(root, 'canary');
  await mkdir(canary);
  await writeFile(join(canary, 'keep'), 'keep');
  return { dest: join(root, 'rootfs'), canary };
}

async function assertCanaryIntact(canary: string): Promise<void> {
  assert.deepEqual(await readdir(canary), ['keep']);
  assert.equal(await readFile(join(canary, 'keep'), 'utf8'), 'keep');
}

async function hostile(
  entries: EntrySpec[][],
  refused: RegExp,
): Promise<{ dest: string; problems: string[] }> {
  const { dest, canary } = await sandbox();
  const layers = await Promise.all(entries.map((e) => blob(e)));
  const r = await unpackRootfs(layers, dest);
  await assertCanaryIntact(canary);
  const problems = r.problems.map((p) => `${p.entry}: ${p.message}`);
  assert.ok(
    problems.some((p) => refused.test(p)),
    `expected a refusal matching ${refused}, got ${JSON.stringify(problems)}`,
  );
  return { dest, problems };
}

describe('hostile layers: nothing is written outside the destination, every refusal is named', () => {
  test('../ names', async () => {
    await hostile(
      [
        [
          { path: '../canary/evil', content: 'x' },
          { path: 'a/../../canary/evil2', content: 'x' },
        ],
      ],
      /\.\.\/canary\/evil/,
    );
  });

  test('absolute names stay inside the root', async () => {
    const { dest, canary } = await sandbox();
    await unpackRootfs(
      [
        await blob([
          { path: '/etc/passwd', content: 'root' },
          { path: `/${canary}/x`, content: 'x' },
        ]),
      ],
      dest,
    );
    assert.equal(await readFile(join(dest, 'etc', 'passwd'), 'utf8'), 'root');
    await assertCanaryIntact(canary);
  });

  test('a symlink, then a write through it', async () => {
    const { dest, canary } = await sandbox();
    const r = await unpackRootfs(
      [
        await blob([
          { path: 'link', type: 'symlink', linkname: canary },
          { path: 'link/evil', content: 'x' },
        ]),
      ],
      dest,
    );
    await assertCanaryIntact(canary);
    assert.ok(r.problems.some((p) => p.entry === 'link/evil'));
    assert.equal(await readlink(join(dest, 'link')), canary, 'the symlink itself is kept verbatim');
  });

  test('symlink chains leading out, across layers', async () => {
    const { dest, canary } = await sandbox();
    const r = await unpackRootfs(
      [
        await blob([
          { path: 'a', type: 'symlink', linkname: 'b' },
          { path: 'b', type: 'symlink', linkname: '../canary' },
        ]),
        await blob([{ path: 'a/evil', content: 'x' }]),
      ],
      dest,
    );
    await assertCanaryIntact(canary);
    assert.ok(r.problems.some((p) => p.entry === 'a/evil'));
  });

  test('a hardlink to outside', async () => {
    await hostile([[{ path: 'h', type: 'link', linkname: '../canary/keep' }]], /^h: hardlink/);
    await hostile([[{ path: 'h2', type: 'link', linkname: '/etc/passwd' }]], /^h2: hardlink/);
  });

  test('a hardlink through a symlink', async () => {
    const { dest, canary } = await sandbox();
    const r = await unpackRootfs(
      [
        await blob([
          { path: 'dir', type: 'symlink', linkname: canary },
          { path: 'h', type: 'link', linkname: 'dir/keep' },
        ]),
      ],
      dest,
    );
    await assertCanaryIntact(canary);
    assert.ok(r.problems.some((p) => p.entry === 'h'));
    assert.equal(existsSync(join(dest, 'h')), false);
  });

  test('. replaced by a symlink', async () => {
    await hostile(
      [
        [
          { path: '.', type: 'symlink', linkname: '../canary' },
          { path: 'x', content: 'x' },
        ],
      ],
      /would replace the root/,
    );
  });

  test('/ replaced by a symlink (umoci CVE-2021-29136)', async () => {
    const { dest } = await hostile(
      [[{ path: '/', type: 'symlink', linkname: '/tmp' }], [{ path: 'etc/x', content: 'x' }]],
      /would replace the root/,
    );
    assert.ok((await lstat(dest)).isDirectory());
    assert.equal(await readFile(join(dest, 'etc', 'x'), 'utf8'), 'x');
  });

  test('a whiteout of ..', async () => {
    await hostile(
      [
        [{ path: 'd/', type: 'directory' }],
        [
          { path: 'd/.wh...', content: '' },
          { path: '.wh...', content: '' },
        ],
      ],
      /\.wh\.\.\./,
    );
  });

  test('entries after an opaque marker that try to escape', async () => {
    await hostile(
      [
        [
          { path: 'd/.wh..wh..opq', content: '' },
          { path: 'd/../../canary/evil', content: 'x' },
        ],
      ],
      /canary\/evil/,
    );
  });

  test('very long names (PAX) are written, not truncated', async () => {
    const { dest } = await sandbox();
    const long = `${'a'.repeat(120)}/${'b'.repeat(120)}/${'c'.repeat(200)}.txt`;
    await unpackRootfs([await blob([{ path: long, content: 'long' }])], dest);
    assert.equal(await readFile(join(dest, long), 'utf8'), 'long');
  });

  test('duplicate entries in one layer: the last one wins, no error', async () => {
    const { dest } = await sandbox();
    await unpackRootfs(
      [
        await blob([
          { path: 'f', content: 'one' },
          { path: 'f', content: 'two' },
          { path: 'f', type: 'symlink', linkname: 'target' },
        ]),
      ],
      dest,
    );
    assert.equal(await readlink(join(dest, 'f')), 'target');
  });

  test('device nodes as root: created with their numbers', async () => {
    assert.equal(process.getuid?.(), 0, 'this test runs as root (the non-root case is in test/cli)');
    const { dest } = await sandbox();
    const r = await unpackRootfs(
      [await blob([{ path: 'dev/null', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 }])],
      dest,
    );
    assert.deepEqual(r.problems, []);
    const st = await lstat(join(dest, 'dev', 'null'));
    assert.ok(st.isCharacterDevice());
    assert.equal(st.rdev, (1 << 8) | 3);
  });

  test('directory metadata is never applied through a symlink that replaced a parent', async () => {
    const { dest, canary } = await sandbox();
    await mkdir(join(canary, 'sub'));
    await utimes(join(canary, 'sub'), 1_000_000, 1_000_000);
    const before = await lstat(join(canary, 'sub'));
    const r = await unpackRootfs(
      [
        await blob([
          { path: 'a/', type: 'directory' },
          { path: 'a/sub/', type: 'directory', mode: 0o777, uid: 4321, gid: 4321 },
          { path: 'b/', type: 'directory' },
          { path: 'b/sub/', type: 'directory', mode: 0o700, uid: 4321, gid: 4321 },
          // Same layer: b becomes a symlink after its child directory's entry.
          { path: 'b', type: 'symlink', linkname: canary },
        ]),
        await blob([
          { path: '.wh.a', content: '' },
          { path: 'a', type: 'symlink', linkname: canary },
        ]),
      ],
      dest,
    );
    const after = await lstat(join(canary, 'sub'));
    assert.deepEqual(
      [after.mode, after.uid, after.gid, after.mtimeMs],
      [before.mode, before.uid, before.gid, before.mtimeMs],
    );
    assert.deepEqual(r.problems, []);
    assert.equal(await readlink(join(dest, 'a')), canary);
    assert.equal(await readlink(join(dest, 'b')), canary);
    await rm(join(canary, 'sub'), { recursive: true });
    await assertCanaryIntact(canary);
  });

  test('a whiteout or opaque marker through a symlink deletes nothing outside', async () => {
    const { dest, canary } = await sandbox();
    const r = await unpackRootfs(
      [
        await blob([{ path: 'link', type: 'symlink', linkname: canary }]),
        await blob([
          { path: 'link/.wh.keep', content: '' },
          { path: 'link/.wh..wh..opq', content: '' },
        ]),
      ],
      dest,
    );
    await assertCanaryIntact(canary);
    assert.deepEqual(
      r.problems.map((p) => [p.entry, p.code]),
      [
        ['link/.wh.keep', 'E_UNSAFE_PATH'],
        ['link/.wh..wh..opq', 'E_UNSAFE_PATH'],
      ],
    );
  });

  test('a whiteout of the symlink itself removes the link, not what it points at', async () => {
    const { dest, canary } = await sandbox();
    await unpackRootfs(
      [
        await blob([
          { path: 'link', type: 'symlink', linkname: canary },
          { path: 'filelink', type: 'symlink', linkname: join(canary, 'keep') },
        ]),
        await blob([whiteout('link'), whiteout('filelink')]),
      ],
      dest,
    );
    await assertCanaryIntact(canary);
    assert.deepEqual(await readdir(dest), []);
  });

  test('duplicate entries: a directory replaced by a symlink to outside, then written through', async () => {
    const { dest, canary } = await sandbox();
    const r = await unpackRootfs(
      [
        await blob([
          { path: 'd/', type: 'directory' },
          { path: 'd/ok', content: 'inside' },
          { path: 'd', type: 'symlink', linkname: canary },
          { path: 'd/keep', content: 'overwritten?' },
          { path: 'd/new', content: 'x' },
        ]),
      ],
      dest,
    );
    await assertCanaryIntact(canary);
    assert.deepEqual(
      r.problems.map((p) => p.entry),
      ['d/keep', 'd/new'],
    );
  });

  test('a relative symlink climbing out, then a write through it', async () => {
    const { dest, canary } = await sandbox();
    const r = await unpackRootfs(
      [
        await blob([
          { path: 'x/', type: 'directory' },
          { path: 'x/up', type: 'symlink', linkname: '../../canary' },
          { path: 'x/up/keep', content: 'overwritten?' },
        ]),
      ],
      dest,
    );
    await assertCanaryIntact(canary);
    assert.deepEqual(
      r.problems.map((p) => p.entry),
      ['x/up/keep'],
    );
    assert.equal(await readlink(join(dest, 'x', 'up')), '../../canary', 'kept verbatim');
  });

  test('a hardlink to an entry deleted or replaced since: refused by name, nothing else changes', async () => {
    const { dest, canary } = await sandbox();
    const r = await unpackRootfs(
      [
        await blob([
          { path: 'a/', type: 'directory' },
          { path: 'a/f', content: 'f' },
          { path: 'gone', content: 'g' },
          { path: 'cleared/', type: 'directory' },
          { path: 'cleared/c', content: 'c' },
          { path: 'tosym', content: 's' },
        ]),
        await blob([
          { path: 'a', content: 'now a file' },
          whiteout('gone'),
          opaqueWhiteout('cleared'),
          { path: 'tosym', type: 'symlink', linkname: join(canary, 'keep') },
          { path: 'h1', type: 'link', linkname: 'a/f' },
          { path: 'h2', type: 'link', linkname: 'gone' },
          { path: 'h3', type: 'link', linkname: 'cleared/c' },
          { path: 'h4', type: 'link', linkname: 'tosym' },
        ]),
      ],
      dest,
    );
    await assertCanaryIntact(canary);
    assert.deepEqual(
      r.problems.map((p) => [p.entry, p.code]),
      [
        ['h1', 'E_UNSAFE_PATH'],
        ['h2', 'E_UNSAFE_PATH'],
        ['h3', 'E_UNSAFE_PATH'],
        ['h4', 'E_UNSAFE_PATH'],
      ],
    );
    assert.equal(await readFile(join(dest, 'a'), 'utf8'), 'now a file', 'the file a is not replaced');
    assert.deepEqual((await readdir(dest)).sort(), ['a', 'cleared', 'tosym']);
  });

  test('very long names: a component or a path longer than the filesystem takes is refused by name', async () => {
    const { dest, canary } = await sandbox();
    const component = 'x'.repeat(256);
    const deep = `${'d/'.repeat(2100)}f`;
    const r = await unpackRootfs(
      [
        await blob([
          { path: component, content: 'a' },
          { path: deep, content: 'b' },
          { path: 'after', content: 'still unpacked' },
        ]),
      ],
      dest,
    );
    await assertCanaryIntact(canary);
    assert.deepEqual(
      r.problems.map((p) => [p.entry, p.code]),
      [
        [component, 'E_UNSAFE_PATH'],
        [deep, 'E_UNSAFE_PATH'],
      ],
    );
    assert.match(r.problems[0]!.message, /name too long/);
    assert.equal(await readFile(join(dest, 'after'), 'utf8'), 'still unpacked');
  });
});

describe('real-world link patterns survive unchanged', () => {
  test('/lib64 -> /usr/lib64, ../lib/… links, absolute links into the image, amazoncorretto-style cacerts', async () => {
    const { dest } = await sandbox();
    const links: [string, string][] = [
      ['lib64', '/usr/lib64'],
      ['usr/lib/x86_64-linux-gnu/libc.so', '../../../lib/x86_64-linux-gnu/libc.so.6'],
      ['etc/alternatives/java', '/usr/lib/jvm/java-17/bin/java'],
      ['usr/lib/jvm/java-17/lib/security/cacerts', '../../../../../../etc/pki/java/cacerts'],
    ];
    await unpackRootfs(
      [await blob(links.map(([path, linkname]) => ({ path, type: 'symlink' as const, linkname })))],
      dest,
    );
    for (const [path, target] of links) assert.equal(await readlink(join(dest, path)), target);
  });
});

/** name → type, mode, content hash / link target, owner, inode group */
async function snapshot(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const inodes = new Map<number, string>();
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(p);
      let desc = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isSymbolicLink()) desc = `link -> ${await readlink(p)} ${st.uid}:${st.gid}`;
      else if (st.isDirectory()) {
        desc = `dir ${desc}`;
        await walk(p, r);
      } else if (st.isFile()) {
        desc = `file ${desc} ${sha(await readFile(p))}`;
        if (st.nlink > 1) {
          const first = inodes.get(st.ino);
          if (first) desc += ` =${first}`;
          else inodes.set(st.ino, r);
        }
      } else desc = `special ${desc}`;
      out[r] = desc;
    }
  };
  await walk(root, '');
  return out;
}

describe('the same tree as umoci unpack', () => {
  test('whiteouts, opaque dirs, dir↔file↔symlink replacements, hardlinks, long/UTF-8 names, owners, setuid, empty files', async () => {
    const spec: ImageSpec = {
      layers: [
        {
          entries: [
            { path: 'etc/', type: 'directory' },
            { path: 'etc/passwd', content: 'root:x:0:0\n' },
            { path: 'etc/gone', content: 'bye' },
            { path: 'opaque/', type: 'directory' },
            { path: 'opaque/old', content: 'hidden later' },
            { path: 'opaque/sub/', type: 'directory' },
            { path: 'opaque/sub/deep', content: 'deep' },
            { path: 'wasdir/', type: 'directory' },
            { path: 'wasdir/child', content: 'c' },
            { path: 'wasfile', content: 'file' },
            { path: 'recreated/', type: 'directory' },
            { path: 'recreated/old', content: 'old' },
            { path: 'bin/', type: 'directory' },
            { path: 'bin/tool', content: 'tool', mode: 0o755 },
            { path: 'bin/suid', content: 'suid', mode: 0o4755 },
            { path: 'home/', type: 'directory' },
            { path: 'home/user/', type: 'directory', uid: 1000, gid: 1000, mode: 0o750 },
            { path: 'home/user/file', content: 'mine', uid: 1000, gid: 1000 },
            { path: 'empty-file', content: '' },
            { path: 'empty-dir/', type: 'directory' },
            { path: 'tmp/', type: 'directory', mode: 0o1777 },
          ],
        },
        {
          // umoci 0.4.7 reads gzip and plain layers only (zstd detection is tested on its own).
          entries: [
            { path: 'etc/.wh.gone', content: '' },
            { path: 'opaque/', type: 'directory' },
            { path: 'opaque/new', content: 'visible' },
            { path: 'opaque/.wh..wh..opq', content: '' },
            { path: '.wh.wasdir', content: '' },
            { path: 'wasdir', content: 'now a file' },
            { path: 'wasfile', type: 'symlink', linkname: 'etc/passwd' },
            { path: '.wh.recreated', content: '' },
            { path: 'recreated/', type: 'directory' },
            { path: 'recreated/new', content: 'new' },
            { path: 'bin/tool-link', type: 'link', linkname: 'bin/tool' },
            { path: 'ünïcode/ファイル.txt', content: 'utf8' },
            { path: `${'long-dir-name/'.repeat(10)}${'f'.repeat(150)}`, content: 'long' },
          ],
        },
        {
          compression: 'none',
          entries: [
            { path: 'bin/tool', content: 'tool v2', mode: 0o755 },
            { path: 'bin/hard-to-new', type: 'link', linkname: 'bin/tool' },
            { path: 'wasfile', content: 'a file again' },
          ],
        },
      ],
    };
    const layout = await buildLayout(spec);
    const bundle = join(await mkdtemp(join(tmpdir(), 'lading-umoci-')), 'bundle');
    await run('umoci', ['unpack', '--image', `${layout.dir}:latest`, bundle]);
    const ours = join(await mkdtemp(join(tmpdir(), 'lading-ours-')), 'rootfs');
    const layers: LayerBlob[] = layout.images[0]!.layers.map((l) => ({
      digest: l.digest as Digest,
      size: l.size,
      open: async () =>
        Readable.from([await readFile(join(layout.dir, 'blobs', 'sha256', l.digest.slice(7)))]),
    }));
    const r = await unpackRootfs(layers, ours);
    assert.deepEqual(r.problems, []);
    const a = await snapshot(ours);
    const b = await snapshot(join(bundle, 'rootfs'));
    assert.deepEqual(a, b);
    // Spot checks that the comparison covers what it should.
    assert.equal(a['opaque/old'], undefined);
    assert.ok(a['opaque/new']);
    assert.equal(a['etc/gone'], undefined);
    assert.match(a['bin/suid']!, /^file 4755/);
    assert.match(a['home/user/file']!, / 1000:1000 /);
    assert.match(a.wasdir!, /^file/);
    assert.equal(a['recreated/old'], undefined);
  });
});

describe('compression is detected from the bytes', () => {
  test('gzip, zstd and plain layers unpack the same, whatever the media type says', async () => {
    const entries: EntrySpec[] = [{ path: 'a/b', content: 'same' }];
    const trees: Record<string, string>[] = [];
    for (const c of ['gzip', 'zstd', 'none'] as const) {
      const { dest } = await sandbox();
      const layer = await blob(entries, c);
      await unpackRootfs([{ ...layer, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }], dest);
      trees.push(await snapshot(dest));
    }
    assert.deepEqual(trees[1], trees[0]);
    assert.deepEqual(trees[2], trees[0]);
  });
});

describe('extended attributes', () => {
  test('PAX SCHILY.xattr records become xattrs (user namespace)', async () => {
    const { dest } = await sandbox();
    const pack = (await import('tar-stream')).default.pack();
    const chunks: Buffer[] = [];
    pack.on('data', (c: unknown) => chunks.push(c as Buffer));
    const ended = new Promise<void>((r) => pack.on('end', () => r()));
    pack.entry({ name: 'x', size: 1, pax: { 'SCHILY.xattr.user.lading': 'hello' } }, 'x');
    pack.finalize();
    await ended;
    const data = gzipSync(Buffer.concat(chunks));
    const r = await unpackRootfs([{ digest: sha(data), open: async () => Readable.from([data]) }], dest);
    assert.deepEqual(r.problems, []);
    const out = (
      await run('getfattr', ['-n', 'user.lading', '--only-values', join(dest, 'x')])
    ).stdout.toString();
    assert.equal(out, 'hello');
  });
});
