import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, LadingError } from '../errors/index.ts';
import type { NixHash } from './hash.ts';

/** A file tree to serialise without writing it to disk. */
export type NarNode =
  | {
      type: 'regular';
      executable?: boolean;
      /** Size in bytes; written before the contents, so it must be right. */
      size: number;
      /** The bytes, or a function opening them as a stream (called once, when they are reached). */
      contents: Uint8Array | (() => Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>>);
    }
  | { type: 'symlink'; target: string }
  | { type: 'directory'; entries: Record<string, NarNode> };

const PAD = Buffer.alloc(8);

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

/** One NAR "string": u64 length, bytes, zero padding to 8. */
function str(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  const pad = (8 - (b.length % 8)) % 8;
  return Buffer.concat([u64(b.length), b, PAD.subarray(0, pad)]);
}

const MAGIC = str('nix-archive-1');
const OPEN = str('(');
const CLOSE = str(')');

function sortNames(names: string[]): string[] {
  return names.sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
}

function checkName(name: string, where: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new LadingError(ErrorCode.Nix, `invalid NAR entry name ${JSON.stringify(name)} in ${where}`);
  }
}

async function* regular(
  executable: boolean,
  size: number,
  contents: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  where: string,
): AsyncGenerator<Buffer> {
  yield Buffer.concat([
    OPEN,
    str('type'),
    str('regular'),
    ...(executable ? [str('executable'), str('')] : []),
    str('contents'),
    u64(size),
  ]);
  let n = 0;
  if (contents instanceof Uint8Array) {
    n = contents.length;
    if (n !== size) throw new LadingError(ErrorCode.Nix, `${where}: declared ${size} bytes, has ${n}`);
    yield Buffer.from(contents);
  } else {
    for await (const chunk of contents) {
      n += chunk.length;
      if (n > size) throw new LadingError(ErrorCode.Nix, `${where}: more than the declared ${size} bytes`);
      yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
    if (n !== size) throw new LadingError(ErrorCode.Nix, `${where}: declared ${size} bytes, got ${n}`);
  }
  yield Buffer.concat([PAD.subarray(0, (8 - (size % 8)) % 8), CLOSE]);
}

async function* treeNode(node: NarNode, where: string): AsyncGenerator<Buffer> {
  switch (node.type) {
    case 'regular': {
      const c = node.contents;
      yield* regular(node.executable === true, node.size, c instanceof Uint8Array ? c : await c(), where);
      return;
    }
    case 'symlink':
      yield Buffer.concat([OPEN, str('type'), str('symlink'), str('target'), str(node.target), CLOSE]);
      return;
    case 'directory': {
      yield Buffer.concat([OPEN, str('type'), str('directory')]);
      for (const name of sortNames(Object.keys(node.entries))) {
        checkName(name, where);
        yield Buffer.concat([str('entry'), OPEN, str('name'), str(name), str('node')]);
        yield* treeNode(node.entries[name]!, `${where}/${name}`);
        yield CLOSE;
      }
      yield CLOSE;
    }
  }
}

/** Serialises an in-memory/streamed tree as a NAR, streaming file contents. */
export async function* narFromTree(node: NarNode): AsyncGenerator<Buffer> {
  yield MAGIC;
  yield* treeNode(node, '<root>');
}

async function* pathNode(path: string): AsyncGenerator<Buffer> {
  const st = await lstat(path);
  if (st.isSymbolicLink()) {
    yield Buffer.concat([
      OPEN,
      str('type'),
      str('symlink'),
      str('target'),
      str(await readlink(path, { encoding: 'buffer' })),
      CLOSE,
    ]);
  } else if (st.isFile()) {
    yield* regular(
      (st.mode & 0o100) !== 0,
      st.size,
      createReadStream(path, { highWaterMark: 1 << 20 }),
      path,
    );
  } else if (st.isDirectory()) {
    yield Buffer.concat([OPEN, str('type'), str('directory')]);
    for (const name of sortNames(await readdir(path))) {
      yield Buffer.concat([str('entry'), OPEN, str('name'), str(name), str('node')]);
      yield* pathNode(join(path, name));
      yield CLOSE;
    }
    yield CLOSE;
  } else {
    throw new LadingError(
      ErrorCode.Nix,
      `cannot put ${path} in a NAR: not a regular file, directory or symlink`,
      { path },
    );
  }
}

/** Serialises a file or directory on disk as a NAR (as `nix-store --dump`). */
export async function* narFromPath(path: string): AsyncGenerator<Buffer> {
  yield MAGIC;
  yield* pathNode(path);
}

/** Hashes a NAR (or any byte stream) with sha256 while streaming; returns the hash and size. */
export async function hashStream(
  stream: AsyncIterable<Uint8Array>,
): Promise<{ hash: NixHash; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    h.update(chunk);
    size += chunk.length;
  }
  return { hash: { algo: 'sha256', bytes: h.digest() }, size };
}

/** The NAR hash of a tree (what `outputHashMode = "recursive"` checks). */
export function narHashOfTree(node: NarNode): Promise<{ hash: NixHash; size: number }> {
  return hashStream(narFromTree(node));
}

/** The NAR hash of a path on disk (as `nix-hash --type sha256 PATH`). */
export function narHashOfPath(path: string): Promise<{ hash: NixHash; size: number }> {
  return hashStream(narFromPath(path));
}
