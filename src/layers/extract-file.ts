import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, copyFile, mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ErrorCode, isLadingError, LadingError } from '../errors/index.ts';
import { ioError, makeTempDir, noSpaceFor, outputTarget, releaseTemp } from '../util/index.ts';
import { openLayer } from './layer-stream.ts';
import { WHITEOUT_OPAQUE, WHITEOUT_PREFIX } from './paths.ts';
import { unpackRootfs } from './rootfs.ts';
import { type EntryType, hasDotDot, normaliseEntryName, pipeBody, readTar } from './tar-read.ts';
import type { EntryProblem, LayerBlob } from './types.ts';

export interface ExtractOptions {
  signal?: AbortSignal;
  /** Where to write: a directory (each result under its base name), or for one path a file name. */
  dest: string;
  /** Called for every refused or skipped entry of an extracted directory (also in the result). */
  onProblem?: (p: EntryProblem) => void;
}

export interface ExtractedPath {
  /** As requested. */
  path: string;
  /** Where it really lives in the image after following symlinks. */
  resolvedPath: string;
  type: 'file' | 'directory';
  size: number;
  mode: number;
  /** Written here. */
  dest: string;
}

export interface ExtractResult {
  results: ExtractedPath[];
  /** Layers read (each once, however often it was read). */
  layersOpened: number;
  /** Compressed bytes read from layer streams. */
  bytesRead: number;
  layerCount: number;
  /** Entries of extracted directories that were refused (unsafe) or skipped, by name. */
  problems: EntryProblem[];
}

interface Seen {
  layer: number;
  type: EntryType;
  linkname: string;
  mode: number;
  size: number;
  /** A directory only implied by entries below it (no entry of its own in that layer). */
  implied?: boolean;
}

const MAX_HOPS = 40;

function ancestors(p: string): string[] {
  const parts = p.split('/');
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join('/'));
  return out;
}

/**
 * A symlink target as the kernel resolves it under a root directory: `..` at the root stays at the
 * root (`/../../etc/passwd` is `/etc/passwd`), so a link never leads out of the image.
 */
function inRoot(p: string): string {
  const out: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return out.join('/');
}

/** What the layers scanned so far say about a path. */
/** The last symlink followed on the way: the link's own path and what it points to. */
interface Via {
  link: string;
  target: string;
}

type Resolution =
  | { kind: 'found'; path: string; entry: Seen }
  | { kind: 'absent'; why: string; via?: Via }
  | { kind: 'unknown'; path: string; via?: Via };

class ScanState {
  /** Topmost visible entry for each path among the scanned layers. */
  readonly seen = new Map<string, Seen>();
  /** Paths whited out by scanned layers (hide that path and below in lower layers). */
  readonly deleted = new Set<string>();
  /** Directories made opaque by scanned layers (hide their contents in lower layers). */
  readonly opaque = new Set<string>();

  /**
   * Whether an entry of a lower layer at `p` is hidden by what was scanned above it. A directory
   * entry is not hidden by a directory the layers above only implied: it gives that one its mode.
   */
  hidden(p: string, isDir = false): boolean {
    // An opaque marker at the top (`.wh..wh..opq`) hides every lower entry.
    if (this.deleted.has(p) || this.opaque.has('')) return true;
    for (const a of ancestors(p)) {
      if (this.deleted.has(a) || this.opaque.has(a)) return true;
      const s = this.seen.get(a);
      if (s && s.type !== 'directory') return true;
    }
    const s = this.seen.get(p);
    return s !== undefined && !(s.implied && isDir);
  }

