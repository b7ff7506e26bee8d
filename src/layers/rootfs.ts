import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, readdir, rm, symlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { ioError } from '../util/index.ts';
import { openLayer } from './layer-stream.ts';
import { hasDotDot, pipeBody, readTar, type TarEntry } from './tar-read.ts';
import type { EntryProblem, LayerBlob } from './types.ts';
import { WHITEOUT_OPAQUE, WHITEOUT_PREFIX } from './whiteout.ts';

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

const execFileP = promisify(execFile);

function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i === -1 ? '' : p.slice(0, i);
}

function baseOf(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

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
  const asRoot = opts.applyOwners ?? process.getuid?.() === 0;
  const result: UnpackResult = {
    files: 0,
    dirs: 0,
    symlinks: 0,
    hardlinks: 0,
    devices: 0,
    bytes: 0,
    problems: [],
    owners: {},
  };
  await mkdir(dest, { recursive: true });
  const xattrs = new XattrWriter(opts.xattrs !== false);
  /** Every path extracted so far (hardlink targets must be among them). */
  const extracted = new Set<string>();
  /** Directory metadata, applied at the end (children change mtimes; modes may forbid writing). */
  const dirMeta = new Map<string, TarEntry>();

  const problem = (layer: number, entry: string, code: EntryProblem['code'], message: string): void => {
    const p = { layer, entry, code, message };
    result.problems.push(p);
    opts.onProblem?.(p);
  };

  /** Makes sure every parent of `rel` is a real directory inside dest; false if one is a symlink. */
  const ensureParents = async (rel: string): Promise<boolean> => {
    const parts = rel.split('/');
    let cur = dest;
    for (let i = 0; i < parts.length - 1; i++) {
      cur = join(cur, parts[i]!);
      let st: Awaited<ReturnType<typeof lstat>> | undefined;
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
  };

  const removeExisting = async (abs: string, keepDir: boolean): Promise<void> => {
    let st: Awaited<ReturnType<typeof lstat>> | undefined;
    try {
      st = await lstat(abs);
    } catch {
      return;
    }
    if (keepDir && st.isDirectory()) return;
    await rm(abs, { recursive: true, force: true });
  };

  /** Whether every component of `rel` up to (not including) its last is a real directory in dest. */
  const parentsAreDirs = async (rel: string): Promise<boolean> => {
    const parts = rel.split('/');
    let cur = dest;
    for (let i = 0; i < parts.length - 1; i++) {
      cur = join(cur, parts[i]!);
      const st = await lstat(cur).catch(() => undefined);
      if (!st?.isDirectory()) return false;
    }
    return true;
  };

  for (let li = 0; li < layers.length; li++) {
    const layer = layers[li]!;
    const createdHere = new Set<string>();
    const where = `layer ${li} (${layer.digest})`;

    /** Applies one entry; false when it was refused or skipped (already reported). */
    const apply = async (e: TarEntry, rel: string): Promise<boolean> => {
      const raw = e.rawName;
      const base = baseOf(rel);
      // Whiteouts.
      if (base.startsWith(WHITEOUT_PREFIX)) {
        const dir = parentOf(rel);
        if (!(await ensureParents(rel))) {
          problem(
            li,
            raw,
            'E_UNSAFE_PATH',
            `whiteout ${JSON.stringify(raw)} in ${where} goes through a symlink; refused`,
          );
          return false;
        }
        if (base === WHITEOUT_OPAQUE) {
          await clearOpaque(join(dest, dir), dir, createdHere);
          return false;
        }
        const target = base.slice(WHITEOUT_PREFIX.length);
        if (target === '' || target === '.' || target === '..') {
          problem(
            li,
            raw,
            'E_UNSAFE_PATH',
            `whiteout ${JSON.stringify(raw)} in ${where} names ${JSON.stringify(target)}; refused`,
          );
          return false;
        }
        // Names it deleted stay in `extracted`: a hardlink to one finds nothing there and is refused.
        await rm(join(dest, dir ? `${dir}/${target}` : target), { recursive: true, force: true });
        return false;
      }
      if (rel === '') {
        if (e.type !== 'directory') {
          problem(
            li,
            raw,
            'E_UNSAFE_PATH',
            `entry ${JSON.stringify(raw)} in ${where} would replace the root with a ${e.type}; refused`,
          );
        } else dirMeta.set('', e);
        return false;
      }
      if (!(await ensureParents(rel))) {
        problem(
          li,
          raw,
          'E_UNSAFE_PATH',
          `entry ${JSON.stringify(raw)} in ${where} would be written through a symlink; refused`,
        );
        return false;
      }
      if (!validId(e.uid) || !validId(e.gid)) {
        // A PAX record may say anything; a Linux owner is 32 bits (and 2^32-1 means "none").
        problem(
          li,
          raw,
          'E_UNSAFE_PATH',
          `entry ${JSON.stringify(raw)} in ${where} has an owner no system can have (uid ${clip(String(e.uid))}, gid ${clip(String(e.gid))}); refused`,
        );
        return false;
      }
      const abs = join(dest, rel);
      switch (e.type) {
        case 'directory': {
          await removeExisting(abs, true);
          await mkdir(abs, { recursive: true, mode: 0o755 });
          dirMeta.set(rel, e);
          result.dirs++;
          break;
        }
        case 'file': {
          await removeExisting(abs, false);
          await pipeBody(e, createWriteStream(abs, { flags: 'wx', mode: 0o600, highWaterMark: 1 << 20 }));
          await applyMeta(abs, e, asRoot, false);
          result.files++;
          result.bytes += e.size;
          break;
        }
        case 'symlink': {
          await removeExisting(abs, false);
          await symlink(e.linkname, abs);
          if (asRoot) await lchown(abs, e.uid, e.gid).catch(() => {});
          await lutimes(abs, e.mtime, e.mtime).catch(() => {});
          result.symlinks++;
          break;
        }
        case 'link': {
          const target = hasDotDot(e.linkname) ? undefined : normaliseLink(e.linkname);
          if (target === undefined || !extracted.has(target)) {
            problem(
              li,
              raw,
              'E_UNSAFE_PATH',
              `hardlink ${JSON.stringify(raw)} in ${where} points at ${JSON.stringify(e.linkname)}, which is not an entry extracted inside the root; refused`,
            );
            return false;
          }
          // What is there now (a later entry or whiteout may have replaced or deleted the target,
          // or a parent of it), checked without creating or following anything.
          const there = (await parentsAreDirs(target))
            ? await lstat(join(dest, target)).catch(() => undefined)
            : undefined;
          if (!there || there.isSymbolicLink() || there.isDirectory()) {
            problem(
              li,
              raw,
              'E_UNSAFE_PATH',
              `hardlink ${JSON.stringify(raw)} in ${where} points at ${JSON.stringify(e.linkname)}, which is ${there ? `now a ${there.isDirectory() ? 'directory' : 'symlink'}` : 'no longer there'} (or goes through a symlink); refused`,
            );
            return false;
          }
          await removeExisting(abs, false);
          try {
            await link(join(dest, target), abs);
          } catch (err) {
            problem(
              li,
              raw,
              'E_UNSAFE_PATH',
              `hardlink ${JSON.stringify(raw)} in ${where} to ${JSON.stringify(e.linkname)} failed: ${(err as NodeJS.ErrnoException).code}`,
            );
            return false;
          }
          result.hardlinks++;
          break;
        }
        case 'character-device':
        case 'block-device':
        case 'fifo': {
          if (!asRoot && e.type !== 'fifo') {
            problem(
              li,
              raw,
              'E_SKIPPED',
              `device ${JSON.stringify(raw)} in ${where} skipped: creating devices needs root`,
            );
            return false;
          }
          await removeExisting(abs, false);
          const kind = e.type === 'fifo' ? 'p' : e.type === 'character-device' ? 'c' : 'b';
          const args = kind === 'p' ? [abs, 'p'] : [abs, kind, String(e.devmajor), String(e.devminor)];
          try {
            await execFileP('mknod', ['-m', (e.mode & 0o7777).toString(8), ...args]);
            await applyMeta(abs, e, asRoot, false);
            result.devices++;
          } catch (err) {
            problem(
              li,
              raw,
              'E_SKIPPED',
              `device ${JSON.stringify(raw)} in ${where} could not be created: ${(err as Error).message}`,
            );
            return false;
          }
          break;
        }
        default:
          problem(
            li,
            raw,
            'E_UNSUPPORTED',
            `entry ${JSON.stringify(raw)} in ${where} has an unsupported type; skipped`,
          );
          return false;
      }
      await xattrs.apply(abs, e, li, (msg) => problem(li, raw, 'E_SKIPPED', msg));
      return true;
    };

    const stream = await openLayer(layer, where, opts.signal);
    for await (const e of readTar(stream, where)) {
      const raw = e.rawName;
      const rel = e.name;
      if (rel === undefined || hasDotDot(raw)) {
        problem(
          li,
          raw,
          'E_UNSAFE_PATH',
          `entry ${JSON.stringify(raw)} in ${where} points outside the root (..); refused`,
        );
        continue;
      }
      if (opts.include && rel !== '' && !opts.include(rel)) continue;
      let applied: boolean;
      try {
        applied = await apply(e, rel);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENAMETOOLONG')
          throw ioError(err, `${join(dest, rel)} (entry ${JSON.stringify(raw)} in ${where})`);
        // A name (or one component) longer than this filesystem takes.
        problem(
          li,
          raw,
          'E_UNSAFE_PATH',
          `entry ${JSON.stringify(raw)} in ${where} has a name too long for this filesystem; refused`,
        );
        e.body.resume();
        continue;
      }
      if (!applied) continue;
      extracted.add(rel);
      createdHere.add(rel);
      if (!asRoot && (e.uid !== 0 || e.gid !== 0)) result.owners[rel] = `${e.uid}:${e.gid}`;
    }
  }
  // Directory metadata last, deepest first, so mtimes stick and read-only dirs do not block writes.
  // Only where the directory still is, with every parent a real directory: a later layer may have
  // replaced a parent by a symlink, and metadata must never be applied through it.
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
  const skipped = xattrs.summary();
  if (skipped) problem(skipped.layer, skipped.entry, 'E_SKIPPED', skipped.message);
  const dirs = [...dirMeta.keys()].sort((a, b) => b.split('/').length - a.split('/').length);
  for (const d of dirs) {
    if (!(await isRealDir(d))) continue;
    const abs = d === '' ? dest : join(dest, d);
    await applyMeta(abs, dirMeta.get(d)!, asRoot, true);
    if (!asRoot) {
      const e = dirMeta.get(d)!;
      if (e.uid !== 0 || e.gid !== 0) result.owners[d] = `${e.uid}:${e.gid}`;
    }
  }
  return result;
}

/** Longest part of an attribute's value or of a tool's message quoted in a warning. */
const QUOTE_MAX = 120;

function clip(text: string): string {
  return text.length > QUOTE_MAX ? `${text.slice(0, QUOTE_MAX)}… (${text.length} characters)` : text;
}

/**
 * Whether an extended attribute from an image may be applied to the host. As umoci: `trusted.*`
 * (overlayfs keeps its own whiteouts and redirects there) and `security.*` (SELinux labels, IMA
 * and EVM signatures: the host's policy, not the image's) are not, except `security.capability`
 * (file capabilities, part of what the image means).
 */
export function xattrAllowed(name: string): boolean {
  if (name === 'security.capability') return true;
  return !name.startsWith('trusted.') && !name.startsWith('security.');
}

/**
 * Writes extended attributes from PAX records (`SCHILY.xattr.NAME`, raw bytes). Node has no xattr
 * API, so this runs `setfattr` (Debian package attr) for the rare entries that carry them: when
 * it is missing, an image with xattrs is an error (unless they are turned off), never a silent
 * loss. An empty value is kept (setfattr without -v). Other failures are warnings.
 */
class XattrWriter {
  readonly #enabled: boolean;
  #skipped: { count: number; names: Set<string>; first?: { entry: string; name: string; layer: number } } = {
    count: 0,
    names: new Set(),
  };
  #off = 0;

  constructor(enabled: boolean) {
    this.#enabled = enabled;
  }

  async apply(abs: string, e: TarEntry, layer: number, warn: (msg: string) => void): Promise<void> {
    for (const [name, value] of Object.entries(e.xattrs)) {
      if (!this.#enabled) {
        this.#off++;
        this.#skipped.first ??= { entry: e.rawName, name, layer };
        continue;
      }
      if (!xattrAllowed(name)) {
        this.#skipped.count++;
        this.#skipped.names.add(name);
        this.#skipped.first ??= { entry: e.rawName, name, layer };
        continue;
      }
      const args = value.length
        ? ['-h', '-n', name, '-v', `0s${value.toString('base64')}`, abs]
        : ['-h', '-n', name, abs];
      try {
        await execFileP('setfattr', args);
      } catch (err) {
        const x = err as NodeJS.ErrnoException & { stderr?: string };
        if (x.code === 'ENOENT')
          throw new LadingError(
            ErrorCode.BadArgument,
            `the image has extended attributes (${name} on ${JSON.stringify(e.rawName)}) and setfattr is not installed (Debian/Ubuntu package attr): install it, or pass --no-xattrs to unpack without them`,
          );
        const why = (x.stderr?.trim() || x.message).split('\n')[0] ?? '';
        warn(
          `extended attribute ${name}=${JSON.stringify(clip(value.toString('latin1')))} on ${JSON.stringify(e.rawName)} not set: ${clip(why)}`,
        );
      }
    }
  }

  /** One warning for all attributes left out, or undefined. */
  summary(): { layer: number; entry: string; message: string } | undefined {
    const s = this.#skipped;
    if (!s.first) return undefined;
    if (this.#off)
      return {
        layer: s.first.layer,
        entry: s.first.entry,
        message: `${this.#off} extended attribute${this.#off === 1 ? '' : 's'} not applied (--no-xattrs), e.g. ${s.first.name} on ${JSON.stringify(s.first.entry)}`,
      };
    const names = [...s.names].sort();
    return {
      layer: s.first.layer,
      entry: s.first.entry,
      message: `${s.count} extended attribute${s.count === 1 ? '' : 's'} of the host's trusted.* or security.* namespaces skipped, as umoci does (only security.capability is applied): ${clip(names.join(', '))}; e.g. ${s.first.name} on ${JSON.stringify(s.first.entry)}`,
    };
  }
}

/** Whether a uid or gid fits Linux's 32 bits (4294967295 is (uid_t)-1, "no change", refused). */
function validId(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0 && n < 0xffffffff;
}

function normaliseLink(linkname: string): string | undefined {
  const parts: string[] = [];
  for (const seg of linkname.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') return undefined;
    parts.push(seg);
  }
  return parts.length ? parts.join('/') : undefined;
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
