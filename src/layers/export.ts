import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { openLayer } from './layer-stream.ts';
import {
  ancestors,
  type Decided,
  hardlinkTarget,
  parseWhiteout,
  Visibility,
  validWhiteoutName,
  type Whiteout,
} from './paths.ts';
import { recordProblem, type UnpackResult } from './rootfs.ts';
import { hasDotDot, pipeBody, readTar, type TarEntry, XATTR_PREFIX } from './tar-read.ts';
import type { EntryProblem, LayerBlob } from './types.ts';

export interface ExportOptions {
  signal?: AbortSignal;
  /** Called for every refused or skipped entry (also collected in the result). */
  onProblem?: (p: EntryProblem) => void;
}

/** What an export wrote (the counts of `unpack`; `owners` stays empty: owners are in the headers). */
export type ExportResult = UnpackResult;

/** A name that will be a hardlink to some content not emitted yet. */
interface Waiter {
  name: string;
  layer: number;
  raw: string;
  linkname: string;
}

/** One file of the result (an inode): its header, where its content went, who waits for it. */
interface Inode {
  /** The header of the entry that created it (regular file, fifo or device). */
  header?: TarEntry;
  /** The output name that carries the content, once emitted. */
  out?: string;
  /** Visible hardlink names waiting for the content, in the order they were met. */
  waiting: Waiter[];
  /** The content's entry when it was hidden and not kept: layer and entry index to read again. */
  reread?: { layer: number; index: number };
}

/** The largest owner id a ustar header holds (7 octal digits). */
const MAX_OCTAL = 0o7777777;

/** One PAX record, `LEN KEY=VALUE\n`, LEN counting itself. */
function paxRecord(key: string, value: string | Buffer): Buffer {
  const v = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  const rest = Buffer.byteLength(key) + v.length + 3; // ' ', '=', '\n'
  let len = rest + String(rest).length;
  if (String(len).length !== String(rest).length) len = rest + String(len).length;
  return Buffer.concat([Buffer.from(`${len} ${key}=`, 'utf8'), v, Buffer.from('\n')]);
}

/** Seconds with the millisecond fraction, no trailing zeros (`1600000020.25`). */
function paxSeconds(d: Date): string {
  const t = Math.abs(d.getTime());
  const frac = String(t % 1000)
    .padStart(3, '0')
    .replace(/0+$/, '');
  return `${d.getTime() < 0 ? '-' : ''}${Math.floor(t / 1000)}${frac ? `.${frac}` : ''}`;
}

/** The ustar header block of a PAX extended header (`x`) of `size` bytes. */
function paxHeaderBlock(size: number): Buffer {
  const b = Buffer.alloc(512);
  const octal = (off: number, len: number, n: number) =>
    b.write(`${n.toString(8).padStart(len - 1, '0')}\0`, off, 'latin1');
  b.write('PaxHeader', 0, 'latin1');
  octal(100, 8, 0o644);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size);
  octal(136, 12, 0);
  b[156] = 0x78; // 'x'
  b.write('ustar\0' + '00', 257, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return b;
}

/** An ASCII stand-in of at most 99 bytes for a name a PAX record carries. */
function ustarName(name: string): string {
  return name.replace(/[^\x20-\x7e]/g, '_').slice(0, 99);
}

/** Whether an inode's content must come from its entry's body (a non-empty regular file). */
function needsBody(h: TarEntry): boolean {
  return h.type === 'file' && h.size > 0;
}

