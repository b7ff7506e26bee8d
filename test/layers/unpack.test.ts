import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  chown,
  lchown,
  link,
  lstat,
  lutimes,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import type { Digest } from '../../src/digest/index.ts';
import { type LayerBlob, unpackRootfs } from '../../src/layers/index.ts';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
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
    assert.equal(
      await readFile(join(dest, canary, 'x'), 'utf8'),
      'x',
      'under the root, not at the host path',
    );
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
    const { dest } = await hostile(
      [
        [
          { path: '.', type: 'symlink', linkname: '../canary' },
          { path: 'x', content: 'x' },
        ],
      ],
      /would replace the root/,
    );
    assert.ok((await lstat(dest)).isDirectory());
    assert.equal(await readFile(join(dest, 'x'), 'utf8'), 'x');
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
    const { dest } = await hostile(
      [
        [{ path: 'd/', type: 'directory' }],
        [
          { path: 'd/.wh...', content: '' },
          { path: '.wh...', content: '' },
        ],
      ],
      /\.wh\.\.\./,
    );
    assert.deepEqual(await readdir(dest), ['d'], 'neither d nor the root was deleted');
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

/**
 * name → type, mode, owner, mtime (ms), content hash / link target / device numbers, hardlink group
 * (the first name of the inode in walk order), extended attributes.
 */
async function snapshot(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const inodes = new Map<bigint, string>();
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(p, { bigint: true });
      const meta = `${(st.mode & 0o7777n).toString(8)} ${st.uid}:${st.gid} @${(st.mtimeNs + 500_000n) / 1_000_000n}`;
      let desc: string;
      if (st.isSymbolicLink())
        desc = `link -> ${await readlink(p)} ${st.uid}:${st.gid} @${(st.mtimeNs + 500_000n) / 1_000_000n}`;
      else if (st.isDirectory()) {
        desc = `dir ${meta}`;
        await walk(p, r);
      } else if (st.isFile()) {
        desc = `file ${meta} ${sha(await readFile(p))}`;
        if (st.nlink > 1n) {
          const first = inodes.get(st.ino);
          if (first) desc += ` =${first}`;
          else inodes.set(st.ino, r);
        }
      } else if (st.isCharacterDevice()) desc = `chardev ${meta} ${st.rdev}`;
      else if (st.isFIFO()) desc = `fifo ${meta}`;
      else desc = `special ${meta}`;
      out[r] = desc;
    }
  };
  await walk(root, '');
  // Extended attributes, all namespaces, without following symlinks.
  const dump = (
    await run('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root])
  ).stdout.toString();
  for (const block of dump.split('\n\n')) {
    const [head, ...attrs] = block.trim().split('\n');
    if (!head?.startsWith('# file: ')) continue;
    const file = head.slice('# file: '.length);
    const r = file === root ? '' : file.slice(root.length + 1);
    if (r !== '') out[r] = `${out[r]} xattrs ${attrs.sort().join(',')}`;
  }
  return out;
}

/** A layer tar made by GNU tar from a directory `fill` populates (owners and mtimes as set there). */
async function gnuTar(format: 'gnu' | 'pax', fill: (dir: string) => Promise<void>): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), `lading-gnutar-${format}-`));
  await fill(dir);
  return (await run('tar', [`--format=${format}`, '--numeric-owner', '--xattrs', '-cf', '-', '-C', dir, '.']))
    .stdout;
}

const LONG_DIR = `${'long-dir-name/'.repeat(10)}`;
const UTF8_LONG = `${'ünïcødé-ファイル-'.repeat(6)}.txt`;

