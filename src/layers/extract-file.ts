import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, copyFile, mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ErrorCode, isLadingError, LadingError } from '../errors/index.ts';
import { ioError, makeTempDir, noSpaceFor, outputTarget, releaseTemp } from '../util/index.ts';
import { openLayer } from './layer-stream.ts';
import { ancestors, hardlinkTarget, inRoot, parseWhiteout, Visibility } from './paths.ts';
import { unpackRootfs } from './rootfs.ts';
import {
  type EntryType,
  hasDotDot,
  normaliseEntryName,
  pipeBody,
  readTar,
  type TarEntry,
} from './tar-read.ts';
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
  /** A hardlink whose target is not inside the root (`..`, the root itself): its raw linkname. */
  refusedLink?: string;
}

const MAX_HOPS = 40;

/** The last symlink followed on the way: the link's own path and what it points to. */
interface Via {
  link: string;
  target: string;
}

/** What the layers scanned so far say about a path. */
type Resolution =
  | { kind: 'found'; path: string; entry: Seen }
  | { kind: 'absent'; why: string; via?: Via }
  | { kind: 'unknown'; path: string; via?: Via };

/** The layers scanned so far (top first): their visible entries, and what they hide below. */
class ScanState extends Visibility {
  /** Topmost visible entry for each path among the scanned layers. */
  readonly seen = new Map<string, Seen>();

  see(p: string, s: Seen): void {
    this.seen.set(p, s);
    this.decided.set(p, s.implied ? 'implied' : s.type === 'directory' ? 'dir' : 'other');
  }

  /** Follows symlinks (in any component) as far as the scanned layers allow. */
  resolve(input: string): Resolution {
    let path = input;
    let via: Via | undefined;
    for (let hops = 0; hops <= MAX_HOPS; hops++) {
      const step = this.#walk(path, via);
      if ('kind' in step) return step;
      ({ path, via } = step);
      if (path === '') return { kind: 'absent', why: 'resolves to the root' };
    }
    return { kind: 'absent', why: `too many levels of symbolic links from ${input}` };
  }

  /** Walks `path` component by component: a decision, or the path a symlink on the way leads to. */
  #walk(path: string, via: Via | undefined): Resolution | { path: string; via: Via } {
    const parts = path.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      const e = this.seen.get(prefix);
      if (!e) {
        if (this.removed(prefix)) return { kind: 'absent', why: `${prefix} was deleted`, via };
        return { kind: 'unknown', path, via };
      }
      if (e.type === 'symlink') {
        // Absolute targets are root-relative; relative ones start in the link's directory.
        const norm = inRoot(
          e.linkname.startsWith('/') ? e.linkname : `${parts.slice(0, i - 1).join('/')}/${e.linkname}`,
        );
        return {
          path: [norm, ...parts.slice(i)].filter(Boolean).join('/'),
          via: { link: prefix, target: e.linkname },
        };
      }
      if (i === parts.length) return { kind: 'found', path, entry: e };
      if (e.type !== 'directory') return { kind: 'absent', why: `${prefix} is not a directory`, via };
    }
    return { kind: 'unknown', path, via };
  }
}

/** What one layer says, applied to the scan state once the layer is read. */
interface LayerScan {
  layer: number;
  here: Map<string, Seen>;
  whiteouts: string[];
  opaques: string[];
  /** Parents of this layer's (visible) entries: directories, whether or not it has entries for them. */
  implied: Set<string>;
  /** What the layers above leave undecided; a file of this layer at one of these paths is the answer. */
  wanted: Set<string>;
}

interface Want {
  /** As requested. */
  path: string;
  /** Normalised. */
  norm: string;
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
  const wants = requested.map((r) => {
    const n = normaliseEntryName(r);
    if (n === undefined || n === '' || hasDotDot(r))
      throw new LadingError(ErrorCode.BadArgument, `invalid path to extract ${JSON.stringify(r)}`);
    return { path: r, norm: n };
  });
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
  try {
    return await new Extractor(layers, opts, staging, out).run(wants);
  } catch (err) {
    const e = noSpaceFor(err, opts.dest);
    throw isLadingError(e) ? e : ioError(e, opts.dest);
  } finally {
    await rm(staging, { recursive: true, force: true });
    releaseTemp(staging);
  }
}