/**
 * The flattened root filesystem as one deterministic tar (what `crane export` and undocker give,
 * with whiteouts and opaque directories applied as `unpack` applies them), streamed: nothing is
 * staged on disk and only paths are kept in memory.
 *
 * Layers are read once each, top layer first, as `extract` does. What the layers above decided is
 * kept as a set of paths (entries, whiteouts, opaque directories, directories implied by entries
 * below them), so every entry of a lower layer is emitted or dropped as it streams by: an upper
 * entry of the same name wins (for a directory, its metadata; lower children still show), a
 * whiteout hides the path and everything below it, an opaque marker everything below its directory,
 * and an upper non-directory everything below its name. Whiteouts are never emitted.
 *
 * Order: layers top to bottom, each in its own order (as `crane export`), except directories,
 * whose entries come last (tar creates missing parents, then sets each directory's metadata, so
 * no later child changes a directory's mtime; one header per directory is held); duplicate
 * names within one layer are all emitted, last one winning on extraction, as in the layer itself.
 * Same image, same bytes: headers are the layers' (name normalised, mode with setuid/setgid/sticky,
 * owners and owner names, mtime, link targets verbatim, device numbers, `SCHILY.xattr.*` records).
 *
 * Hardlinks: a tar link must come after the entry holding the content, and a link's target may be
 * in a lower layer (read later) or hidden by an upper layer (its content dropped). The content is
 * emitted under the first name of the inode that appears in the output, the other names become
 * links to it:
 * - target visible and already emitted (same layer, earlier): a link right away;
 * - target below the link's layer: the link's header waits (headers only, one per waiting name)
 *   until the layer defining the target is read; the target's entry is then emitted (if visible)
 *   followed by the links, or, if the target itself is hidden, its content goes out under the first
 *   waiting name and the others link to it;
 * - target earlier in the same layer but hidden by an upper layer (its body already skipped): at the
 *   end of that layer the layer is read once more, up to the last such target, and the content is
 *   emitted under the first waiting name. This second pass happens only for layers with such links
 *   (an upper layer replaced or deleted one name of a hardlinked file); memory stays bounded by the
 *   number of waiting names, never by file sizes.
 * A link whose target does not exist (deleted, replaced by a directory or symlink, never there, or
 * `..`) is refused and reported, as `unpack` refuses it.
 *
 * A lower-layer symlink at a path an upper layer wrote entries under is left out and reported
 * (`unpack` keeps the symlink and refuses the upper entries instead); `..` names and a root that is
 * not a directory are refused as in `unpack`. Problems are reported for entries that would be in
 * the result.
 */
export async function exportRootfs(
  layers: LayerBlob[],
  opts: ExportOptions = {},
): Promise<{ stream: Readable; done: Promise<ExportResult> }> {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  const done = (async () => {
    const pack = tar.pack();
    const packed = pipeline(pack, out);
    packed.catch(() => {});
    try {
      const r = await new Exporter(layers, pack, opts).run();
      pack.finalize();
      await packed;
      return r;
    } catch (err) {
      pack.destroy(err as Error);
      out.destroy(err as Error);
      throw err;
    }
  })();
  done.catch(() => {});
  return { stream: out, done };
}

/** One layer as it is read: what it decides for the layers below, and its hardlink bookkeeping. */
interface LayerPass {
  li: number;
  where: string;
  /** The index of the entry being read (to read it again: see `Inode.reread`). */
  index: number;
  /** What this layer decides, applied to lower layers once it is read. */
  here: Map<string, Decided>;
  whiteouts: string[];
  opaques: string[];
  /** This layer's files and links by name (later links in the layer resolve through it). */
  names: Map<string, Inode>;
  /** Targets of this layer's links that are below it. */
  below: Map<string, Inode>;
}

class Exporter {
  readonly result: ExportResult = {
    files: 0,
    dirs: 0,
    symlinks: 0,
    hardlinks: 0,
    devices: 0,
    bytes: 0,
    problems: [],
    owners: {},
  };
  /** Decided by the layers read so far (all above the current one). */
  readonly vis = new Visibility();
  /** Hardlink targets to be found below the current layer, by path. */
  pending = new Map<string, Inode>();

  readonly #layers: LayerBlob[];
  readonly #pack: tar.Pack;
  /** Directory entries, written after every other entry (headers only: one per directory). */
  readonly #dirs: { h: tar.Header; xattrs: Record<string, Buffer> }[] = [];
  readonly #opts: ExportOptions;

  constructor(layers: LayerBlob[], pack: tar.Pack, opts: ExportOptions) {
    this.#layers = layers;
    this.#pack = pack;
    this.#opts = opts;
  }

