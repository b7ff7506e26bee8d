import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import fc from 'fast-check';
import { hasCode } from '../../src/errors/index.ts';
import {
  type NarNode,
  narFromPath,
  narFromTree,
  narHash,
  narHashOfPath,
  narHashOfTree,
  narReadable,
  toNix32,
} from '../../src/nix/index.ts';
import { nix, nixBytes } from '../helpers/nix.ts';

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

const tmp = (p: string) => mkdtemp(join(tmpdir(), p));

/** Names whose byte order differs from locale or UTF-16 order. */
const AWKWARD = ['a', 'a-b', 'a.b', 'a_b', 'B', 'Z', 'a b', 'Ünïcode', 'é', 'z', '☃', '𝄞', '~', '.hidden'];

async function sampleTree(root: string): Promise<void> {
  await mkdir(join(root, 'sub', 'deeper'), { recursive: true });
  await mkdir(join(root, 'empty'));
  await writeFile(join(root, 'empty-file'), '');
  for (let n = 0; n <= 17; n++) await writeFile(join(root, 'sub', `size-${n}`), randomBytes(n));
  await writeFile(join(root, 'big'), randomBytes(1 << 20));
  await writeFile(join(root, 'run.sh'), '#!/bin/sh\n');
  await chmod(join(root, 'run.sh'), 0o755);
  await writeFile(join(root, 'owner-x-only'), 'x');
  await chmod(join(root, 'owner-x-only'), 0o700);
  await writeFile(join(root, 'group-x-only'), 'x');
  await chmod(join(root, 'group-x-only'), 0o654);
  await mkdir(join(root, 'readonly-dir'), { mode: 0o555 });
  for (const name of AWKWARD) await writeFile(join(root, 'sub', 'deeper', name), name);
  await symlink('run.sh', join(root, 'link'));
  await symlink('/absolute/dangling', join(root, 'dangling'));
  await symlink('../big', join(root, 'sub', 'up'));
  await symlink('sub', join(root, 'dirlink'));
  // A name that is not UTF-8.
  await writeFile(Buffer.from(`${root}/latin1-\xe9`, 'latin1'), 'bytes');
}

test('narFromPath is byte-identical to nix-store --dump; narHash equals nix-hash', async () => {
  const root = await tmp('lading-nar-');
  await sampleTree(root);
  const [ours, theirs, nixHash] = await Promise.all([
    collect(narFromPath(root)),
    nixBytes('nix-store', ['--dump', root]),
    nix('nix-hash', ['--type', 'sha256', '--base32', root]),
  ]);
  assert.equal(ours.length, theirs.length);
  assert.ok(ours.equals(theirs));
  const h = await narHash(root);
  assert.equal(toNix32(h.hash.bytes), nixHash);
  assert.equal(h.size, theirs.length);
  assert.deepEqual(await narHashOfPath(`${root}/`), h);
  // A single file, a symlink and an empty directory as the root.
  for (const p of [join(root, 'run.sh'), join(root, 'dangling'), join(root, 'empty'), join(root, 'big')])
    assert.ok((await collect(narFromPath(p))).equals(await nixBytes('nix-store', ['--dump', p])), p);
});

test('narReadable streams the same bytes', async () => {
  const root = await tmp('lading-nar-');
  await sampleTree(root);
  assert.ok((await collect(narReadable(root))).equals(await collect(narFromPath(root))));
});

function sampleNode(big: Buffer): NarNode {
  return {
    type: 'directory',
    entries: {
      version: { type: 'regular', size: 33, contents: Buffer.from('Directory Transport Version: 1.1\n') },
      'manifest.json': { type: 'regular', size: 2, contents: Buffer.from('{}') },
      ab12: {
        type: 'regular',
        size: big.length,
        open: async () => {
          async function* gen() {
            for (let i = 0; i < big.length; i += 65_537) yield big.subarray(i, i + 65_537);
          }
          return gen();
        },
      },
      'sync-chunks': {
        type: 'regular',
        size: 7,
        contents: async () => [Buffer.from('abc'), new Uint8Array(0), new Uint8Array([100, 101, 102, 103])],
      },
      'node-readable': {
        type: 'regular',
        size: 11,
        open: async () => Readable.from([Buffer.from('node '), Buffer.from('stream')]),
      },
      empty: { type: 'directory', entries: {} },
      'empty-file': { type: 'regular', size: 0, contents: new Uint8Array(0) },
      bin: {
        type: 'directory',
        entries: {
          tool: { type: 'regular', executable: true, size: 3, contents: Buffer.from('abc') },
          l: { type: 'symlink', target: '../ab12' },
          abs: { type: 'symlink', target: '/nix/store/x' },
        },
      },
      ...Object.fromEntries(
        AWKWARD.map((n): [string, NarNode] => [
          n,
          { type: 'regular', size: Buffer.byteLength(n), contents: Buffer.from(n) },
        ]),
      ),
    },
  };
}

async function writeNode(path: string, node: NarNode): Promise<void> {
  if (node.type === 'directory') {
    await mkdir(path);
    for (const [n, child] of Object.entries(node.entries)) await writeNode(join(path, n), child);
  } else if (node.type === 'symlink') await symlink(node.target, path);
  else {
    const c = node.contents ?? node.open;
    await writeFile(path, c instanceof Uint8Array ? c : await collect(toAsync(await c())));
    await chmod(path, node.executable ? 0o755 : 0o644);
  }
}

async function* toAsync(it: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* it;
}