  /** Follows symlinks (in any component) as far as the scanned layers allow. */
  resolve(input: string): Resolution {
    let path = input;
    let via: Via | undefined;
    for (let hops = 0; hops <= MAX_HOPS; hops++) {
      const parts = path.split('/');
      let restarted = false;
      for (let i = 1; i <= parts.length; i++) {
        const prefix = parts.slice(0, i).join('/');
        const e = this.seen.get(prefix);
        if (!e) {
          if (
            this.deleted.has(prefix) ||
            this.opaque.has('') ||
            ancestors(prefix).some((a) => this.opaque.has(a))
          ) {
            return { kind: 'absent', why: `${prefix} was deleted`, via };
          }
          return { kind: 'unknown', path, via };
        }
        const last = i === parts.length;
        if (e.type === 'symlink') {
          // Absolute targets are root-relative; relative ones start in the link's directory.
          const norm = inRoot(
            e.linkname.startsWith('/') ? e.linkname : `${parts.slice(0, i - 1).join('/')}/${e.linkname}`,
          );
          path = [norm, ...parts.slice(i)].filter(Boolean).join('/');
          via = { link: prefix, target: e.linkname };
          restarted = true;
          break;
        }
        if (last) return { kind: 'found', path, entry: e };
        if (e.type !== 'directory') return { kind: 'absent', why: `${prefix} is not a directory`, via };
      }
      if (!restarted) return { kind: 'unknown', path, via };
      if (path === '') return { kind: 'absent', why: 'resolves to the root' };
    }
    return { kind: 'absent', why: `too many levels of symbolic links from ${input}` };
  }
}

/**
 * Extracts files or directories from an image, reading layers from the top and stopping as soon as
 * every requested path is decided, so lower layers are never fetched. Symlinks inside the image are
 * followed (relative, absolute as root-relative, chains); the real file comes out with its mode.
 * Directories are gathered from every layer that may contribute to them.
 */