  problem(layer: number, entry: string, code: EntryProblem['code'], message: string): void {
    recordProblem(this.result, this.#opts.onProblem, { layer, entry, code, message });
  }

  async run(): Promise<ExportResult> {
    for (let li = this.#layers.length - 1; li >= 0; li--) await this.#layer(li);
    for (const inode of this.pending.values()) this.#broken(inode);
    this.pending.clear();
    for (const d of this.#dirs) await this.#put(d.h, d.xattrs);
    return this.result;
  }

  #where(li: number): string {
    return `layer ${li} (${this.#layers[li]!.digest})`;
  }

  #open(li: number): Promise<Readable> {
    return openLayer(this.#layers[li]!, this.#where(li), this.#opts.signal);
  }

  async #layer(li: number): Promise<void> {
    const pass: LayerPass = {
      li,
      where: this.#where(li),
      index: -1,
      here: new Map(),
      whiteouts: [],
      opaques: [],
      names: new Map(),
      below: new Map(),
    };
    const stream = await this.#open(li);
    try {
      for await (const e of readTar(stream, pass.where)) {
        pass.index++;
        await this.#entry(pass, e);
      }
    } finally {
      stream.destroy();
    }
    await this.#reread(li, new Set(pass.names.values()));
    this.#endLayer(pass);
  }

  /** Emits, holds or drops one entry of the layer being read. */
  async #entry(pass: LayerPass, e: TarEntry): Promise<void> {
    const { li, where } = pass;
    const raw = e.rawName;
    const rel = e.name;
    if (rel === undefined || hasDotDot(raw)) {
      this.problem(
        li,
        raw,
        'E_UNSAFE_PATH',
        `entry ${JSON.stringify(raw)} in ${where} points outside the root (..); refused`,
      );
      return;
    }
    if (rel === '') {
      if (e.type !== 'directory')
        this.problem(
          li,
          raw,
          'E_UNSAFE_PATH',
          `entry ${JSON.stringify(raw)} in ${where} would replace the root with a ${e.type}; refused`,
        );
      return;
    }
    const whiteout = parseWhiteout(rel);
    if (whiteout) {
      this.#whiteout(pass, e, whiteout);
      return;
    }
    const vis = !this.vis.hidden(rel, e.type === 'directory');
    if (!vis && e.type === 'symlink' && this.vis.decided.get(rel) === 'implied') {
      this.problem(
        li,
        raw,
        'E_UNSAFE_PATH',
        `symlink ${JSON.stringify(raw)} in ${where} is a parent of entries of upper layers (unpack refuses those); left out`,
      );
    }
    switch (e.type) {
      case 'directory':
      case 'symlink':
        return this.#dirOrSymlink(pass, e, rel, vis);
      case 'file':
      case 'fifo':
      case 'character-device':
      case 'block-device':
        return this.#content(pass, e, rel, vis);
      case 'link':
        return this.#link(pass, e, rel, vis);
      default:
        if (vis)
          this.problem(
            li,
            raw,
            'E_UNSUPPORTED',
            `entry ${JSON.stringify(raw)} in ${where} has an unsupported type; skipped`,
          );
    }
  }

