import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Readable } from 'node:stream';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { GO_TAR_END, goTarHeader, goTarPadding } from './go-tar.ts';

/**
 * Reproducible layer tars, following nix2container's rules (its `nix/tar.go`): every file of
 * every input path goes into one tree keyed by its destination name, which is then written depth
 * first with children in byte order, absolute names without a trailing slash, synthetic 0755
 * parents, owner 0/0 root/root, mtime 1, symlinks 0777, Go archive/tar header encoding.
 */

/** Overrides for the files whose *source* path matches `regex`. */
export interface PermRule {
  regex: string;
  mode?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  /** Where the rule came from (`perms[2]`), for messages. */
  where?: string;
}

export interface TarPathOptions {
  /** Rewrites each source path into its destination name (Go `ReplaceAllString`); `""` drops it. */
  rewrite?: { regex: string; repl: string };
  perms?: PermRule[];
  /**
   * How matching `perms` rules combine. `strict` (lading build): each field from the one rule
   * that sets it, two rules setting one field differently are an error. `nix2container` (its
   * image.json): every matching rule applies in order, each setting uid and gid (0 when absent)
   * and mode, uname, gname when given, so later rules win (nix2container `appendFileToTar`).
   */
  permsStyle?: 'strict' | 'nix2container';
}

/** One input path (a store path, a directory placed at `/`, a file). */
export interface TarPath {
  path: string;
  options?: TarPathOptions;
  /** Where the path came from (`layers[1].paths[0]`), for messages. */
  where?: string;
}

type Kind = '0' | '2' | '5';

const SMALL_FILE = 256 * 1024;
/** Read size for larger files: an eighth of the chunks the default 64 KiB gives (a rebuild ~20% faster). */
const READ_BLOCK = 512 << 10;

interface Entry {
  kind: Kind;
  mode: number;
  size: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  linkname?: string;
  /** Absolute file-system path to read a regular file from. */
  file?: string;
  /** The file's identity and change times (device, inode, mtime, ctime in ns), for fingerprints. */
  stamp?: string;
  source: string;
}

interface Node {
  name: string;
  children: Map<string, Node>;
  entry?: Entry;
}

/** The walked tree of one layer: what {@link reproducibleTarStream} writes. */
export interface TarPlan {
  root: Node;
}

function specError(where: string | undefined, msg: string, path?: string): LadingError {
  return new LadingError(ErrorCode.BadArgument, `${where ? `${where}: ` : ''}${msg}`, { path });
}

/** Go regexp replacement syntax (`$1`, `${1}`, `${name}`) → JavaScript's. */
function jsReplacement(repl: string): string {
  return repl.replace(
    /\$\{(\w+)\}|\$(\w+)|\$\$|\$/g,
    (_m, braced: string | undefined, bare: string | undefined) => {
      const name = braced ?? bare;
      if (name === undefined) return '$$';
      return /^\d+$/.test(name) ? `$${name}` : `$<${name}>`;
    },
  );
}

function compile(regex: string, where: string | undefined, flags = ''): RegExp {
  try {
    return new RegExp(regex, flags);
  } catch (err) {
    throw specError(where, `invalid regular expression ${JSON.stringify(regex)}: ${(err as Error).message}`);
  }
}

interface Compiled {
  rewrite?: { re: RegExp; repl: string };
  perms: { re: RegExp; rule: PermRule }[];
  lastWins: boolean;
}

/** Where a layer input's own path lands in the tar (after its rewrite); `''` when it is dropped. */
export function tarDestination(p: TarPath): string {
  const c = compileOptions(p);
  if (!c.rewrite) return p.path;
  c.rewrite.re.lastIndex = 0;
  return p.path.replace(c.rewrite.re, c.rewrite.repl);
}

function compileOptions(p: TarPath): Compiled {
  const o = p.options ?? {};
  return {
    rewrite: o.rewrite
      ? { re: compile(o.rewrite.regex, p.where, 'g'), repl: jsReplacement(o.rewrite.repl) }
      : undefined,
    perms: (o.perms ?? []).map((rule) => ({ re: compile(rule.regex, rule.where ?? p.where), rule })),
    lastWins: o.permsStyle === 'nix2container',
  };
}

const PERM_FIELDS = ['mode', 'uid', 'gid', 'uname', 'gname'] as const;