/** Scans the layers top first for the requested paths, then writes each out. */
class Extractor {
  readonly result: ExtractResult;
  readonly #layers: LayerBlob[];
  readonly #opts: ExtractOptions;
  readonly #staging: string;
  /** The destination of a single path (checked before any layer was read), else undefined. */
  readonly #out: Awaited<ReturnType<typeof outputTarget>> | undefined;
  readonly #state = new ScanState();
  /** Content captured while scanning: `layer:path` → its staging file. */
  readonly #captured = new Map<string, string>();
  /** Names of the staging files (unique: several may wait at once). */
  #tmpCount = 0;
  /** Content already written out: `layer:path` → the destination that holds it. */
  readonly #delivered = new Map<string, string>();
  /** Layers read, each counted once however often it is read. */
  readonly #opened = new Set<number>();
  #dirs = 0;

  constructor(
    layers: LayerBlob[],
    opts: ExtractOptions,
    staging: string,
    out: Awaited<ReturnType<typeof outputTarget>> | undefined,
  ) {
    this.#layers = layers;
    this.#opts = opts;
    this.#staging = staging;
    this.#out = out;
    this.result = { results: [], layersOpened: 0, bytesRead: 0, layerCount: layers.length, problems: [] };
  }

  async run(wants: Want[]): Promise<ExtractResult> {
    const pending = new Set(wants.map((w) => w.norm));
    const decided = new Map<string, Resolution>();
    for (let i = this.#layers.length - 1; i >= 0 && pending.size > 0; i--) {
      this.#merge(await this.#scanLayer(i, pending));
      for (const w of [...pending]) {
        const r = this.#state.resolve(w);
        if (r.kind === 'unknown') continue;
        pending.delete(w);
        decided.set(w, r);
      }
    }
    for (const w of wants) await this.#deliver(w, decided.get(w.norm) ?? this.#state.resolve(w.norm));
    return this.result;
  }

