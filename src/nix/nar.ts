import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { ErrorCode, isLadingError, LadingError } from '../errors/index.ts';
import type { NixHash } from './hash.ts';

/** Opens a regular file's contents as a stream of chunks; called once, when the file is reached. */
export type NarOpener = () => Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>>;

/** A regular file in a {@link NarNode} tree: give the bytes, or a stream via `contents` or `open`. */
export type NarRegular = {
  type: 'regular';
  executable?: boolean;
  /** Size in bytes; written before the contents, so a stream of any other length fails. */
  size: number;
} & ({ contents: Uint8Array | NarOpener; open?: never } | { open: NarOpener; contents?: never });

/** A file tree to serialise without writing it to disk. */
export type NarNode =
  | NarRegular
  | { type: 'symlink'; target: string }
  | { type: 'directory'; entries: Record<string, NarNode> };

/** What {@link narHash} hashes: a path on disk or an in-memory tree. */
export type NarSource = string | NarNode;

export interface NarHashResult {
  /** sha256 of the NAR bytes (what `outputHashMode = "recursive"` checks). */
  hash: NixHash;
  /** Total NAR size in bytes. */
  size: number;
}

const PAD = Buffer.alloc(8);

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

function padding(n: number): Buffer {
  return PAD.subarray(0, (8 - (n % 8)) % 8);
}

/** One NAR "string": u64 length, bytes, zero padding to a multiple of 8. */
function str(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return Buffer.concat([u64(b.length), b, padding(b.length)]);
}

const MAGIC = str('nix-archive-1');
const OPEN = str('(');
const CLOSE = str(')');
const DIR_START = Buffer.concat([OPEN, str('type'), str('directory')]);
const ENTRY_START = Buffer.concat([str('entry'), OPEN, str('name')]);
const NODE = str('node');

function symlinkNode(target: string | Buffer): Buffer {
  return Buffer.concat([OPEN, str('type'), str('symlink'), str('target'), str(target), CLOSE]);
}

/** Sorts names byte-wise, as Nix's `std::map<std::string>` does. */
function sortBytewise<T>(items: { key: Buffer; value: T }[]): { key: Buffer; value: T }[] {
  return items.sort((a, b) => Buffer.compare(a.key, b.key));
}

function sizeError(where: string, declared: number, got: string): LadingError {
  return new LadingError(ErrorCode.SizeMismatch, `${where}: declared ${declared} bytes, ${got}`, {
    path: where,
    expected: declared,
  });
}

async function* regular(
  executable: boolean,
  size: number,
  contents: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  where: string,
  onError?: (err: unknown) => unknown,
): AsyncGenerator<Buffer> {
  if (!Number.isSafeInteger(size) || size < 0)
    throw new LadingError(ErrorCode.BadArgument, `${where}: invalid file size ${size}`, { path: where });
  yield Buffer.concat([
    OPEN,
    str('type'),
    str('regular'),
    ...(executable ? [str('executable'), str('')] : []),
    str('contents'),
    u64(size),
  ]);
  if (contents instanceof Uint8Array) {
    if (contents.length !== size) throw sizeError(where, size, `has ${contents.length}`);
    yield Buffer.from(contents.buffer, contents.byteOffset, contents.byteLength);
  } else {
    let n = 0;
    try {
      for await (const chunk of contents) {
        n += chunk.length;
        if (n > size) throw sizeError(where, size, 'the stream has more');
        yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      }
    } catch (err) {
      throw onError ? onError(err) : err;
    }
    if (n !== size) throw sizeError(where, size, `the stream ended after ${n}`);
  }
  yield Buffer.concat([padding(size), CLOSE]);
}

function checkName(name: string, where: string): Buffer {
  if (
    name === '' ||
    name === '.' ||
    name === '..' ||
    name.includes('/') ||
    name.includes('\0') ||
    /\p{Cs}/u.test(name)
  ) {
    throw new LadingError(
      ErrorCode.BadArgument,
      `invalid NAR entry name ${JSON.stringify(name)} in ${where}`,
      { path: where },
    );
  }
  return Buffer.from(name, 'utf8');
}

async function* treeNode(node: NarNode, where: string): AsyncGenerator<Buffer> {
  switch (node.type) {
    case 'regular': {
      const c = node.contents ?? node.open;
      if (c === undefined)
        throw new LadingError(ErrorCode.BadArgument, `${where || '<root>'}: regular file without contents`);
      const label = where || '<root>';
      yield* regular(node.executable === true, node.size, c instanceof Uint8Array ? c : await c(), label);
      return;
    }
    case 'symlink':
      if (node.target === '' || node.target.includes('\0'))
        throw new LadingError(
          ErrorCode.BadArgument,
          `${where || '<root>'}: invalid symlink target ${JSON.stringify(node.target)}`,
          { path: where || '<root>' },
        );
      yield symlinkNode(node.target);
      return;
    case 'directory': {
      yield DIR_START;
      const names = Object.keys(node.entries).map((name) => ({
        key: checkName(name, where || '<root>'),
        value: name,
      }));
      for (const { key, value } of sortBytewise(names)) {
        yield Buffer.concat([ENTRY_START, str(key), NODE]);
        yield* treeNode(node.entries[value]!, where === '' ? value : `${where}/${value}`);
        yield CLOSE;
      }
      yield CLOSE;
      return;
    }
    default:
      throw new LadingError(
        ErrorCode.BadArgument,
        `${where || '<root>'}: unknown NAR node type ${JSON.stringify((node as { type: unknown }).type)}`,
      );
  }
}