  /** Whiteouts are never emitted: they hide entries of the layers below. */
  #whiteout(pass: LayerPass, e: TarEntry, w: Whiteout): void {
    if ('opaque' in w) {
      pass.opaques.push(w.opaque);
      return;
    }
    if (!validWhiteoutName(w.name)) {
      this.problem(
        pass.li,
        e.rawName,
        'E_UNSAFE_PATH',
        `whiteout ${JSON.stringify(e.rawName)} in ${pass.where} names ${JSON.stringify(w.name)}; refused`,
      );
      return;
    }
    pass.whiteouts.push(w.deletes);
  }

  /** Marks `rel` decided by this layer, and its parents implied where nothing decided them. */
  #decide(pass: LayerPass, rel: string, kind: Decided): void {
    pass.here.set(rel, kind);
    for (const a of ancestors(rel))
      if (!this.vis.decided.has(a) && !pass.here.has(a)) pass.here.set(a, 'implied');
  }

  /** An upper layer's link waiting for what this layer puts at `rel`. */
  #claim(rel: string): Inode | undefined {
    const i = this.pending.get(rel);
    if (i) this.pending.delete(rel);
    return i;
  }

  async #dirOrSymlink(pass: LayerPass, e: TarEntry, rel: string, vis: boolean): Promise<void> {
    // A link waiting for this name cannot be made: it names a directory or a symlink.
    const waiting = this.#claim(rel);
    if (waiting) this.#broken(waiting);
    pass.names.delete(rel);
    if (!vis) return;
    if (e.type === 'directory') {
      // Written last: children extracted after their directory would change its mtime.
      this.#dirs.push({ h: this.#header(e, `${rel}/`, 'directory'), xattrs: e.xattrs });
      this.result.dirs++;
    } else {
      await this.#put(this.#header(e, rel, 'symlink'), e.xattrs);
      this.result.symlinks++;
    }
    this.#decide(pass, rel, e.type === 'directory' ? 'dir' : 'other');
  }

  /** A regular file, FIFO or device: an inode whose content upper links may wait for. */
  async #content(pass: LayerPass, e: TarEntry, rel: string, vis: boolean): Promise<void> {
    const inode: Inode = this.#claim(rel) ?? { waiting: [] };
    inode.header = e;
    if (vis) {
      await this.#emitContent(inode, rel, e);
      this.#decide(pass, rel, 'other');
    } else if (inode.waiting.length) {
      // Hidden here, but upper names link to it: the content goes out under the first.
      await this.#emitContent(inode, inode.waiting.shift()!.name, e);
    } else if (needsBody(e)) {
      inode.reread = { layer: pass.li, index: pass.index };
    }
    await this.#flush(inode);
    pass.names.set(rel, inode);
  }

  async #link(pass: LayerPass, e: TarEntry, rel: string, vis: boolean): Promise<void> {
    const target = hardlinkTarget(e.linkname);
    let inode: Inode | undefined;
    if (target !== undefined) {
      inode = pass.names.get(target) ?? pass.below.get(target);
      if (!inode) {
        inode = { waiting: [] };
        pass.below.set(target, inode);
      }
    }
    // Upper links to this name are links to the same inode.
    const upper = this.#claim(rel);
    if (upper) {
      if (inode) {
        inode.waiting.push(...upper.waiting);
        upper.waiting = [];
      } else this.#broken(upper);
    }
    if (vis) {
      const w: Waiter = { name: rel, layer: pass.li, raw: e.rawName, linkname: e.linkname };
      if (!inode) this.#refuseLink(w);
      else {
        inode.waiting.push(w);
        this.#decide(pass, rel, 'other');
      }
    }
    if (!inode) {
      pass.names.delete(rel);
      return;
    }
    // Content-less inodes (empty files, fifos, devices) need no body: emit now.
    if (!inode.out && inode.header && !needsBody(inode.header) && inode.waiting.length)
      await this.#emitContent(inode, inode.waiting.shift()!.name, inode.header);
    await this.#flush(inode);
    pass.names.set(rel, inode);
  }

  /** This layer's decisions now apply to every layer below it; so do its links' pending targets. */
  #endLayer(pass: LayerPass): void {
    const { here, whiteouts, opaques } = pass;
    for (const [p, k] of here) if (k !== 'implied' || !this.vis.decided.has(p)) this.vis.decided.set(p, k);
    for (const w of whiteouts) this.vis.deleted.add(w);
    for (const o of opaques) this.vis.opaque.add(o);
    for (const [t, inode] of pass.below) {
      const up = this.pending.get(t);
      if (up) {
        up.waiting.push(...inode.waiting);
        inode.waiting = [];
      } else this.pending.set(t, inode);
    }
    // Targets this layer deleted or hid (whiteout, opaque parent, non-directory parent) cannot be
    // found below it. A target this layer itself writes after the link does not count: the link
    // was to what was there before.
    const gone = new Set(whiteouts);
    const cleared = new Set(opaques);
    for (const [t, inode] of [...this.pending]) {
      const hidden =
        gone.has(t) ||
        cleared.has('') ||
        ancestors(t).some((a) => gone.has(a) || cleared.has(a) || here.get(a) === 'other');
      if (hidden) {
        this.pending.delete(t);
        this.#broken(inode);
      }
    }
  }

  /** Reads layer `li` again for hidden hardlink targets whose names wait for their content. */
  async #reread(li: number, inodes: Set<Inode>): Promise<void> {
    const wanted = new Map<number, Inode[]>();
    for (const inode of inodes) {
      if (inode.out || !inode.waiting.length || inode.reread?.layer !== li) continue;
      const list = wanted.get(inode.reread.index) ?? [];
      list.push(inode);
      wanted.set(inode.reread.index, list);
    }
    if (!wanted.size) return;
    const last = Math.max(...wanted.keys());
    const stream = await this.#open(li);
    let index = -1;
    try {
      for await (const e of readTar(stream, this.#where(li))) {
        index++;
        const list = wanted.get(index);
        if (list) {
          // Several inodes cannot share one entry (one entry, one inode), but be safe.
          const [first, ...rest] = list;
          await this.#emitContent(first!, first!.waiting.shift()!.name, e);
          await this.#flush(first!);
          for (const other of rest) {
            other.out = first!.out;
            await this.#flush(other);
          }
        }
        if (index >= last) break;
      }
    } finally {
      stream.destroy();
    }
  }

  /** Emits `e` (with its body) under `name` as the inode's content holder. */
  async #emitContent(inode: Inode, name: string, e: TarEntry): Promise<void> {
    const h = this.#header(e, name, e.type as tar.Header['type']);
    if (e.type === 'file') {
      h.size = e.size;
      this.#pax(h, e.xattrs);
      const entry = this.#pack.entry(h);
      await pipeBody(e, entry);
      this.result.files++;
      this.result.bytes += e.size;
    } else {
      await this.#put(h, e.xattrs);
      this.result.devices++;
    }
    inode.out = name;
  }

  /** Emits the waiting names of an inode whose content is out, as links to it. */
  async #flush(inode: Inode): Promise<void> {
    if (!inode.out || !inode.header) return;
    for (const w of inode.waiting) {
      const h = this.#header(inode.header, w.name, 'link');
      h.linkname = inode.out;
      await this.#put(h);
      this.result.hardlinks++;
    }
    inode.waiting = [];
  }

  #broken(inode: Inode): void {
    for (const w of inode.waiting) this.#refuseLink(w);
    inode.waiting = [];
  }

  #refuseLink(w: Waiter): void {
    this.problem(
      w.layer,
      w.raw,
      'E_UNSAFE_PATH',
      `hardlink ${JSON.stringify(w.raw)} in ${this.#where(w.layer)} points at ${JSON.stringify(w.linkname)}, which is not an entry extracted inside the root; refused`,
    );
  }

  #header(e: TarEntry, name: string, type: tar.Header['type']): tar.Header {
    const h: tar.Header = {
      name,
      type,
      mode: e.mode & 0o7777,
      uid: e.uid,
      gid: e.gid,
      uname: e.uname,
      gname: e.gname,
      mtime: e.mtime,
      size: 0,
      linkname: type === 'symlink' ? e.linkname : '',
      devmajor: type === 'character-device' || type === 'block-device' ? e.devmajor : 0,
      devminor: type === 'character-device' || type === 'block-device' ? e.devminor : 0,
    };
    return h;
  }

  /** Writes a body-less entry (with the PAX header it needs: xattrs of a directory or a device). */
  #put(h: tar.Header, xattrs: Record<string, Buffer> = {}): Promise<void> {
    this.#pax(h, xattrs);
    return new Promise((resolve, reject) => this.#pack.entry(h, (err) => (err ? reject(err) : resolve())));
  }

  /**
   * tar-stream writes PAX values as UTF-8 strings and only `path`/`linkpath`: for binary xattr
   * values (`security.capability`), owners above 2097151 and sub-second mtimes this writes the PAX
   * header itself, raw, and turns `h` into a plain ustar header (names in the PAX records, ASCII
   * stand-ins in the header, as Go's archive/tar does).
   */
  #pax(h: tar.Header, xattrs: Record<string, Buffer>): void {
    const big = (n: number | undefined) => (n ?? 0) > MAX_OCTAL;
    const ms = h.mtime ? h.mtime.getTime() % 1000 : 0;
    // tar-stream writes seconds as a 32-bit integer: times before 1970 or after 2038-01-19 go in
    // a PAX record (as Go's archive/tar writes what its octal field cannot hold), the header gets 0.
    const secs = h.mtime ? Math.floor(h.mtime.getTime() / 1000) : 0;
    const wide = secs < 0 || secs > 0x7fffffff;
    const names = Object.keys(xattrs);
    if (!names.length && !big(h.uid) && !big(h.gid) && ms === 0 && !wide) return;
    const records: Buffer[] = [paxRecord('path', h.name)];
    if (h.linkname) records.push(paxRecord('linkpath', h.linkname));
    if (big(h.uid)) records.push(paxRecord('uid', String(h.uid)));
    if (big(h.gid)) records.push(paxRecord('gid', String(h.gid)));
    if (ms !== 0 || wide) records.push(paxRecord('mtime', paxSeconds(h.mtime!)));
    for (const n of names) records.push(paxRecord(`${XATTR_PREFIX}${n}`, xattrs[n]!));
    const body = Buffer.concat(records);
    // tar-stream takes no body for a PAX header entry: the bytes go straight into its output,
    // between two entries (each entry is complete before the next one starts).
    this.#pack.push(
      Buffer.concat([paxHeaderBlock(body.length), body, Buffer.alloc((512 - (body.length % 512)) % 512)]),
    );
    h.name = ustarName(h.name);
    if (h.linkname) h.linkname = ustarName(h.linkname);
    if (big(h.uid)) h.uid = 0;
    if (big(h.gid)) h.gid = 0;
    if (wide) h.mtime = new Date(0);
  }
}