  #counted(i: number): void {
    this.#opened.add(i);
    this.result.layersOpened = this.#opened.size;
  }

  #open = (i: number): Promise<Readable> => {
    this.#counted(i);
    const layer = this.#layers[i]!;
    return openLayer(layer, `layer ${i} (${layer.digest})`, this.#opts.signal, (raw) => {
      const result = this.result;
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

  #tmp(): string {
    return join(this.#staging, `c${this.#tmpCount++}`);
  }

  /** Reads layer `i` (top first): what it shows, hides and implies; captures wanted files. */
  async #scanLayer(i: number, pending: Set<string>): Promise<LayerScan> {
    const scan: LayerScan = {
      layer: i,
      here: new Map(),
      whiteouts: [],
      opaques: [],
      implied: new Set(),
      wanted: new Set(),
    };
    for (const w of pending) {
      const r = this.#state.resolve(w);
      if (r.kind === 'unknown') scan.wanted.add(r.path);
    }
    const stream = await this.#open(i);
    try {
      for await (const e of readTar(stream, `layer ${i}`)) await this.#scanEntry(e, scan);
    } finally {
      stream.destroy();
    }
    return scan;
  }

  async #scanEntry(e: TarEntry, scan: LayerScan): Promise<void> {
    const name = e.name;
    if (name === undefined || name === '' || hasDotDot(e.rawName)) return;
    const state = this.#state;
    const whiteout = parseWhiteout(name);
    if (whiteout) {
      if ('opaque' in whiteout) {
        if (whiteout.opaque !== '' && state.hidden(whiteout.opaque, true)) return;
        scan.opaques.push(whiteout.opaque);
      } else {
        if (state.hidden(whiteout.deletes)) return;
        scan.whiteouts.push(whiteout.deletes);
      }
      for (const a of ancestors(name)) scan.implied.add(a);
      return;
    }
    if (state.hidden(name, e.type === 'directory')) return;
    const seen: Seen = { layer: scan.layer, type: e.type, linkname: e.linkname, mode: e.mode, size: e.size };
    if (e.type === 'link') {
      // A hardlink is its target's content: record as a file; the content comes from the target.
      // One whose target is not inside the root is refused, as unpack refuses it (hardlinkTarget).
      seen.type = 'file';
      const target = hardlinkTarget(e.linkname);
      seen.linkname = target ?? '';
      if (target === undefined) seen.refusedLink = e.linkname;
    }
    scan.here.set(name, seen);
    for (const a of ancestors(name)) scan.implied.add(a);
    // Capture content now when the name is already what some request resolves to.
    const key = `${scan.layer}:${name}`;
    if (e.type === 'file' && scan.wanted.has(name) && !this.#captured.has(key)) {
      const tmp = this.#tmp();
      await pipeBody(e, createWriteStream(tmp, { mode: 0o600 }));
      this.#captured.set(key, tmp);
    }
  }

  /** A scanned layer's decisions now apply to every layer below it. */
  #merge(scan: LayerScan): void {
    const state = this.#state;
    for (const [k, v] of scan.here) state.see(k, v);
    for (const a of scan.implied) {
      if (scan.here.has(a) || state.hidden(a, true)) continue;
      state.see(a, {
        layer: scan.layer,
        type: 'directory',
        linkname: '',
        mode: 0o755,
        size: 0,
        implied: true,
      });
    }
    for (const w of scan.whiteouts) state.deleted.add(w);
    for (const o of scan.opaques) state.opaque.add(o);
  }

  /** Capture a file's content from layer `i` (re-reading it if it was scanned already). */
  async #captureFrom(i: number, path: string): Promise<string> {
    const stream = await this.#open(i);
    try {
      for await (const e of readTar(stream, `layer ${i}`)) {
        if (e.name === path && e.type === 'file') {
          const tmp = this.#tmp();
          await pipeBody(e, createWriteStream(tmp, { mode: 0o600 }));
          return tmp;
        }
      }
    } finally {
      stream.destroy();
    }
    throw new LadingError(ErrorCode.Internal, `${path} vanished from layer ${i}`);
  }

  async #deliver(w: Want, r: Resolution): Promise<void> {
    if (r.kind !== 'found') throw notFound(w.path, w.norm, r);
    let entry = r.entry;
    if (entry.refusedLink !== undefined)
      throw new LadingError(
        ErrorCode.Archive,
        `${w.path} is a hardlink to ${JSON.stringify(entry.refusedLink)}, which is not inside the image's root; refused (unpack refuses it too)`,
        { path: w.path },
      );
    // A hardlink: its content is its target's as the layer that holds the link wrote it, even
    // when an upper layer deleted or replaced the target's name (unpack, umoci and podman agree).
    let linked: { layer: number; path: string } | undefined;
    if (entry.type === 'file' && entry.linkname) {
      linked = await findLinkTarget(this.#open, entry.layer, entry.linkname, w.path);
      entry = { ...entry, layer: linked.layer, linkname: '' };
    }
    const target = this.#out ? this.#opts.dest : join(this.#opts.dest, basename(w.norm));
    if (entry.type === 'directory') return this.#deliverDirectory(w, r.path, entry, target);
    if (entry.type !== 'file') {
      throw new LadingError(
        ErrorCode.BadArgument,
        `${w.path} resolves to a ${entry.type}, which cannot be extracted as a file`,
      );
    }
    await this.#deliverFile(w, r.path, entry, linked ? linked.path : r.path, target);
  }

  /** Directories gather from every layer: that subtree is unpacked, then moved into place. */
  async #deliverDirectory(w: Want, resolvedPath: string, entry: Seen, target: string): Promise<void> {
    const sub = join(this.#staging, `dir-${++this.#dirs}`);
    const prefix = `${resolvedPath}/`;
    const unpacked = await unpackRootfs(
      this.#layers.map((l, i) => ({
        ...l,
        open: (o) => {
          this.#counted(i);
          return l.open(o);
        },
      })),
      sub,
      {
        include: (p) => p === resolvedPath || p.startsWith(prefix) || resolvedPath.startsWith(`${p}/`),
        onProblem: this.#opts.onProblem,
      },
    );
    this.result.problems.push(...unpacked.problems);
    await rm(target, { recursive: true, force: true });
    await rename(join(sub, resolvedPath), target);
    this.result.results.push({
      path: w.path,
      resolvedPath,
      type: 'directory',
      size: 0,
      mode: entry.mode,
      dest: target,
    });
  }

  /** A file's content (from `contentPath` in its entry's layer) written to `target` with its mode. */
  async #deliverFile(
    w: Want,
    resolvedPath: string,
    entry: Seen,
    contentPath: string,
    target: string,
  ): Promise<void> {
    const key = `${entry.layer}:${contentPath}`;
    // Several requested paths may resolve to one file: it is read once and copied.
    const earlier = this.#delivered.get(key);
    const tmp = earlier
      ? this.#tmp()
      : (this.#captured.get(key) ?? (await this.#captureFrom(entry.layer, contentPath)));
    if (earlier) await copyFile(earlier, tmp);
    this.#captured.delete(key);
    await chmod(tmp, entry.mode & 0o7777);
    const out = this.#out;
    if (out?.st && !out.st.isFile())
      await pipeline(createReadStream(tmp), createWriteStream(target, { flags: 'w' }));
    else
      await rename(tmp, out?.target ?? target).catch(async () => {
        await pipeline(createReadStream(tmp), createWriteStream(target, { mode: entry.mode & 0o7777 }));
      });
    this.#delivered.set(key, target);
    this.result.results.push({
      path: w.path,
      resolvedPath,
      type: 'file',
      size: entry.size,
      mode: entry.mode & 0o7777,
      dest: target,
    });
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