/** Serialises an in-memory tree as a NAR, streaming file contents (never buffering them). */
export async function* narFromTree(node: NarNode): AsyncGenerator<Buffer> {
  yield MAGIC;
  yield* treeNode(node, '');
}

function ioError(path: Buffer, err: unknown): LadingError {
  const code = (err as NodeJS.ErrnoException).code;
  return new LadingError(
    code === 'ENOENT' ? ErrorCode.NotFound : ErrorCode.Io,
    `cannot read ${path.toString()} for a NAR: ${(err as Error).message}`,
    { path: path.toString() },
    { cause: err },
  );
}

const SMALL_FILE = 64 * 1024;

/** Reads a file known to be small; a file that grew meanwhile is caught by the size check. */
async function* readSmall(path: Buffer): AsyncGenerator<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(SMALL_FILE + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n === buf.length) break;
    }
    yield buf.subarray(0, n);
  } finally {
    await fh.close();
  }
}

async function* pathNode(path: Buffer): AsyncGenerator<Buffer> {
  const st = await lstat(path).catch((err: unknown) => {
    throw ioError(path, err);
  });
  if (st.isSymbolicLink()) {
    yield symlinkNode(
      await readlink(path, { encoding: 'buffer' }).catch((err: unknown) => {
        throw ioError(path, err);
      }),
    );
  } else if (st.isFile()) {
    // S_IXUSR decides "executable", exactly like Nix's dumpPath.
    // Small files in one read (bounded by SMALL_FILE); larger ones streamed in 1 MiB chunks.
    yield* regular(
      (st.mode & 0o100) !== 0,
      st.size,
      st.size <= SMALL_FILE ? readSmall(path) : createReadStream(path, { highWaterMark: 1 << 20 }),
      path.toString(),
      (err) => (isLadingError(err) ? err : ioError(path, err)),
    );
  } else if (st.isDirectory()) {
    yield DIR_START;
    const names = await readdir(path, { encoding: 'buffer' }).catch((err: unknown) => {
      throw ioError(path, err);
    });
    const slash = Buffer.from('/');
    for (const { key } of sortBytewise(names.map((key) => ({ key, value: null })))) {
      yield Buffer.concat([ENTRY_START, str(key), NODE]);
      yield* pathNode(Buffer.concat([path, slash, key]));
      yield CLOSE;
    }
    yield CLOSE;
  } else {
    throw new LadingError(
      ErrorCode.Nix,
      `cannot put ${path.toString()} in a NAR: not a regular file, directory or symlink`,
      { path: path.toString() },
    );
  }
}

/**
 * Serialises a file, symlink or directory on disk as a NAR, byte-identical to `nix-store --dump`.
 * Entry names are handled as raw bytes, so non-UTF-8 names are kept.
 */
export async function* narFromPath(path: string): AsyncGenerator<Buffer> {
  yield MAGIC;
  yield* pathNode(Buffer.from(path.length > 1 ? path.replace(/\/+$/, '') : path));
}

/** The NAR of a path (string) or tree as a Node Readable stream. */
export function narReadable(source: NarSource): Readable {
  return Readable.from(typeof source === 'string' ? narFromPath(source) : narFromTree(source), {
    objectMode: false,
  });
}

/** Hashes a byte stream with sha256 while streaming; returns the hash and the byte count. */
export async function hashStream(
  stream: AsyncIterable<Uint8Array>,
  opts: { signal?: AbortSignal } = {},
): Promise<NarHashResult> {
  const h = createHash('sha256');
  let size = 0;
  const check = (): void => {
    if (opts.signal?.aborted)
      throw new LadingError(ErrorCode.Aborted, 'NAR hashing aborted', {}, { cause: opts.signal.reason });
  };
  check();
  for await (const chunk of stream) {
    check();
    h.update(chunk);
    size += chunk.length;
  }
  return { hash: { algo: 'sha256', bytes: h.digest() }, size };
}

/** The NAR hash and size of a path on disk (as `nix-hash --type sha256 PATH`) or of a tree. */
export function narHash(source: NarSource, opts: { signal?: AbortSignal } = {}): Promise<NarHashResult> {
  return hashStream(typeof source === 'string' ? narFromPath(source) : narFromTree(source), opts);
}

/** The NAR hash of a tree (what `outputHashMode = "recursive"` checks). */
export function narHashOfTree(node: NarNode, opts: { signal?: AbortSignal } = {}): Promise<NarHashResult> {
  return hashStream(narFromTree(node), opts);
}

/** The NAR hash of a path on disk (as `nix-hash --type sha256 PATH`). */
export function narHashOfPath(path: string, opts: { signal?: AbortSignal } = {}): Promise<NarHashResult> {
  return hashStream(narFromPath(path), opts);
}