function applyPerms(c: Compiled, source: string, e: Entry): void {
  if (c.lastWins) {
    for (const { re, rule } of c.perms) {
      if (!re.test(source)) continue;
      e.uid = rule.uid ?? 0;
      e.gid = rule.gid ?? 0;
      if (rule.uname !== undefined && rule.uname !== '') e.uname = rule.uname;
      if (rule.gname !== undefined && rule.gname !== '') e.gname = rule.gname;
      if (rule.mode !== undefined) e.mode = rule.mode;
    }
    return;
  }
  const set: Partial<Record<(typeof PERM_FIELDS)[number], { v: unknown; where?: string }>> = {};
  for (const { re, rule } of c.perms) {
    if (!re.test(source)) continue;
    for (const f of PERM_FIELDS) {
      const v = rule[f];
      if (v === undefined) continue;
      const prev = set[f];
      if (prev && prev.v !== v) {
        throw specError(
          rule.where,
          `conflicting perms for ${source}: ${f} is ${JSON.stringify(prev.v)} in ${prev.where ?? 'another rule'} and ${JSON.stringify(v)} here`,
          source,
        );
      }
      set[f] = { v, where: rule.where };
    }
  }
  if (set.mode) e.mode = set.mode.v as number;
  if (set.uid) e.uid = set.uid.v as number;
  if (set.gid) e.gid = set.gid.v as number;
  if (set.uname) e.uname = set.uname.v as string;
  if (set.gname) e.gname = set.gname.v as string;
}

function child(parent: Node, comp: string): Node {
  let n = parent.children.get(comp);
  if (!n) {
    const name = parent.name === '' ? comp : parent.name === '/' ? `/${comp}` : `${parent.name}/${comp}`;
    n = { name, children: new Map() };
    parent.children.set(comp, n);
  }
  return n;
}

function sameEntry(a: Entry, b: Entry): boolean {
  return (
    a.kind === b.kind &&
    a.mode === b.mode &&
    (a.kind !== '0' || a.size === b.size) &&
    a.linkname === b.linkname &&
    a.uid === b.uid &&
    a.gid === b.gid &&
    a.uname === b.uname &&
    a.gname === b.gname
  );
}

function insert(root: Node, dest: string, e: Entry, where: string | undefined): void {
  const comps = dest.split('/').filter((c) => c !== '');
  let node = dest.startsWith('/') ? child(root, '/') : root;
  for (const c of comps) node = child(node, c);
  if (node === root) return;
  if (node.entry && !sameEntry(node.entry, e)) {
    throw specError(
      where,
      `${e.source} and ${node.entry.source} both go to ${node.name} with different type, mode, size or owner`,
      dest,
    );
  }
  if (!node.entry && node.children.size > 0 && e.kind !== '5') {
    throw specError(where, `${e.source} goes to ${node.name}, which is a directory in this layer`, dest);
  }
  // The later input wins (same type, mode, size and owner; nix2container keeps the last too).
  node.entry = e;
}

async function walk(root: Node, p: TarPath, c: Compiled, source: string, cwd: string): Promise<void> {
  const abs = resolve(cwd, source);
  let st: BigIntStats;
  try {
    st = await lstat(abs, { bigint: true });
  } catch (err) {
    throw specError(p.where, `cannot read ${source}: ${(err as NodeJS.ErrnoException).code ?? err}`, source);
  }
  let kind: Kind;
  if (st.isDirectory()) kind = '5';
  else if (st.isSymbolicLink()) kind = '2';
  else if (st.isFile()) kind = '0';
  else throw specError(p.where, `${source} is not a regular file, directory or symlink`, source);
  const e: Entry = {
    kind,
    mode: kind === '2' ? 0o777 : Number(st.mode) & 0o7777,
    size: kind === '0' ? Number(st.size) : 0,
    uid: 0,
    gid: 0,
    uname: 'root',
    gname: 'root',
    source,
  };
  if (kind === '2') e.linkname = await readlink(abs);
  if (kind === '0') {
    e.file = abs;
    e.stamp = `${st.dev}:${st.ino}:${st.mtimeNs}:${st.ctimeNs}`;
  }
  applyPerms(c, source, e);
  let dest = source;
  if (c.rewrite) {
    c.rewrite.re.lastIndex = 0;
    dest = source.replace(c.rewrite.re, c.rewrite.repl);
  }
  if (dest !== '') insert(root, dest, e, p.where);
  if (kind === '5') {
    // Byte order, as Go's filepath.Walk: which of two sources rewritten to one name comes last
    // must not depend on the file system's order.
    const names = (await readdir(abs)).sort(byBytes);
    for (const name of names) {
      await walk(root, p, c, source.endsWith('/') ? `${source}${name}` : `${source}/${name}`, cwd);
    }
  }
}