describe('the same tree as umoci unpack', () => {
  test('whiteouts, opaque dirs, replacements, hardlinks, symlinks, GNU and PAX long/UTF-8 names, owners, setuid/setgid/sticky, empty files and dirs, devices, mtimes, xattrs', async () => {
    const t = (n: number) => 1_600_000_000 + n;
    const gnu = await gnuTar('gnu', async (d) => {
      // Names, link targets and hardlink targets over 100 bytes: GNU LongLink/LongName records.
      await mkdir(join(d, 'gnu', LONG_DIR), { recursive: true });
      const long = join(d, 'gnu', LONG_DIR, `${'g'.repeat(150)}.bin`);
      await writeFile(long, 'gnu long');
      await symlink(`${LONG_DIR}${'g'.repeat(150)}.bin`, join(d, 'gnu', 'long-symlink'));
      await link(long, join(d, 'gnu', 'hard-to-long'));
      await writeFile(join(d, 'gnu', UTF8_LONG), 'utf8 in a GNU long name');
      await writeFile(join(d, 'gnu', 'owned'), 'uid 1000');
      await chown(join(d, 'gnu', 'owned'), 1000, 1000);
      await lchown(join(d, 'gnu', 'long-symlink'), 1000, 1000);
      for (const p of ['owned', UTF8_LONG, `${LONG_DIR}${'g'.repeat(150)}.bin`])
        await utimes(join(d, 'gnu', p), t(10), t(10));
      await lutimes(join(d, 'gnu', 'long-symlink'), t(11), t(11));
      for (const p of [LONG_DIR.slice(0, -1), 'long-dir-name', 'gnu'])
        await utimes(join(d, p.startsWith('gnu') ? '' : 'gnu', p), t(12), t(12));
      await utimes(d, t(13), t(13));
    });
    const pax = await gnuTar('pax', async (d) => {
      // PAX records: path, linkpath, sub-second mtimes, an owner too large for the octal field.
      await mkdir(join(d, 'pax'));
      await writeFile(join(d, 'pax', UTF8_LONG), 'utf8 in a PAX path');
      await symlink(`../gnu/${UTF8_LONG}`, join(d, 'pax', `${'s'.repeat(120)}-link`));
      await writeFile(join(d, 'pax', 'big-uid'), 'uid 3000000');
      await chown(join(d, 'pax', 'big-uid'), 3_000_000, 3_000_001);
      await writeFile(join(d, 'pax', 'fraction'), 'sub-second mtime');
      await utimes(join(d, 'pax', 'fraction'), t(20) + 0.25, t(20) + 0.25);
      await utimes(join(d, 'pax', UTF8_LONG), t(21), t(21));
      await utimes(join(d, 'pax', 'big-uid'), t(22), t(22));
      await lutimes(join(d, 'pax', `${'s'.repeat(120)}-link`), t(23), t(23));
      await run('setfattr', ['-n', 'user.origin', '-v', 'gnu-tar', join(d, 'pax', 'fraction')]);
      await run('setfattr', ['-n', 'user.binary', '-v', '0xff00fe80c3', join(d, 'pax', 'fraction')]);
      await utimes(join(d, 'pax'), t(24), t(24));
      await utimes(d, t(25), t(25));
    });
    const spec: ImageSpec = {
      layers: [
        {
          entries: [
            { path: 'etc/', type: 'directory', mtime: t(1) },
            { path: 'etc/passwd', content: 'root:x:0:0\n', mtime: t(2) },
            { path: 'etc/gone', content: 'bye' },
            { path: 'opaque/', type: 'directory' },
            { path: 'opaque/old', content: 'hidden later' },
            { path: 'opaque/sub/', type: 'directory' },
            { path: 'opaque/sub/deep', content: 'deep' },
            { path: 'opaque-first/', type: 'directory' },
            { path: 'opaque-first/old', content: 'hidden by a marker that comes first' },
            { path: 'wasdir/', type: 'directory' },
            { path: 'wasdir/child', content: 'c' },
            { path: 'wasfile', content: 'file' },
            { path: 'file-then-dir', content: 'replaced by a directory without a whiteout' },
            { path: 'sym-then-dir', type: 'symlink', linkname: 'etc' },
            { path: 'dir-then-sym/', type: 'directory' },
            { path: 'dir-then-sym/x', content: 'gone with its directory' },
            { path: 'recreated/', type: 'directory', mode: 0o700 },
            { path: 'recreated/old', content: 'old' },
            { path: 'bin/', type: 'directory', mtime: t(3) },
            { path: 'bin/tool', content: 'tool', mode: 0o755, mtime: t(4) },
            { path: 'bin/suid', content: 'suid', mode: 0o4755 },
            { path: 'bin/sgid', content: 'sgid', mode: 0o2711 },
            { path: 'shared/', type: 'directory', mode: 0o2775, gid: 1000 },
            { path: 'home/', type: 'directory' },
            { path: 'home/user/', type: 'directory', uid: 1000, gid: 1000, mode: 0o750, mtime: t(5) },
            { path: 'home/user/file', content: 'mine', uid: 1000, gid: 1000, mode: 0o600 },
            { path: 'home/user/link', type: 'symlink', linkname: 'file', uid: 1000, gid: 1000, mtime: t(6) },
            { path: 'empty-file', content: '' },
            { path: 'empty-dir/', type: 'directory', mtime: t(7) },
            { path: 'tmp/', type: 'directory', mode: 0o1777 },
            { path: 'usr/', type: 'directory' },
            { path: 'usr/lib64/', type: 'directory' },
            { path: 'usr/lib64/ld.so', content: 'loader', mode: 0o755 },
            { path: 'lib64', type: 'symlink', linkname: '/usr/lib64' },
            { path: 'usr/bin/', type: 'directory' },
            { path: 'usr/bin/ld', type: 'symlink', linkname: '../lib64/ld.so' },
            { path: 'dangling', type: 'symlink', linkname: '/nonexistent/target' },
            { path: 'dev/', type: 'directory' },
            { path: 'dev/null', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 },
            { path: 'dev/fifo', type: 'fifo', mode: 0o600 },
            { path: 'xattr', content: 'x', pax: { 'SCHILY.xattr.user.lading': 'hello' } },
          ],
        },
        {
          // umoci 0.4.7 reads gzip and plain layers only (zstd detection is tested on its own).
          entries: [
            { path: 'etc/.wh.gone', content: '' },
            { path: 'opaque/', type: 'directory' },
            { path: 'opaque/new', content: 'visible' },
            { path: 'opaque/.wh..wh..opq', content: '' },
            { path: 'opaque-first/.wh..wh..opq', content: '' },
            { path: 'opaque-first/new', content: 'after the marker' },
            { path: '.wh.wasdir', content: '' },
            { path: 'wasdir', content: 'now a file' },
            { path: 'wasfile', type: 'symlink', linkname: 'etc/passwd' },
            { path: 'file-then-dir/', type: 'directory' },
            { path: 'file-then-dir/child', content: 'child' },
            { path: 'sym-then-dir/', type: 'directory' },
            { path: 'sym-then-dir/child', content: 'not in etc' },
            { path: 'dir-then-sym', type: 'symlink', linkname: '/etc' },
            { path: '.wh.recreated', content: '' },
            { path: 'recreated/', type: 'directory' },
            { path: 'recreated/new', content: 'new' },
            { path: 'bin/tool-link', type: 'link', linkname: 'bin/tool' },
            // Directories with entries of their own: implied ones get the time of the unpack.
            { path: 'ünïcode/', type: 'directory', mtime: t(8) },
            { path: 'ünïcode/ファイル.txt', content: 'utf8' },
            ...LONG_DIR.split('/')
              .slice(0, -1)
              .map((_, i, parts) => ({
                path: `${parts.slice(0, i + 1).join('/')}/`,
                type: 'directory' as const,
              })),
            { path: `${LONG_DIR}${'f'.repeat(150)}`, content: 'long' },
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
        { entries: [], tar: gnu },
        { entries: [], tar: pax, compression: 'none' },
      ],
    };
    const layout = await buildLayout(spec);
    const bundle = join(await mkdtemp(join(tmpdir(), 'lading-umoci-')), 'bundle');
    await run('umoci', ['unpack', '--image', `${layout.dir}:latest`, bundle]);
    const ours = join(await mkdtemp(join(tmpdir(), 'lading-ours-')), 'rootfs');
    const r = await runCli(['unpack', '--json', `oci:${layout.dir}:latest`, ours]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.toString()).problems, []);
    const a = await snapshot(ours);
    const b = await snapshot(join(bundle, 'rootfs'));
    assert.deepEqual(a, b);
    // lading export of the same image, extracted by GNU tar, is the same tree too.
    const work = await mkdtemp(join(tmpdir(), 'lading-export-umoci-'));
    const e = await runCli(['export', `oci:${layout.dir}:latest`, '-o', join(work, 'rootfs.tar')]);
    assert.equal(e.code, 0, e.stderr);
    await mkdir(join(work, 'x'));
    // Entries come layer by layer (a directory's entry may come before entries of it from lower
    // layers): GNU tar must set directory times at the end, not when the archive leaves them.
    await run('tar', [
      '--delay-directory-restore',
      '--xattrs',
      '--xattrs-include=*',
      '--numeric-owner',
      '--same-owner',
      '-xpf',
      join(work, 'rootfs.tar'),
      '-C',
      join(work, 'x'),
    ]);
    assert.deepEqual(await snapshot(join(work, 'x')), b, 'export, extracted by GNU tar = umoci unpack');
    // The comparison covers what it should (not vacuously equal).
    const has = (k: string, re: RegExp) => assert.match(a[k] ?? 'missing', re, k);
    assert.equal(a['opaque/old'], undefined);
    assert.equal(a['opaque/sub'], undefined);
    assert.equal(a['opaque-first/old'], undefined);
    has('opaque/new', /^file /);
    has('opaque-first/new', /^file /);
    assert.equal(a['etc/gone'], undefined);
    has('wasdir', /^file/);
    has('wasfile', /^file .* @/);
    has('file-then-dir', /^dir /);
    has('file-then-dir/child', /^file /);
    has('sym-then-dir', /^dir /);
    assert.equal(a['etc/child'], undefined);
    has('dir-then-sym', /^link -> \/etc /);
    assert.equal(a['dir-then-sym/x'], undefined);
    assert.equal(a['recreated/old'], undefined);
    has('recreated', /^dir 755 /);
    has('bin/suid', /^file 4755 /);
    has('bin/sgid', /^file 2711 /);
    has('shared', /^dir 2775 0:1000 /);
    has('tmp', /^dir 1777 /);
    has('home/user', /^dir 750 1000:1000 @1600000005000$/);
    has('home/user/file', /^file 600 1000:1000 /);
    has('home/user/link', /^link -> file 1000:1000 @1600000006000$/);
    has('empty-file', /^file 644 0:0 @0 sha256:e3b0c442/);
    has('empty-dir', /^dir 755 0:0 @1600000007000$/);
    has('lib64', /^link -> \/usr\/lib64 /);
    has('usr/bin/ld', /^link -> \.\.\/lib64\/ld\.so /);
    has('dangling', /^link -> \/nonexistent\/target /);
    has('dev/null', /^chardev 666 0:0 @0 259$/);
    has('dev/fifo', /^fifo 600 /);
    has('xattr', /xattrs user\.lading=0x68656c6c6f$/);
    has('bin/hard-to-new', /^file 755 .*/);
    has('bin/tool', / =bin\/hard-to-new$/);
    has('bin/tool-link', /^file 755 /);
    has('ünïcode/ファイル.txt', /^file /);
    has(`${LONG_DIR}${'f'.repeat(150)}`, /^file /);
    has(`gnu/${LONG_DIR}${'g'.repeat(150)}.bin`, / =gnu\/hard-to-long$/);
    has('gnu/hard-to-long', /^file 644 0:0 @1600000010000 /);
    has('gnu/long-symlink', new RegExp(`^link -> ${LONG_DIR}g{150}\\.bin 1000:1000 @1600000011000$`));
    has(`gnu/${UTF8_LONG}`, /^file /);
    has('gnu/owned', /^file 644 1000:1000 /);
    has(`pax/${UTF8_LONG}`, /^file 644 0:0 @1600000021000 /);
    has(`pax/${'s'.repeat(120)}-link`, /^link -> \.\.\/gnu\/ünïcødé/);
    has('pax/big-uid', /^file 644 3000000:3000001 @1600000022000 /);
    // A binary value (bytes that are not UTF-8) comes out byte for byte, as security.capability must.
    has(
      'pax/fraction',
      /^file 644 0:0 @1600000020250 .* xattrs user\.binary=0xff00fe80c3,user\.origin=0x676e752d746172$/,
    );
  });
});

describe('an opaque marker at the root', () => {
  test('hides every lower entry in unpack, export and extract, as umoci unpack does', async () => {
    const layout = await buildLayout({
      layers: [
        {
          entries: [
            { path: 'old', content: 'o' },
            { path: 'd/', type: 'directory' },
            { path: 'd/x', content: 'x' },
          ],
        },
        {
          entries: [
            { path: '.wh..wh..opq', content: '' },
            { path: 'new', content: 'n' },
          ],
        },
      ],
    });
    assert.equal(layout.images[0]!.layers[1]!.uncompressed.includes('.wh..wh..opq'), true);
    const work = await mkdtemp(join(tmpdir(), 'lading-root-opaque-'));
    await run('umoci', ['unpack', '--image', `${layout.dir}:latest`, join(work, 'bundle')]);
    const theirs = await snapshot(join(work, 'bundle', 'rootfs'));
    assert.deepEqual(Object.keys(theirs), ['new']);
    const u = await runCli(['unpack', `oci:${layout.dir}:latest`, join(work, 'u')]);
    assert.equal(u.code, 0, u.stderr);
    assert.deepEqual(await snapshot(join(work, 'u')), theirs);
    const e = await runCli(['export', `oci:${layout.dir}:latest`]);
    assert.equal(e.code, 0, e.stderr);
    assert.deepEqual(
      (await run('tar', ['-t'], { input: e.stdout })).stdout.toString().split('\n').filter(Boolean),
      ['new'],
    );
    const x = await runCli(['extract', `oci:${layout.dir}:latest`, '/old', '-o', join(work, 'old')]);
    assert.equal(x.code, 4, x.stderr);
    assert.match(x.stderr, /\/old is not in the image \(old was deleted\)/);
  });
});

describe('compression is detected from the bytes', () => {
  test('gzip, zstd and plain layers unpack the same, whatever the media type says', async () => {
    const entries: EntrySpec[] = [
      { path: 'a/', type: 'directory' },
      { path: 'a/b', content: 'same' },
    ];
    const trees: Record<string, string>[] = [];
    for (const c of ['gzip', 'zstd', 'none'] as const) {
      const { dest } = await sandbox();
      const layer = await blob(entries, c);
      await unpackRootfs([{ ...layer, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }], dest);
      trees.push(await snapshot(dest));
    }
    assert.equal(trees[0]!['a/b']?.split(' ')[0], 'file');
    assert.deepEqual(trees[1], trees[0]);
    assert.deepEqual(trees[2], trees[0]);
  });

  test('unpack, export and extract read layers whose manifest media types lie', async () => {
    const tar = 'application/vnd.oci.image.layer.v1.tar';
    const layout = await buildLayout({
      layers: [
        { compression: 'zstd', mediaType: `${tar}+gzip`, entries: [{ path: 'zstd-as-gzip', content: 'z' }] },
        { compression: 'gzip', mediaType: tar, entries: [{ path: 'gzip-as-plain', content: 'g' }] },
        { compression: 'none', mediaType: `${tar}+zstd`, entries: [{ path: 'plain-as-zstd', content: 'p' }] },
      ],
    });
    const manifest = JSON.parse(layout.images[0]!.manifest.toString()) as { layers: { mediaType: string }[] };
    assert.deepEqual(
      manifest.layers.map((l) => l.mediaType),
      [`${tar}+gzip`, tar, `${tar}+zstd`],
    );
    const src = `oci:${layout.dir}:latest`;
    const work = await mkdtemp(join(tmpdir(), 'lading-lying-'));
    const u = await runCli(['unpack', src, join(work, 'rootfs')]);
    assert.equal(u.code, 0, u.stderr);
    const want = { 'gzip-as-plain': 'g', 'plain-as-zstd': 'p', 'zstd-as-gzip': 'z' };
    const read = async (dir: string) =>
      Object.fromEntries(
        await Promise.all(
          (await readdir(dir)).sort().map(async (n) => [n, await readFile(join(dir, n), 'utf8')] as const),
        ),
      );
    assert.deepEqual(await read(join(work, 'rootfs')), want);
    const e = await runCli(['export', src, '-o', join(work, 'rootfs.tar')]);
    assert.equal(e.code, 0, e.stderr);
    await mkdir(join(work, 'x'));
    await run('tar', ['-xf', join(work, 'rootfs.tar'), '-C', join(work, 'x')]);
    assert.deepEqual(await read(join(work, 'x')), want);
    const x = await runCli([
      'extract',
      src,
      '/zstd-as-gzip',
      '/gzip-as-plain',
      '/plain-as-zstd',
      '-o',
      join(work, 'out'),
    ]);
    assert.equal(x.code, 0, x.stderr);
    assert.deepEqual(await read(join(work, 'out')), want);
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