export async function extractPaths(
  layers: LayerBlob[],
  requested: string[],
  opts: ExtractOptions,
): Promise<ExtractResult> {
  const result: ExtractResult = {
    results: [],
    layersOpened: 0,
    bytesRead: 0,
    layerCount: layers.length,
    problems: [],
  };
  const wants = requested.map((r) => {
    const n = normaliseEntryName(r);
    if (n === undefined || n === '' || hasDotDot(r))
      throw new LadingError(ErrorCode.BadArgument, `invalid path to extract ${JSON.stringify(r)}`);
    return { path: r, norm: n };
  });
  const state = new ScanState();
  // One path and a destination that is not a directory: the destination is the result's name.
  const destIsDir = await stat(opts.dest).then(
    (s) => s.isDirectory(),
    () => false,
  );
  const single = wants.length === 1 && !destIsDir;
  // A single file's destination is checked before any layer is read: a FIFO or device is written
  // in place, a symlink's target replaced (never the link), a dangling link refused.
  const out = single ? await outputTarget(opts.dest) : undefined;
  if (!single) await mkdir(opts.dest, { recursive: true });
  const staging = await makeTempDir(out ? dirname(out.target) : opts.dest, 'extract');
  const captured = new Map<string, string>();
  /** Names of the staging files (unique: several may wait at once). */
  let tmpCount = 0;
  /** Content already written out: `layer:path` → the destination that holds it. */
  const delivered = new Map<string, string>();
  /** Layers read, each counted once however often it is read. */
  const opened = new Set<number>();
  const open = async (i: number) => {
    opened.add(i);
    result.layersOpened = opened.size;
    return openLayer(layers[i]!, `layer ${i} (${layers[i]!.digest})`, opts.signal, (raw) => {
      const count = new Transform({
        transform(chunk: Buffer, _e, cb) {
          result.bytesRead += chunk.length;
          cb(null, chunk);
        },
      });
      raw.once('error', (err) => count.destroy(err));
      return raw.pipe(count);
    });
  };
  try {
    const pending = new Set(wants.map((w) => w.norm));
    const decided = new Map<string, Resolution>();
    const dirs: string[] = [];
    /** Capture a file's content from layer `i` (re-reading it if it was scanned already). */
    const captureFrom = async (i: number, path: string): Promise<string> => {
      const stream = await open(i);
      try {
        for await (const e of readTar(stream, `layer ${i}`)) {
          if (e.name === path && e.type === 'file') {
            const tmp = join(staging, `c${tmpCount++}`);
            await pipeBody(e, createWriteStream(tmp, { mode: 0o600 }));
            return tmp;
          }
        }
      } finally {
        stream.destroy();
      }
      throw new LadingError(ErrorCode.Internal, `${path} vanished from layer ${i}`);
    };
    for (let i = layers.length - 1; i >= 0 && pending.size > 0; i--) {
      const stream = await open(i);
      const here = new Map<string, Seen>();
      const whiteouts: string[] = [];
      const opaques: string[] = [];
      /** Parents of this layer's (visible) entries: directories, whether or not it has entries for them. */
      const implied = new Set<string>();
      // What the layers above leave undecided; a file of this layer at one of these paths is the answer.
      const wanted = new Set<string>();
      for (const w of pending) {
        const r = state.resolve(w);
        if (r.kind === 'unknown') wanted.add(r.path);
      }
      try {
        for await (const e of readTar(stream, `layer ${i}`)) {
          const name = e.name;
          if (name === undefined || name === '' || hasDotDot(e.rawName)) continue;
          const base = posix.basename(name);
          const dir = posix.dirname(name) === '.' ? '' : posix.dirname(name);
          if (base === WHITEOUT_OPAQUE) {
            if (dir === '' || !state.hidden(dir, true)) {
              opaques.push(dir);
              for (const a of ancestors(name)) implied.add(a);
            }
            continue;
          }
          if (base.startsWith(WHITEOUT_PREFIX)) {
            const victim = dir
              ? `${dir}/${base.slice(WHITEOUT_PREFIX.length)}`
              : base.slice(WHITEOUT_PREFIX.length);
            if (!state.hidden(victim)) {
              whiteouts.push(victim);
              for (const a of ancestors(name)) implied.add(a);
            }
            continue;
          }
          if (state.hidden(name, e.type === 'directory')) continue;
          const seen: Seen = { layer: i, type: e.type, linkname: e.linkname, mode: e.mode, size: e.size };
          if (e.type === 'link') {
            // A hardlink is its target's content: record as a file; the content comes from the target.
            seen.type = 'file';
            seen.linkname = normaliseEntryName(e.linkname) ?? '';
          }
          here.set(name, seen);
          for (const a of ancestors(name)) implied.add(a);
          // Capture content now when the name is already what some request resolves to.
          if (e.type === 'file' && wanted.has(name) && !captured.has(`${i}:${name}`)) {
            const tmp = join(staging, `c${tmpCount++}`);
            await pipeBody(e, createWriteStream(tmp, { mode: 0o600 }));
            captured.set(`${i}:${name}`, tmp);
          }
        }
      } finally {
        stream.destroy();
      }
      for (const [k, v] of here) state.seen.set(k, v);
      for (const a of implied) {
        if (here.has(a) || state.hidden(a, true)) continue;
        state.seen.set(a, { layer: i, type: 'directory', linkname: '', mode: 0o755, size: 0, implied: true });
      }
      for (const w of whiteouts) state.deleted.add(w);
      for (const o of opaques) state.opaque.add(o);
      for (const w of [...pending]) {
        const r = state.resolve(w);
        if (r.kind === 'unknown') continue;
        pending.delete(w);
        decided.set(w, r);
      }
    }
    for (const w of wants) {
      const r = decided.get(w.norm) ?? state.resolve(w.norm);
      if (r.kind !== 'found') throw notFound(w.path, w.norm, r);
      let entry = r.entry;
      const resolvedPath = r.path;
      // A hardlink: its content is its target's as the layer that holds the link wrote it, even
      // when an upper layer deleted or replaced the target's name (unpack, umoci and podman agree).
      let linked: { layer: number; path: string } | undefined;
      if (entry.type === 'file' && entry.linkname) {
        linked = await findLinkTarget(open, entry.layer, entry.linkname, w.path);
        entry = { ...entry, layer: linked.layer, linkname: '' };
      }
      const target = single ? opts.dest : join(opts.dest, basename(w.norm));
      if (entry.type === 'directory') {
        dirs.push(resolvedPath);
        const sub = join(staging, `dir-${dirs.length}`);
        // Directories gather from every layer; unpack just that subtree.
        const prefix = `${resolvedPath}/`;
        const unpacked = await unpackRootfs(
          layers.map((l, i) => ({
            ...l,
            open: (o) => {
              opened.add(i);
              result.layersOpened = opened.size;
              return l.open(o);
            },
          })),
          sub,
          {
            include: (p) => p === resolvedPath || p.startsWith(prefix) || resolvedPath.startsWith(`${p}/`),
            onProblem: opts.onProblem,
          },
        );
        result.problems.push(...unpacked.problems);
        await rm(target, { recursive: true, force: true });
        await rename(join(sub, resolvedPath), target);
        result.results.push({
          path: w.path,
          resolvedPath,
          type: 'directory',
          size: 0,
          mode: entry.mode,
          dest: target,
        });
        continue;
      }
      if (entry.type !== 'file') {
        throw new LadingError(
          ErrorCode.BadArgument,
          `${w.path} resolves to a ${entry.type}, which cannot be extracted as a file`,
        );
      }
      const contentPath = linked ? linked.path : resolvedPath;
      const key = `${entry.layer}:${contentPath}`;
      // Several requested paths may resolve to one file: it is read once and copied.
      const earlier = delivered.get(key);
      const tmp = earlier
        ? join(staging, `c${tmpCount++}`)
        : (captured.get(key) ?? (await captureFrom(entry.layer, contentPath)));
      if (earlier) await copyFile(earlier, tmp);
      captured.delete(key);
      await chmod(tmp, entry.mode & 0o7777);
      if (out?.st && !out.st.isFile())
        await pipeline(createReadStream(tmp), createWriteStream(target, { flags: 'w' }));
      else
        await rename(tmp, out?.target ?? target).catch(async () => {
          await pipeline(createReadStream(tmp), createWriteStream(target, { mode: entry.mode & 0o7777 }));
        });
      delivered.set(key, target);
      result.results.push({
        path: w.path,
        resolvedPath,
        type: 'file',
        size: entry.size,
        mode: entry.mode & 0o7777,
        dest: target,
      });
    }
    return result;
  } catch (err) {
    const e = noSpaceFor(err, opts.dest);
    throw isLadingError(e) ? e : ioError(e, opts.dest);
  } finally {
    await rm(staging, { recursive: true, force: true });
    releaseTemp(staging);
  }
}

