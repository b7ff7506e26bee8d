import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import tar from 'tar-stream';
import type { Digest } from '../../src/digest/index.ts';
import { type ExportResult, exportRootfs, type LayerBlob } from '../../src/layers/index.ts';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import {
  buildLayout,
  type EntrySpec,
  type ImageSpec,
  layerTar,
  pushLayout,
  smallImage,
} from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries } from '../helpers/registry.ts';

test('export: a deterministic tar of the flattened tree, equal to unpack once extracted', async () => {
  const spec = smallImage('export');
  spec.layers.push({
    entries: [
      { path: 'etc/.wh.os-release', content: '' },
      { path: 'usr/bin/hello-link', type: 'link', linkname: 'usr/bin/hello' },
    ],
  });
  const layout = await buildLayout(spec);
  const work = await mkdtemp(join(tmpdir(), 'lading-export-'));
  const env = { HOME: '/nonexistent', PATH: process.env.PATH };
  const a = join(work, 'a.tar');
  const b = join(work, 'b.tar');
  assert.equal((await runCli(['export', `oci:${layout.dir}:latest`, '-o', a], { env })).code, 0);
  const second = await runCli(['export', `oci:${layout.dir}:latest`], { env });
  assert.equal(second.code, 0, second.stderr);
  await writeFile(b, second.stdout);
  const sha = (x: Buffer) => createHash('sha256').update(x).digest('hex');
  assert.equal(sha(await readFile(a)), sha(await readFile(b)), 'two exports are byte-identical');
  const listing = (await run('tar', ['-tvf', a])).stdout.toString();
  assert.doesNotMatch(listing, /os-release/);
  assert.doesNotMatch(listing, /\.wh\./);
  assert.match(listing, /usr\/bin\/hello-link link to usr\/bin\/hello/);
  // Extracted, it is the same tree as unpack gives.
  const x = join(work, 'x');
  await mkdir(x);
  await run('tar', ['-xpf', a, '-C', x]);
  const u = join(work, 'u');
  assert.equal((await runCli(['unpack', `oci:${layout.dir}:latest`, u], { env })).code, 0);
  await run('diff', ['-r', '--no-dereference', x, u]);
});

