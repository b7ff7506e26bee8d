import { execFile } from 'node:child_process';
import { chmod, lchown, link, lstat, lutimes, mkdir, readdir, rm, symlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { ioError } from '../util/index.ts';
import { FileSink } from './file-sink.ts';
import { openLayer } from './layer-stream.ts';
import { hardlinkTarget, parentOf, parseWhiteout, validWhiteoutName, type Whiteout } from './paths.ts';
import { hasDotDot, pipeBody, readTar, type TarEntry } from './tar-read.ts';
import type { EntryProblem, LayerBlob } from './types.ts';
import { clip, XattrWriter } from './xattr-writer.ts';

export interface UnpackOptions {
  signal?: AbortSignal;
  /** Called for every refused or skipped entry (also collected in the result). */
  onProblem?: (p: EntryProblem) => void;
  /** Apply uid/gid (default: when running as root). */
  applyOwners?: boolean;
  /** Only entries (and whiteouts) whose normalised path passes are applied. */
  include?: (path: string) => boolean;
  /**
   * Apply extended attributes (default true). They are written with `setfattr` (Debian package
   * attr): without it, an image that has some fails, unless this is false.
   */
  xattrs?: boolean;
}

export interface UnpackResult {
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  devices: number;
  bytes: number;
  /** Refused (unsafe) and skipped (unsupported here, e.g. devices as non-root) entries, by name. */
  problems: EntryProblem[];
  /** Owners recorded but not applied (not root): path → uid:gid. */
  owners: Record<string, string>;
}

/** Made at the call: at the top, it would load node:child_process at every command's start. */
const execFileP = (file: string, args: string[]) => promisify(execFile)(file, args);

/**
 * Unpacks image layers (bottom first) into `dest`, applying whiteouts and opaque directories as the
 * OCI image spec says, confined to `dest`: a parent component is never followed through a symlink,
 * hardlinks only point at entries already extracted, `..` and the root replaced by a non-directory
 * are refused (each refusal is named), device nodes only as root. Symlink targets are written
 * exactly as in the archive. Modes (with setuid/setgid/sticky), owners (as root) and mtimes are kept.
 */
export async function unpackRootfs(
  layers: LayerBlob[],
  dest: string,
  opts: UnpackOptions = {},
): Promise<UnpackResult> {
  await mkdir(dest, { recursive: true });
  const writer = new RootfsWriter(dest, opts);
  for (let li = 0; li < layers.length; li++) await writer.layer(li, layers[li]!);
  return writer.finish();
}

type Stat = Awaited<ReturnType<typeof lstat>>;

/** Writes one layer after the other into the destination: a method per entry type. */
class RootfsWriter {
  readonly result: UnpackResult = {
    files: 0,
    dirs: 0,
    symlinks: 0,
    hardlinks: 0,
    devices: 0,
    bytes: 0,
    problems: [],
    owners: {},
  };
  readonly #dest: string;
  readonly #opts: UnpackOptions;
  readonly #asRoot: boolean;
  readonly #xattrs: XattrWriter;
  /** Every path extracted so far (hardlink targets must be among them). */
  readonly #extracted = new Set<string>();
  /** Directory metadata, applied at the end (children change mtimes; modes may forbid writing). */
  readonly #dirMeta = new Map<string, TarEntry>();
  /** The layer being written: its index, its name in messages, the paths it wrote. */
  #li = 0;
  #where = '';
  #createdHere = new Set<string>();

  constructor(dest: string, opts: UnpackOptions) {
    this.#dest = dest;
    this.#opts = opts;
    this.#asRoot = opts.applyOwners ?? process.getuid?.() === 0;
    this.#xattrs = new XattrWriter(opts.xattrs !== false);
  }

  async layer(li: number, layer: LayerBlob): Promise<void> {
    this.#li = li;
    this.#where = `layer ${li} (${layer.digest})`;
    this.#createdHere = new Set();
    const stream = await openLayer(layer, this.#where, this.#opts.signal);
    for await (const e of readTar(stream, this.#where)) await this.#entry(e);
  }

  /** Directory metadata last, and the summary of the attributes left out. */
  async finish(): Promise<UnpackResult> {
    const skipped = this.#xattrs.summary();
    if (skipped) this.#problemIn(skipped.layer, skipped.entry, 'E_SKIPPED', skipped.message);
    await this.#applyDirMeta();
    return this.result;
  }

  #problemIn(layer: number, entry: string, code: EntryProblem['code'], message: string): void {
    recordProblem(this.result, this.#opts.onProblem, { layer, entry, code, message });
  }

  /** Reports `e` as refused (unsafe): `what` says which entry, `why` the rest of the sentence. */
  #refuse(e: TarEntry, what: string, why: string): false {
    this.#problemIn(
      this.#li,
      e.rawName,
      'E_UNSAFE_PATH',
      `${what} ${JSON.stringify(e.rawName)} in ${this.#where} ${why}`,
    );
    return false;
  }

  #skip(e: TarEntry, code: 'E_SKIPPED' | 'E_UNSUPPORTED', message: string): false {
    this.#problemIn(this.#li, e.rawName, code, message);
    return false;
  }

  async #entry(e: TarEntry): Promise<void> {
    const rel = e.name;
    if (rel === undefined || hasDotDot(e.rawName)) {
      this.#refuse(e, 'entry', 'points outside the root (..); refused');
      return;
    }
    if (this.#opts.include && rel !== '' && !this.#opts.include(rel)) return;
    let applied: boolean;
    try {
      applied = await this.#apply(e, rel);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENAMETOOLONG')
        throw ioError(err, `${join(this.#dest, rel)} (entry ${JSON.stringify(e.rawName)} in ${this.#where})`);
      // A name (or one component) longer than this filesystem takes.
      this.#refuse(e, 'entry', 'has a name too long for this filesystem; refused');
      e.body.resume();
      return;
    }
    if (!applied) return;
    this.#extracted.add(rel);
    this.#createdHere.add(rel);
    if (!this.#asRoot && (e.uid !== 0 || e.gid !== 0)) this.result.owners[rel] = `${e.uid}:${e.gid}`;
  }

  /** Applies one entry; false when it was refused or skipped (already reported), or a whiteout. */
  async #apply(e: TarEntry, rel: string): Promise<boolean> {
    const whiteout = parseWhiteout(rel);
    if (whiteout) return this.#whiteout(e, rel, whiteout);
    if (rel === '') {
      if (e.type !== 'directory')
        return this.#refuse(e, 'entry', `would replace the root with a ${e.type}; refused`);
      this.#dirMeta.set('', e);
      return false;
    }
    if (!(await this.#ensureParents(rel)))
      return this.#refuse(e, 'entry', 'would be written through a symlink; refused');
    if (!validId(e.uid) || !validId(e.gid)) {
      // A PAX record may say anything; a Linux owner is 32 bits (and 2^32-1 means "none").
      return this.#refuse(
        e,
        'entry',
        `has an owner no system can have (uid ${clip(String(e.uid))}, gid ${clip(String(e.gid))}); refused`,
      );
    }
    const abs = join(this.#dest, rel);
    if (!(await this.#write(e, rel, abs))) return false;
    await this.#xattrs.apply(abs, e, this.#li, (msg) => this.#skip(e, 'E_SKIPPED', msg));
    return true;
  }

  #write(e: TarEntry, rel: string, abs: string): Promise<boolean> {
    switch (e.type) {
      case 'directory':
        return this.#directory(e, rel, abs);
      case 'file':
        return this.#file(e, abs);
      case 'symlink':
        return this.#symlink(e, abs);
      case 'link':
        return this.#hardlink(e, abs);
      case 'character-device':
      case 'block-device':
      case 'fifo':
        return this.#device(e, abs);
      default:
        return Promise.resolve(
          this.#skip(
            e,
            'E_UNSUPPORTED',
            `entry ${JSON.stringify(e.rawName)} in ${this.#where} has an unsupported type; skipped`,
          ),
        );
    }
  }

  /** A whiteout deletes from the disk what lower layers wrote; it is never an entry itself. */
  async #whiteout(e: TarEntry, rel: string, w: Whiteout): Promise<false> {
    if (!(await this.#ensureParents(rel)))
      return this.#refuse(e, 'whiteout', 'goes through a symlink; refused');
    if ('opaque' in w) {
      await clearOpaque(join(this.#dest, w.opaque), w.opaque, this.#createdHere);
      return false;
    }
    if (!validWhiteoutName(w.name))
      return this.#refuse(e, 'whiteout', `names ${JSON.stringify(w.name)}; refused`);
    // Names it deleted stay in `extracted`: a hardlink to one finds nothing there and is refused.
    await rm(join(this.#dest, w.deletes), { recursive: true, force: true });
    return false;
  }

  async #directory(e: TarEntry, rel: string, abs: string): Promise<boolean> {
    await removeExisting(abs, true);
    await mkdir(abs, { recursive: true, mode: 0o755 });
    this.#dirMeta.set(rel, e);
    this.result.dirs++;
    return true;
  }

  async #file(e: TarEntry, abs: string): Promise<boolean> {
    await removeExisting(abs, false);
    await pipeBody(e, new FileSink(abs, 0o600));
    await applyMeta(abs, e, this.#asRoot, false);
    this.result.files++;
    this.result.bytes += e.size;
    return true;
  }

  async #symlink(e: TarEntry, abs: string): Promise<boolean> {
    await removeExisting(abs, false);
    await symlink(e.linkname, abs);
    if (this.#asRoot) await lchown(abs, e.uid, e.gid).catch(() => {});
    await lutimes(abs, e.mtime, e.mtime).catch(() => {});
    this.result.symlinks++;
    return true;
  }

  async #hardlink(e: TarEntry, abs: string): Promise<boolean> {
    const target = hardlinkTarget(e.linkname);
    const to = JSON.stringify(e.linkname);
    if (target === undefined || !this.#extracted.has(target))
      return this.#refuse(
        e,
        'hardlink',
        `points at ${to}, which is not an entry extracted inside the root; refused`,
      );
    // What is there now (a later entry or whiteout may have replaced or deleted the target, or a
    // parent of it), checked without creating or following anything.
    const there = (await this.#parentsAreDirs(target))
      ? await lstat(join(this.#dest, target)).catch(() => undefined)
      : undefined;
    if (!there || there.isSymbolicLink() || there.isDirectory()) {
      const now = there ? `now a ${there.isDirectory() ? 'directory' : 'symlink'}` : 'no longer there';
      return this.#refuse(
        e,
        'hardlink',
        `points at ${to}, which is ${now} (or goes through a symlink); refused`,
      );
    }
    await removeExisting(abs, false);
    try {
      await link(join(this.#dest, target), abs);
    } catch (err) {
      return this.#refuse(e, 'hardlink', `to ${to} failed: ${(err as NodeJS.ErrnoException).code}`);
    }
    this.result.hardlinks++;
    return true;
  }

  /** Device nodes (as root) and FIFOs, made by mknod(1). */
  async #device(e: TarEntry, abs: string): Promise<boolean> {
    const raw = JSON.stringify(e.rawName);
    if (!this.#asRoot && e.type !== 'fifo')
      return this.#skip(
        e,
        'E_SKIPPED',
        `device ${raw} in ${this.#where} skipped: creating devices needs root`,
      );
    await removeExisting(abs, false);
    const kind = e.type === 'fifo' ? 'p' : e.type === 'character-device' ? 'c' : 'b';
    const args = kind === 'p' ? [abs, 'p'] : [abs, kind, String(e.devmajor), String(e.devminor)];
    try {
      await execFileP('mknod', ['-m', (e.mode & 0o7777).toString(8), ...args]);
      await applyMeta(abs, e, this.#asRoot, false);
      this.result.devices++;
    } catch (err) {
      return this.#skip(
        e,
        'E_SKIPPED',
        `device ${raw} in ${this.#where} could not be created: ${(err as Error).message}`,
      );
    }
    return true;
  }

  /** Makes sure every parent of `rel` is a real directory inside dest; false if one is a symlink. */
  async #ensureParents(rel: string): Promise<boolean> {
    let cur = this.#dest;
    for (const part of ancestorParts(rel)) {
      cur = join(cur, part);
      let st: Stat | undefined;
      try {
        st = await lstat(cur);
      } catch {
        st = undefined;
      }
      if (st?.isSymbolicLink()) return false;
      if (st && !st.isDirectory()) await rm(cur, { force: true });
      if (!st?.isDirectory()) await mkdir(cur, { mode: 0o755 });
    }
    return true;
  }

  /** Whether every component of `rel` up to (not including) its last is a real directory in dest. */
  async #parentsAreDirs(rel: string): Promise<boolean> {
    let cur = this.#dest;
    for (const part of ancestorParts(rel)) {
      cur = join(cur, part);
      const st = await lstat(cur).catch(() => undefined);
      if (!st?.isDirectory()) return false;
    }
    return true;
  }

  /**
   * Directory metadata last, deepest first, so mtimes stick and read-only dirs do not block
   * writes. Only where the directory still is, with every parent a real directory: a later layer
   * may have replaced a parent by a symlink, and metadata must never be applied through it.
   */
  async #applyDirMeta(): Promise<void> {
    const dest = this.#dest;
    const realDir = new Map<string, Promise<boolean>>([['', Promise.resolve(true)]]);
    const isRealDir = (d: string): Promise<boolean> => {
      let known = realDir.get(d);
      if (!known) {
        known = isRealDir(parentOf(d)).then(
          async (ok) => ok && ((await lstat(join(dest, d)).catch(() => undefined))?.isDirectory() ?? false),
        );
        realDir.set(d, known);
      }
      return known;
    };
    const dirs = [...this.#dirMeta.keys()].sort((a, b) => b.split('/').length - a.split('/').length);
    for (const d of dirs) {
      if (!(await isRealDir(d))) continue;
      const e = this.#dirMeta.get(d)!;
      await applyMeta(d === '' ? dest : join(dest, d), e, this.#asRoot, true);
      if (!this.#asRoot && (e.uid !== 0 || e.gid !== 0)) this.result.owners[d] = `${e.uid}:${e.gid}`;
    }
  }
}

/** The components of `rel` before its last one. */
function ancestorParts(rel: string): string[] {
  return rel.split('/').slice(0, -1);
}

async function removeExisting(abs: string, keepDir: boolean): Promise<void> {
  let st: Stat;
  try {
    st = await lstat(abs);
  } catch {
    return;
  }
  if (keepDir && st.isDirectory()) return;
  await rm(abs, { recursive: true, force: true });
}

/** Whether a uid or gid fits Linux's 32 bits (4294967295 is (uid_t)-1, "no change", refused). */
function validId(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0 && n < 0xffffffff;
}

async function applyMeta(abs: string, e: TarEntry, asRoot: boolean, isDir: boolean): Promise<void> {
  // chown first: it clears setuid/setgid, so the mode comes after.
  if (asRoot) await lchown(abs, e.uid, e.gid);
  await chmod(abs, e.mode & 0o7777);
  if (isDir || e.type !== 'symlink') await utimes(abs, e.mtime, e.mtime);
}

/**
 * An opaque marker hides what lower layers put in `dir`, but not what this layer put there (the
 * marker may come after its siblings in the tar).
 */
async function clearOpaque(absDir: string, relDir: string, createdHere: Set<string>): Promise<void> {
  let names: string[];
  try {
    names = await readdir(absDir);
  } catch {
    return;
  }
  for (const n of names) {
    const rel = relDir ? `${relDir}/${n}` : n;
    const abs = join(absDir, n);
    if (createdHere.has(rel)) {
      const st = await lstat(abs);
      if (st.isDirectory()) await clearOpaque(abs, rel, createdHere);
      continue;
    }
    await rm(abs, { recursive: true, force: true });
  }
}

/** Adds a refused or skipped entry to a result and tells the caller's `onProblem`. */
export function recordProblem(
  result: Pick<UnpackResult, 'problems'>,
  onProblem: ((p: EntryProblem) => void) | undefined,
  p: EntryProblem,
): void {
  result.problems.push(p);
  onProblem?.(p);
}

/** Throws when an unpack (export, extract) refused entries (the result would be incomplete). */
export function assertComplete(r: Pick<UnpackResult, 'problems'>, dest: string): void {
  const refused = r.problems.filter((p) => p.code === 'E_UNSAFE_PATH');
  if (refused.length) {
    throw new LadingError(
      ErrorCode.UnsafePath,
      `${refused.length} unsafe entr${refused.length === 1 ? 'y was' : 'ies were'} refused while unpacking into ${dest}: ${refused
        .slice(0, 5)
        .map((p) => p.entry)
        .join(', ')}${refused.length > 5 ? ', …' : ''}`,
      { path: dest },
    );
  }
}