test('narFromTree equals the NAR of the same tree written to disk', async () => {
  const big = randomBytes(300_001);
  const root = join(await tmp('lading-nar-'), 't');
  await writeNode(root, sampleNode(big));
  const [ours, theirs, nixHash] = await Promise.all([
    collect(narFromTree(sampleNode(big))),
    nixBytes('nix-store', ['--dump', root]),
    nix('nix-hash', ['--type', 'sha256', '--base32', root]),
  ]);
  assert.ok(ours.equals(theirs));
  const h = await narHashOfTree(sampleNode(big));
  assert.equal(toNix32(h.hash.bytes), nixHash);
  assert.equal(h.size, theirs.length);
  assert.deepEqual(await narHash(sampleNode(big)), h);
  // A lone file or symlink as the root.
  const file: NarNode = { type: 'regular', size: 5, executable: true, contents: Buffer.from('hello') };
  const fpath = join(root, '..', 'lone');
  await writeNode(fpath, file);
  assert.ok((await collect(narFromTree(file))).equals(await nixBytes('nix-store', ['--dump', fpath])));
});

test('contents are opened lazily, one file at a time, in NAR order', async () => {
  const opened: string[] = [];
  const entry = (name: string): NarNode => ({
    type: 'regular',
    size: 1,
    open: async () => {
      opened.push(name);
      return [Buffer.from('x')];
    },
  });
  const it = narFromTree({ type: 'directory', entries: { c: entry('c'), a: entry('a'), b: entry('b') } });
  await it.next();
  assert.deepEqual(opened, []);
  await collect(it);
  assert.deepEqual(opened, ['a', 'b', 'c']);
});

test('a stream shorter or longer than the declared size fails, naming the file', async () => {
  const tree = (size: number, chunks: Buffer[]): NarNode => ({
    type: 'directory',
    entries: {
      d: { type: 'directory', entries: { f: { type: 'regular', size, open: async () => chunks } } },
    },
  });
  await assert.rejects(
    collect(narFromTree(tree(10, [Buffer.from('abc')]))),
    (e: unknown) => hasCode(e, 'E_SIZE_MISMATCH') && /d\/f: declared 10 bytes/.test(e.message),
  );
  await assert.rejects(
    collect(narFromTree(tree(2, [Buffer.from('a'), Buffer.from('bc')]))),
    (e: unknown) => hasCode(e, 'E_SIZE_MISMATCH') && /d\/f/.test(e.message),
  );
  await assert.rejects(
    collect(narFromTree({ type: 'regular', size: 4, contents: Buffer.from('abc') })),
    (e: unknown) => hasCode(e, 'E_SIZE_MISMATCH'),
  );
});

test('invalid trees and paths are errors naming the place', async () => {
  for (const bad of ['', '.', '..', 'a/b', 'nul\0', '\ud800']) {
    await assert.rejects(
      collect(
        narFromTree({
          type: 'directory',
          entries: { ok: { type: 'directory', entries: { [bad]: { type: 'symlink', target: 'x' } } } },
        }),
      ),
      (e: unknown) =>
        hasCode(e, 'E_BAD_ARGUMENT') && e.message.includes(JSON.stringify(bad)) && e.message.includes('ok'),
      JSON.stringify(bad),
    );
  }
  for (const target of ['', 'a\0b'])
    await assert.rejects(collect(narFromTree({ type: 'symlink', target })), (e: unknown) =>
      hasCode(e, 'E_BAD_ARGUMENT'),
    );
  const root = await tmp('lading-nar-');
  const fifo = join(root, 'fifo');
  execFileSync('mkfifo', [fifo]);
  await assert.rejects(
    collect(narFromPath(root)),
    (e: unknown) => hasCode(e, 'E_NIX') && e.message.includes(fifo),
  );
  const missing = join(root, 'missing');
  await assert.rejects(
    collect(narFromPath(missing)),
    (e: unknown) => hasCode(e, 'E_NOT_FOUND') && e.message.includes(missing),
  );
});

test('an aborted signal stops hashing', async () => {
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(narHash({ type: 'symlink', target: 'x' }, { signal: ac.signal }), (e: unknown) =>
    hasCode(e, 'E_ABORTED'),
  );
});

const nameArb = fc
  .string({ unit: fc.constantFrom(...'aAbB09-._~é☃ '), minLength: 1, maxLength: 6 })
  .filter((n) => n !== '.' && n !== '..');

const treeArb = fc.letrec<{ node: NarNode }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ executable: fc.boolean(), bytes: fc.uint8Array({ maxLength: 40 }) }).map(
      (r): NarNode => ({
        type: 'regular',
        executable: r.executable,
        size: r.bytes.length,
        contents: Buffer.from(r.bytes),
      }),
    ),
    nameArb.map((target): NarNode => ({ type: 'symlink', target })),
    fc
      .dictionary(nameArb, tie('node'), { maxKeys: 5 })
      .map((entries): NarNode => ({ type: 'directory', entries })),
  ),
}));

test('property: random trees hash like nix-hash (one nix-hash call for the batch)', async () => {
  const trees = fc.sample(
    fc
      .dictionary(nameArb, treeArb.node, { maxKeys: 6 })
      .map((entries): NarNode => ({ type: 'directory', entries })),
    40,
  );
  const base = await tmp('lading-narp-');
  const paths = trees.map((_, i) => join(base, String(i)));
  for (let i = 0; i < trees.length; i++) await writeNode(paths[i]!, trees[i]!);
  const theirs = (await nix('nix-hash', ['--type', 'sha256', '--base32', ...paths])).split('\n');
  const ours = await Promise.all(trees.map(async (t) => toNix32((await narHashOfTree(t)).hash.bytes)));
  assert.deepEqual(ours, theirs);
  const fromDisk = await Promise.all(paths.map(async (p) => toNix32((await narHashOfPath(p)).hash.bytes)));
  assert.deepEqual(fromDisk, theirs);
});