/** name → type, mode, owner, content hash or link target, and hardlink group (first name in walk order). */
async function snapshot(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const inodes = new Map<number, string>();
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(p);
      let desc = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isSymbolicLink()) desc = `symlink -> ${await readlink(p)} ${st.uid}:${st.gid}`;
      else if (st.isDirectory()) {
        desc = `dir ${desc}`;
        await walk(p, r);
      } else if (st.isFile()) {
        desc = `file ${desc} ${createHash('sha256')
          .update(await readFile(p))
          .digest('hex')
          .slice(0, 16)}`;
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

/**
 * Whiteouts, opaque directories, replacements and hardlinks whose targets are in the same layer,
 * in lower layers, hidden by upper layers, chained, and shared by links from several layers.
 */
const layered: ImageSpec = {
  layers: [
    {
      entries: [
        { path: 'etc/', type: 'directory' },
        { path: 'etc/passwd', content: 'root:x:0:0\n' },
        { path: 'etc/gone', content: 'bye' },
        { path: 'opaque/', type: 'directory', mode: 0o750 },
        { path: 'opaque/old', content: 'hidden later' },
        { path: 'opaque/sub/', type: 'directory' },
        { path: 'opaque/sub/deep', content: 'deep' },
        { path: 'wasdir/', type: 'directory' },
        { path: 'wasdir/child', content: 'c' },
        { path: 'wasfile', content: 'file' },
        { path: 'recreated/', type: 'directory', mode: 0o700 },
        { path: 'recreated/old', content: 'must not come back (go-containerregistry#2029)' },
        { path: 'bin/', type: 'directory' },
        { path: 'bin/tool', content: 'tool', mode: 0o755 },
        { path: 'bin/suid', content: 'suid', mode: 0o4755 },
        { path: 'home/', type: 'directory' },
        { path: 'home/user/', type: 'directory', uid: 1000, gid: 1000, mode: 0o750 },
        { path: 'home/user/file', content: 'mine', uid: 1000, gid: 1000 },
        { path: 'tmp/', type: 'directory', mode: 0o1777 },
        // Same-layer link whose target an upper layer deletes: the content lives on under h/alias.
        { path: 'h/', type: 'directory' },
        { path: 'h/orig', content: 'original content', mode: 0o640 },
        { path: 'h/alias', type: 'link', linkname: 'h/orig' },
        // A chain a ← b ← c; a is replaced above, b and c keep the old content.
        { path: 'm/', type: 'directory' },
        { path: 'm/a', content: 'old a' },
        { path: 'm/b', type: 'link', linkname: 'm/a' },
        { path: 'm/c', type: 'link', linkname: 'm/b' },
        // Targets of links in upper layers.
        { path: 'd/', type: 'directory' },
        { path: 'd/target', content: 'target deleted above, linked from layer 1' },
        { path: 'p/', type: 'directory' },
        { path: 'p/t', content: 'linked from layers 1 and 2' },
        { path: 'e/', type: 'directory' },
        { path: 'e/empty', content: '' },
      ],
    },
    {
      entries: [
        { path: 'etc/.wh.gone', content: '' },
        { path: 'opaque/', type: 'directory' },
        { path: 'opaque/new', content: 'visible' },
        { path: 'opaque/.wh..wh..opq', content: '' },
        { path: '.wh.wasdir', content: '' },
        { path: 'wasdir', content: 'now a file' },
        { path: 'wasfile', type: 'symlink', linkname: 'etc/passwd' },
        { path: 'h/.wh.orig', content: '' },
        { path: '.wh.recreated', content: '' },
        { path: 'recreated/', type: 'directory' },
        { path: 'recreated/new', content: 'new' },
        { path: 'd/link-to-deleted', type: 'link', linkname: 'd/target' },
        { path: 'p/l1', type: 'link', linkname: 'p/t' },
        { path: 'e/l1', type: 'link', linkname: 'e/empty' },
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
        { path: 'm/late', type: 'link', linkname: 'm/a' },
        { path: 'm/a', content: 'new a' },
        { path: 'd/.wh.target', content: '' },
        { path: 'p/l2', type: 'link', linkname: 'p/t' },
        { path: 'up/', type: 'directory' },
        { path: 'up/to-lower', type: 'link', linkname: 'bin/suid' },
      ],
    },
  ],
};

test('export: whiteouts, opaque dirs and hardlinks across layers give the tree of lading unpack and umoci unpack', async () => {
  const layout = await buildLayout(layered);
  const work = await mkdtemp(join(tmpdir(), 'lading-export-'));
  const env = { HOME: '/nonexistent', PATH: process.env.PATH };
  const tarFile = join(work, 'rootfs.tar');
  const r = await runCli(['export', `oci:${layout.dir}:latest`, '-o', tarFile], { env });
  assert.equal(r.code, 0, r.stderr);
  const x = join(work, 'x');
  await mkdir(x);
  await run('tar', ['--numeric-owner', '-xpf', tarFile, '-C', x]);
  const u = join(work, 'u');
  const un = await runCli(['unpack', `oci:${layout.dir}:latest`, u], { env });
  assert.equal(un.code, 0, un.stderr);
  const bundle = join(work, 'bundle');
  await run('umoci', ['unpack', '--image', `${layout.dir}:latest`, bundle]);
  const ours = await snapshot(x);
  assert.deepEqual(ours, await snapshot(u), 'export = lading unpack');
  assert.deepEqual(ours, await snapshot(join(bundle, 'rootfs')), 'export = umoci unpack');
  // The cases are really there (not vacuously equal).
  assert.match(ours['h/alias'] ?? '', /^file 640 .*/);
  assert.equal(ours['h/orig'], undefined);
  assert.match(ours['m/c'] ?? '', / =m\/b$/);
  assert.match(ours['m/late'] ?? '', / =m\/b$/);
  assert.doesNotMatch(ours['m/a'] ?? '', /=/);
  assert.match(ours['d/link-to-deleted'] ?? '', /^file /);
  assert.match(ours['p/l2'] ?? '', / =p\/l1$/);
  assert.match(ours['p/t'] ?? '', / =p\/l1$/);
  assert.match(ours['up/to-lower'] ?? '', /^file 4755 /);
  assert.equal(ours['opaque/old'], undefined);
  assert.equal(ours['wasdir/child'], undefined);
  assert.equal(ours['recreated/old'], undefined);
  assert.match(ours.recreated ?? '', /^dir 755 /);
  // Every name is in the tar once, no whiteout is, and links come after their content.
  const listing = (await run('tar', ['-tvf', tarFile])).stdout.toString().trim().split('\n');
  const names = listing.map((l) => /\d\d:\d\d (.*?)(?: link to .*| -> .*)?$/.exec(l)?.[1]);
  assert.equal(new Set(names).size, names.length);
  assert.ok(!names.some((n) => n?.includes('.wh.')));
  for (const l of listing) {
    const m = /^h.* (.*) link to (.*)$/.exec(l);
    if (m) assert.ok(names.indexOf(m[2]) < names.indexOf(m[1]), `${m[1]} after ${m[2]}`);
  }
  // Byte-identical twice, through -o - (stdout) as well.
  const again = await runCli(['export', `oci:${layout.dir}:latest`, '-o', '-'], { env });
  assert.equal(again.code, 0, again.stderr);
  assert.ok(again.stdout.equals(await readFile(tarFile)), 'same image, same bytes');
});

test('export: a failing source fails the command and leaves no -o file (nor a temp file)', async () => {
  const spec = smallImage('export-fail');
  const layout = await buildLayout(spec);
  // Corrupt the bottom layer (read last, after output was produced): flip its last bytes.
  const bottom = join(layout.dir, 'blobs', 'sha256', layout.images[0]!.layers[0]!.digest.slice(7));
  const bytes = await readFile(bottom);
  bytes[bytes.length - 5]! ^= 0xff;
  await writeFile(bottom, bytes);
  const work = await mkdtemp(join(tmpdir(), 'lading-export-fail-'));
  const out = join(work, 'rootfs.tar');
  const env = { HOME: '/nonexistent', PATH: process.env.PATH };
  const r = await runCli(['export', `oci:${layout.dir}:latest`, '-o', out], { env });
  assert.notEqual(r.code, 0);
  // Named either by the decompressor (layer 0 …) or the digest check, whichever notices first.
  assert.ok(r.stderr.includes(layout.images[0]!.layers[0]!.digest.slice(7)), r.stderr);
  assert.deepEqual(await readdir(work), []);
});

/** Layers from entry lists, as the library takes them. */
async function blobs(layers: EntrySpec[][]): Promise<LayerBlob[]> {
  return Promise.all(
    layers.map(async (entries) => {
      const bytes = await layerTar(entries);
      return {
        digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest,
        size: bytes.length,
        open: async () => Readable.from([bytes]),
      };
    }),
  );
}

async function exported(layers: EntrySpec[][]): Promise<{ listing: string[]; r: ExportResult }> {
  const { stream, done } = await exportRootfs(await blobs(layers));
  const names: string[] = [];
  const extract = tar.extract();
  const listed = (async () => {
    for await (const e of extract) {
      const h = e.header;
      names.push(`${h.type} ${h.name}${h.linkname ? ` -> ${h.linkname}` : ''}`);
      e.resume();
    }
  })();
  stream.pipe(extract);
  const [r] = await Promise.all([done, listed]);
  return { listing: names, r };
}

test('export: entries upper layers put under a lower symlink, links to nothing and .. are reported, never followed', async () => {
  const { listing, r } = await exported([
    [
      { path: 'a', type: 'symlink', linkname: '/etc' },
      { path: 'keep', content: 'k' },
    ],
    [
      { path: 'a/evil', content: 'x' },
      { path: 'nowhere', type: 'link', linkname: 'missing' },
      { path: 'up', type: 'link', linkname: '../etc/passwd' },
      { path: 'to-dir', type: 'link', linkname: 'd' },
      { path: 'd/', type: 'directory' },
    ],
  ]);
  // Directories come last (issue 13.7: no child changes their mtime on extraction).
  assert.deepEqual(listing, ['file a/evil', 'file keep', 'directory d/']);
  assert.deepEqual(
    r.problems.map((p) => [p.layer, p.entry, p.code]),
    [
      [1, 'up', 'E_UNSAFE_PATH'],
      [0, 'a', 'E_UNSAFE_PATH'],
      // Both looked for below layer 1 (d/ comes after the link): nothing there.
      [1, 'nowhere', 'E_UNSAFE_PATH'],
      [1, 'to-dir', 'E_UNSAFE_PATH'],
    ],
  );
  assert.match(r.problems[1]!.message, /symlink "a" in layer 0 .* is a parent of entries of upper layers/);
  assert.match(r.problems[2]!.message, /hardlink "nowhere" .* points at "missing", which is not an entry/);
});

test('export: several links to a target an upper layer hid are served by one extra read of that layer', async () => {
  let opened = 0;
  const layers = (
    await blobs([
      [
        { path: 'big', content: 'B'.repeat(100_000), mode: 0o600 },
        { path: 'l1', type: 'link', linkname: 'big' },
        { path: 'l2', type: 'link', linkname: 'l1' },
        { path: 'small', content: 's' },
      ],
      [{ path: 'big', content: 'replaced' }],
    ])
  ).map((l) => ({
    ...l,
    open: async () => {
      opened++;
      return l.open();
    },
  }));
  const { stream, done } = await exportRootfs(layers);
  const entries: { name: string; type: string; size: number; linkname: string | null; body: number }[] = [];
  const extract = tar.extract();
  const listed = (async () => {
    for await (const e of extract) {
      let body = 0;
      for await (const c of e) body += (c as Buffer).length;
      const h = e.header;
      entries.push({ name: h.name, type: h.type ?? '', size: h.size ?? 0, linkname: h.linkname, body });
    }
  })();
  stream.pipe(extract);
  await Promise.all([done, listed]);
  assert.deepEqual(
    entries.map((e) => [e.name, e.type, e.body, e.linkname]),
    [
      ['big', 'file', 8, null],
      ['small', 'file', 1, null],
      ['l1', 'file', 100_000, null],
      ['l2', 'link', 0, 'l1'],
    ],
  );
  assert.equal(opened, 3, 'top layer once, bottom layer twice');
});

test('export: the same image gives the same bytes from a layout, a registry, skopeo’s docker-archive (layers uncompressed) and the cache', async () => {
  const layout = await buildLayout(layered);
  const reg = await sharedRegistry('none');
  await pushLayout(layout, reg, 'export/same:1');
  const work = await mkdtemp(join(tmpdir(), 'lading-export-same-'));
  const archive = join(work, 'image.docker.tar');
  await run('skopeo', ['copy', `oci:${layout.dir}:latest`, `docker-archive:${archive}:export/same:1`]);
  const env = { HOME: '/nonexistent', PATH: process.env.PATH };
  const cache = join(work, 'cache');
  const outs: Buffer[] = [];
  for (const args of [
    [`oci:${layout.dir}:latest`],
    ['--no-cache', `${reg.host}/export/same:1`],
    ['--cache-dir', cache, `${reg.host}/export/same:1`],
    ['--cache-dir', cache, `${reg.host}/export/same:1`],
    [`docker-archive:${archive}`],
  ]) {
    const r = await runCli(['export', ...args], { env });
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    outs.push(r.stdout);
  }
  assert.ok(outs[0]!.length > 10_000);
  for (const [i, o] of outs.entries()) assert.ok(o.equals(outs[0]!), `export ${i} differs from the first`);
  await stopSharedRegistries();
});