/**
 * Where a hardlink's content is: the file entry of that name in the link's own layer (written
 * before the link), else in the layers below it; a link to a link is followed.
 */
async function findLinkTarget(
  open: (layer: number) => Promise<Readable>,
  linkLayer: number,
  linkname: string,
  requested: string,
): Promise<{ layer: number; path: string }> {
  let name = linkname;
  let from = linkLayer;
  for (let hops = 0; hops < MAX_HOPS; hops++) {
    let next: string | undefined;
    for (let i = from; i >= 0 && next === undefined; i--) {
      const stream = await open(i);
      try {
        for await (const e of readTar(stream, `layer ${i}`)) {
          if (e.name !== name) continue;
          if (e.type === 'file') return { layer: i, path: name };
          if (e.type === 'link') next = normaliseEntryName(e.linkname) ?? '';
          break;
        }
      } finally {
        stream.destroy();
      }
      if (next !== undefined) from = i;
    }
    if (next === undefined || next === '') break;
    name = next;
  }
  throw new LadingError(
    ErrorCode.NotFound,
    `${requested} is a hardlink to /${linkname}, whose content is in no layer at or below the link's`,
    { path: requested },
  );
}

/** The error for a requested path that is not there: for a symlink, the link is and its target is not. */
function notFound(requested: string, norm: string, r: Exclude<Resolution, { kind: 'found' }>): LadingError {
  const why = r.kind === 'absent' ? r.why : 'not in any layer';
  if (!r.via)
    return new LadingError(ErrorCode.NotFound, `${requested} is not in the image (${why})`, {
      path: requested,
    });
  const link = `/${r.via.link} -> ${r.via.target}`;
  const target = r.kind === 'unknown' ? `/${r.path}` : 'its target';
  const message =
    r.via.link === norm
      ? `${requested} is in the image as a symlink (${link}), but ${target} is not (${why}): a dangling link has no content to extract`
      : `${requested} leads through the symlink ${link}, and ${target} is not in the image (${why})`;
  return new LadingError(ErrorCode.NotFound, message, { path: requested });
}
