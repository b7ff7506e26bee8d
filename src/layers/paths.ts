import { hasDotDot } from './tar-read.ts';

/**
 * The flattening vocabulary that unpack, export and extract share: names inside the root
 * (normalised: no leading `/`, no `.` or empty segments, `''` for the root), whiteouts, hardlink
 * targets, and what the layers read so far hide of the layers below them.
 */

/** Prefix of a whiteout entry: `.wh.NAME` deletes NAME from lower layers. */
export const WHITEOUT_PREFIX = '.wh.';
/** An opaque marker: hides everything lower layers put in its directory. */
export const WHITEOUT_OPAQUE = '.wh..wh..opq';

/** `a/b/c` → `a/b`; a top-level name → `''` (the root). */
export function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i === -1 ? '' : p.slice(0, i);
}

/** `a/b/c` → `c`. */
export function baseOf(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

/** The directories above a normalised name, outermost first: `a/b/c` → `a`, `a/b` (not the root). */
export function ancestors(p: string): string[] {
  const out: string[] = [];
  for (let i = p.indexOf('/'); i !== -1; i = p.indexOf('/', i + 1)) out.push(p.slice(0, i));
  return out;
}

/** What a whiteout entry does: hide its directory's lower contents, or delete one name. */
export type Whiteout = { opaque: string } | { deletes: string; name: string };

/**
 * For `dir/.wh..wh..opq` → `{ opaque: dir }`; for `dir/.wh.name` → `{ deletes: 'dir/name', name }`
 * (the name may be one no entry can have: see {@link validWhiteoutName}); else undefined.
 */
export function parseWhiteout(path: string): Whiteout | undefined {
  const dir = parentOf(path);
  const base = baseOf(path);
  if (!base.startsWith(WHITEOUT_PREFIX)) return undefined;
  if (base === WHITEOUT_OPAQUE) return { opaque: dir };
  const name = base.slice(WHITEOUT_PREFIX.length);
  return { deletes: dir ? `${dir}/${name}` : name, name };
}

/** Whether a whiteout's name is one an entry can have (not empty, `.` or `..`). */
export function validWhiteoutName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..';
}

/**
 * A hardlink's target inside the root, normalised; undefined when it uses `..` at all or names
 * the root (a link can only be to an entry extracted inside it).
 */
export function hardlinkTarget(linkname: string): string | undefined {
  if (hasDotDot(linkname)) return undefined;
  const parts: string[] = [];
  for (const seg of linkname.split('/')) {
    if (seg === '' || seg === '.') continue;
    parts.push(seg);
  }
  return parts.length ? parts.join('/') : undefined;
}

/**
 * A symlink target as the kernel resolves it under a root directory: `..` at the root stays at the
 * root (`/../../etc/passwd` is `/etc/passwd`), so a link never leads out of the image.
 */
export function inRoot(p: string): string {
  const out: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return out.join('/');
}

/**
 * What the layers above the one being read decided about a path: a directory entry (`dir`), any
 * other entry (`other`), or a directory implied by entries below it (`implied`: a lower directory
 * entry still gives it its metadata, a lower non-directory is replaced by it, as `unpack` does).
 */
export type Decided = 'dir' | 'other' | 'implied';

/**
 * The one visibility model of the engines that read layers top first (export, extract): which
 * entries of a lower layer the layers already read hide. An upper entry of the same name wins (for
 * a directory, its metadata only: lower children still show), a whiteout hides the path and
 * everything below it, an opaque marker everything below its directory, an upper non-directory
 * everything below its name. `unpack` applies the same rules bottom first, on the disk.
 */
export class Visibility {
  /** Decided by the layers read so far (all above the current one). */
  readonly decided = new Map<string, Decided>();
  /** Paths whited out by those layers. */
  readonly deleted = new Set<string>();
  /** Directories made opaque by those layers. */
  readonly opaque = new Set<string>();

  /** Whether a lower-layer entry at `p` (a directory entry when `isDir`) is hidden. */
  hidden(p: string, isDir = false): boolean {
    // An opaque marker at the top (`.wh..wh..opq`) hides every lower entry.
    if (this.deleted.has(p) || this.opaque.has('')) return true;
    const k = this.decided.get(p);
    if (k === 'dir' || k === 'other' || (k === 'implied' && !isDir)) return true;
    for (const a of ancestors(p)) {
      if (this.deleted.has(a) || this.opaque.has(a) || this.decided.get(a) === 'other') return true;
    }
    return false;
  }

  /** Whether `p` was deleted by a whiteout or lies in an opaque directory (no entry of its own). */
  removed(p: string): boolean {
    return this.deleted.has(p) || this.opaque.has('') || ancestors(p).some((a) => this.opaque.has(a));
  }
}