/**
 * Walks the input paths (relative ones against `cwd`) into the tree one layer holds. Fails with
 * a `LadingError` naming the input when a path is missing, two inputs disagree about one
 * destination, or perms rules conflict.
 */
export async function planReproducibleTar(paths: TarPath[], opts: { cwd?: string } = {}): Promise<TarPlan> {
  const root: Node = { name: '', children: new Map() };
  const cwd = opts.cwd ?? process.cwd();
  for (const p of paths) await walk(root, p, compileOptions(p), p.path, cwd);
  return { root };
}

function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

async function* chunks(plan: TarPlan): AsyncGenerator<Buffer> {
  const stack: Node[] = [...plan.root.children.values()].sort((a, b) => byBytes(b.name, a.name));
  while (stack.length > 0) {
    const n = stack.pop()!;
    const e = n.entry;
    yield goTarHeader({
      name: n.name,
      typeflag: e?.kind ?? '5',
      mode: e?.mode ?? 0o755,
      size: e?.size ?? 0,
      uid: e?.uid ?? 0,
      gid: e?.gid ?? 0,
      uname: e?.uname ?? 'root',
      gname: e?.gname ?? 'root',
      mtime: 1,
      linkname: e?.linkname,
    });
    if (e?.kind === '0' && e.file && e.size <= SMALL_FILE) {
      // Small files in one read (most of a store path): far fewer chunks than a stream gives.
      const data = await readFile(e.file);
      if (data.length !== e.size) {
        throw new LadingError(ErrorCode.Io, `${e.source} changed while it was being tarred`, {
          path: e.source,
        });
      }
      yield data;
      yield goTarPadding(e.size);
    } else if (e?.kind === '0' && e.file) {
      let got = 0;
      for await (const chunk of createReadStream(e.file, { highWaterMark: READ_BLOCK })) {
        const b = chunk as Buffer;
        got += b.length;
        if (got > e.size) break;
        yield b;
      }
      if (got !== e.size) {
        throw new LadingError(ErrorCode.Io, `${e.source} changed while it was being tarred`, {
          path: e.source,
        });
      }
      yield goTarPadding(e.size);
    }
    const kids = [...n.children.values()].sort((a, b) => byBytes(b.name, a.name));
    stack.push(...kids);
  }
  yield GO_TAR_END;
}

/**
 * A key for the tar a plan gives without reading any file: every entry's name, type, mode,
 * owners, size, link target and, for files, device, inode, mtime and ctime (a write changes the
 * ctime). Equal fingerprints mean the same tar unless a file was changed behind the kernel's
 * back; readers of a layer still verify its digest.
 */
export function planFingerprint(plan: TarPlan): string {
  const h = createHash('sha256');
  const stack: Node[] = [plan.root];
  while (stack.length > 0) {
    const n = stack.pop()!;
    const e = n.entry;
    h.update(
      JSON.stringify([
        n.name,
        e?.kind,
        e?.mode,
        e?.uid,
        e?.gid,
        e?.uname,
        e?.gname,
        e?.size,
        e?.linkname,
        e?.stamp,
      ]),
    );
    h.update('\n');
    stack.push(...[...n.children.values()].sort((a, b) => byBytes(b.name, a.name)));
  }
  return h.digest('hex');
}

/** The layer tar of a plan, as a fresh stream. */
export function reproducibleTarStream(plan: TarPlan): Readable {
  return Readable.from(chunks(plan), { objectMode: false });
}

/** Plans and streams in one step (the layer re-created on demand). */
export function reproducibleTar(paths: TarPath[], opts: { cwd?: string } = {}): Readable {
  async function* all(): AsyncGenerator<Buffer> {
    yield* chunks(await planReproducibleTar(paths, opts));
  }
  return Readable.from(all(), { objectMode: false });
}
