import { createHash } from 'node:crypto';
import { writeSync } from 'node:fs';
import { type FileHandle, link, open, rm } from 'node:fs/promises';
import { PassThrough, Readable } from 'node:stream';
import {
  type Digest,
  digestAlgorithm,
  digestHex,
  digestMismatch,
  sha256,
  VerifyStream,
} from '../../digest/index.ts';
import { ErrorCode, LadingError } from '../../errors/index.ts';
import { GO_TAR_END, goTarHeader, goTarPadding } from '../../layers/index.ts';
import { mapLimit, tempFileBeside, writeOutputFile } from '../../util/index.ts';
import { GoRaw, GoStruct, type GoValue, goMarshal, topLevelRaw } from './go-json.ts';

/** One layer for the archive: its diffID and a way to open its UNCOMPRESSED bytes. */
export interface ArchiveLayer {
  diffId: Digest;
  /** Uncompressed size, when known; otherwise measured first (one extra read of the layer). */
  size?: number;
  /**
   * A cheap guess of the size, asked for when the layer's turn comes (e.g. a gzip trailer). The
   * stream is still checked against it: a wrong guess fails with E_SIZE_MISMATCH. Undefined means
   * "measure it".
   */
  sizeHint?: () => Promise<number | undefined>;
  open(): Promise<Readable>;
  /**
   * The uncompressed bytes to a synchronous consumer instead (each piece valid only during the
   * call), when the source can: socket → inflate → file on one thread. Unverified: the writer
   * checks size and diffID.
   */
  read?(onData: (piece: Buffer) => void): Promise<void>;
}

export interface DockerArchiveInput {
  configBytes: Buffer;
  layers: ArchiveLayer[];
  /** Fully qualified `name:tag` strings (`docker.io/library/alpine:latest`); empty for none. */
  repoTags: string[];
  /** Parallel layer reads when sizes must be measured (default 4). */
  jobs?: number;
  signal?: AbortSignal;
}

/** How far the next layer's decompression may run ahead (bytes). */
const READ_AHEAD = 8 << 20;

const LEGACY_CONFIG_KEYS = [
  'architecture',
  'config',
  'container',
  'container_config',
  'created',
  'docker_version',
  'os',
];

/**
 * Reads every layer once, in parallel, to learn its uncompressed size and check its diffID.
 * (A tar header carries the size before the data, so the archive cannot be streamed without it.)
 */
export async function measureLayers(layers: ArchiveLayer[], jobs = 4): Promise<ArchiveLayer[]> {
  const unique = new Map<string, ArchiveLayer>();
  for (const l of layers) if (l.size === undefined && !unique.has(l.diffId)) unique.set(l.diffId, l);
  const sizes = new Map<string, number>();
  await mapLimit([...unique.values()], jobs, async (l) => {
    const v = new VerifyStream({ digest: l.diffId, source: `layer ${l.diffId} (uncompressed)` });
    const src = await l.open();
    src.once('error', (err) => v.destroy(err));
    let n = 0;
    for await (const c of src.pipe(v)) n += (c as Buffer).length;
    sizes.set(l.diffId, n);
  });
  return layers.map((l) => (l.size !== undefined ? l : { ...l, size: sizes.get(l.diffId)! }));
}

/** The tar header of one regular file of the archive (a layer `<diffID hex>.tar`, …). */
export function file(name: string, size: number): Buffer {
  return goTarHeader({ name, typeflag: '0', mode: 0o444, size });
}

function bytesEntry(name: string, data: Buffer): Buffer[] {
  return [file(name, data.length), data, goTarPadding(data.length)];
}

/** The legacy per-layer metadata and the `repositories` map, as containers/image computes them. */
export function legacyMetadata(
  configBytes: Buffer,
  diffIds: Digest[],
  repoTags: string[],
): { layers: { id: string; json: Buffer }[]; repositories: Record<string, Record<string, string>> } {
  const raw = topLevelRaw(configBytes.toString('utf8'));
  const out: { id: string; json: Buffer }[] = [];
  let chainId = '';
  let lastId = '';
  diffIds.forEach((diffId, i) => {
    const layerConfig: Record<string, GoValue> = {};
    if (lastId) layerConfig.parent = lastId;
    if (i === diffIds.length - 1) {
      for (const k of LEGACY_CONFIG_KEYS) {
        const v = raw.get(k);
        layerConfig[k] = v === undefined ? null : new GoRaw(v);
      }
    }
    chainId = chainId === '' ? diffId : sha256(`${chainId} ${diffId}`);
    layerConfig.layer_id = chainId;
    const id = createHash('sha256').update(goMarshal(layerConfig)).digest('hex');
    delete layerConfig.layer_id;
    layerConfig.id = id;
    out.push({ id, json: Buffer.from(goMarshal(layerConfig)) });
    lastId = id;
  });
  const repositories: Record<string, Record<string, string>> = {};
  if (lastId) {
    for (const t of repoTags) {
      const i = t.lastIndexOf(':');
      const name = t.slice(0, i);
      repositories[name] ??= {};
      repositories[name][t.slice(i + 1)] = lastId;
    }
  }
  return { layers: out, repositories };
}

/**
 * The docker-archive skopeo (containers/image) writes for `docker-archive:FILE:NAME:TAG`, as a byte
 * stream: layers `<diffID>.tar` (uncompressed, in manifest order, repeats once), `<config>.json`, the
 * legacy `<id>/{layer.tar,VERSION,json}` entries, `manifest.json`, `repositories`, two zero blocks.
 * Each layer is verified against its diffID while it streams.
 */
export async function* dockerArchiveChunks(input: DockerArchiveInput): AsyncGenerator<Buffer> {
  // Layers without a size or a hint are measured up front, in parallel.
  const layers = await measureLayers(
    input.layers.filter((l) => l.size === undefined && !l.sizeHint),
    input.jobs,
  ).then((measured) => {
    const sizes = new Map(measured.map((l) => [l.diffId, l.size]));
    return input.layers.map((l) =>
      l.size === undefined && !l.sizeHint ? { ...l, size: sizes.get(l.diffId) } : l,
    );
  });
  const configDigest = sha256(input.configBytes);
  const written = new Set<string>();
  const unique = layers.filter((l) => {
    const name = `${digestHex(l.diffId)}.tar`;
    if (written.has(name)) return false;
    written.add(name);
    return true;
  });
  // Open the next layer while this one streams, so its decompression (on libuv's thread pool)
  // overlaps with hashing here; the buffer bounds how far it runs ahead.
  const openAhead = (l: ArchiveLayer): Promise<Readable> => {
    const p = l.open().then((s) => {
      const buf = new PassThrough({ highWaterMark: READ_AHEAD });
      // Failing while read ahead, before anyone listens: kept in `buf.errored` for its turn.
      buf.on('error', () => {});
      s.once('error', (err) => buf.destroy(err));
      return s.pipe(buf);
    });
    // Observed later, when its turn comes; never an unhandled rejection meanwhile.
    p.catch(() => {});
    return p;
  };
  let next = unique[0] ? openAhead(unique[0]) : undefined;
  for (let i = 0; i < unique.length; i++) {
    const l = unique[i]!;
    const size =
      l.size ?? (await l.sizeHint?.()) ?? (await measureLayers([{ ...l, sizeHint: undefined }]))[0]!.size!;
    yield file(`${digestHex(l.diffId)}.tar`, size);
    const v = new VerifyStream({ digest: l.diffId, size, source: `layer ${l.diffId} (uncompressed)` });
    const src = await next!;
    if (src.errored) throw src.errored;
    next = unique[i + 1] ? openAhead(unique[i + 1]!) : undefined;
    src.once('error', (err) => v.destroy(err));
    for await (const c of src.pipe(v)) yield c as Buffer;
    yield goTarPadding(size);
  }
  yield* archiveTail(input, layers, configDigest);
}

/** Everything after the layer files: the config, the legacy entries, manifest.json, repositories, the end. */
export function archiveTail(
  input: DockerArchiveInput,
  layers: ArchiveLayer[],
  configDigest: Digest,
): Buffer[] {
  const parts: Buffer[] = [];
  parts.push(...bytesEntry(`${digestHex(configDigest)}.json`, input.configBytes));
  const legacy = legacyMetadata(
    input.configBytes,
    layers.map((l) => l.diffId),
    input.repoTags,
  );
  for (let i = 0; i < layers.length; i++) {
    const m = legacy.layers[i]!;
    const physical = `${digestHex(layers[i]!.diffId)}.tar`;
    parts.push(
      goTarHeader({
        name: `${m.id}/layer.tar`,
        typeflag: '2',
        mode: 0,
        size: 0,
        linkname: `../${physical}`,
      }),
    );
    parts.push(...bytesEntry(`${m.id}/VERSION`, Buffer.from('1.0')));
    parts.push(...bytesEntry(`${m.id}/json`, m.json));
  }
  const manifest = [
    new GoStruct([
      ['Config', `${digestHex(configDigest)}.json`],
      ['RepoTags', input.repoTags],
      ['Layers', layers.map((l) => `${digestHex(l.diffId)}.tar`)],
    ]),
  ];
  parts.push(...bytesEntry('manifest.json', Buffer.from(goMarshal(manifest))));
  parts.push(...bytesEntry('repositories', Buffer.from(goMarshal(legacy.repositories))));
  parts.push(GO_TAR_END);
  return parts;
}

/**
 * Writes the archive to a file with every layer's size known up front (given or hinted): the
 * file's layout is then fixed, so the layers are decompressed side by side (`jobs` at a time) and
 * each is written into its own region of the file, verified against its diffID and size. Returns
 * false, writing nothing, when a size is unknown. Atomic like {@link writeDockerArchive}; a hint
 * that lies fails with E_SIZE_MISMATCH and leaves nothing behind.
 */
export async function writeDockerArchiveParallel(
  input: DockerArchiveInput,
  path: string,
  jobs = 3,
): Promise<boolean> {
  const names = new Set<string>();
  const unique = input.layers.filter((l) => {
    const name = `${digestHex(l.diffId)}.tar`;
    if (names.has(name)) return false;
    names.add(name);
    return true;
  });
  const sizes = await Promise.all(unique.map(async (l) => l.size ?? (await l.sizeHint?.())));
  if (sizes.some((n) => n === undefined)) return false;
  // The file, piece by piece: fixed bytes, and regions each layer fills.
  const fixed: { offset: number; data: Buffer }[] = [];
  const regions: { offset: number; size: number; layer: ArchiveLayer }[] = [];
  let offset = 0;
  const put = (data: Buffer): void => {
    fixed.push({ offset, data });
    offset += data.length;
  };
  for (const [i, l] of unique.entries()) {
    const size = sizes[i]!;
    put(file(`${digestHex(l.diffId)}.tar`, size));
    regions.push({ offset, size, layer: l });
    offset += size;
    put(goTarPadding(size));
  }
  for (const data of archiveTail(input, input.layers, sha256(input.configBytes))) put(data);

  const tmp = await tempFileBeside(path);
  const fail = (err: unknown): LadingError =>
    err instanceof LadingError
      ? err
      : new LadingError(ErrorCode.Io, `cannot write ${path}: ${(err as Error).message}`, { path });
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, 'wx', 0o644);
    const out = fh;
    for (const f of fixed) if (f.data.length) await out.write(f.data, 0, f.data.length, f.offset);
    await mapLimit(regions, jobs, async (r) => {
      if (r.layer.read) {
        await writeRegionSync(out.fd, r);
        return;
      }
      const v = new VerifyStream({
        digest: r.layer.diffId,
        size: r.size,
        source: `layer ${r.layer.diffId} (uncompressed)`,
      });
      const src = await r.layer.open();
      src.once('error', (err) => v.destroy(err));
      let at = r.offset;
      for await (const c of src.pipe(v)) {
        const chunk = c as Buffer;
        await out.write(chunk, 0, chunk.length, at);
        at += chunk.length;
      }
    });
    await out.sync();
    await out.close();
    fh = undefined;
    // link() refuses an existing file, unlike rename().
    await link(tmp, path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'EEXIST') throw new LadingError(ErrorCode.Exists, `${path} already exists`, { path });
      throw err;
    });
    await rm(tmp, { force: true });
    return true;
  } catch (err) {
    await fh?.close().catch(() => {});
    await rm(tmp, { force: true });
    throw fail(err);
  }
}

/** One layer's region of the archive file from its synchronous reader, checked against size and diffID. */
async function writeRegionSync(
  fd: number,
  r: { offset: number; size: number; layer: ArchiveLayer },
): Promise<void> {
  const what = `layer ${r.layer.diffId} (uncompressed)`;
  const h = createHash(digestAlgorithm(r.layer.diffId));
  let n = 0;
  await r.layer.read!((piece) => {
    if (n + piece.length > r.size)
      throw new LadingError(
        ErrorCode.SizeMismatch,
        `size mismatch for ${what}: expected ${r.size} bytes, got more than ${n + piece.length}`,
        { expected: r.size, found: n + piece.length },
      );
    h.update(piece);
    for (let off = 0; off < piece.length; )
      off += writeSync(fd, piece, off, piece.length - off, r.offset + n + off);
    n += piece.length;
  });
  if (n !== r.size)
    throw new LadingError(
      ErrorCode.SizeMismatch,
      `size mismatch for ${what}: expected ${r.size} bytes, got only ${n}`,
      { expected: r.size, found: n },
    );
  const found = `${digestAlgorithm(r.layer.diffId)}:${h.digest('hex')}`;
  if (found !== r.layer.diffId) throw digestMismatch(r.layer.diffId, found, n, what);
}

/** {@link dockerArchiveChunks} as a Readable. */
export function dockerArchiveStream(input: DockerArchiveInput): Readable {
  return Readable.from(dockerArchiveChunks(input), { objectMode: false, highWaterMark: 1 << 20 });
}

/** The flat sha256 of the archive (what `dockerTools.pullImage` checks), without writing it. */
export async function dockerArchiveHash(
  input: DockerArchiveInput,
): Promise<{ sha256: Digest; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of dockerArchiveChunks(input)) {
    h.update(c);
    size += c.length;
  }
  return { sha256: `sha256:${h.digest('hex')}` as Digest, size };
}

/**
 * Writes the archive to `path` atomically (nothing is left there on failure; an existing file is
 * refused) and returns its sha256 and size; `hash: false` skips hashing it (the digest is then
 * empty), for writers that only want the file.
 */
export async function writeDockerArchive(
  input: DockerArchiveInput,
  path: string,
  opts: { hash?: boolean } = {},
): Promise<{ sha256: Digest; size: number }> {
  const h = opts.hash === false ? undefined : createHash('sha256');
  let size = 0;
  const tee = async function* (): AsyncGenerator<Buffer> {
    for await (const c of dockerArchiveChunks(input)) {
      h?.update(c);
      size += c.length;
      yield c;
    }
  };
  await writeOutputFile(path, Readable.from(tee(), { objectMode: false }), { exclusive: true }).catch(
    (err) => {
      throw err instanceof LadingError
        ? err
        : new LadingError(ErrorCode.Io, `cannot write ${path}: ${(err as Error).message}`, { path });
    },
  );
  return { sha256: (h ? `sha256:${h.digest('hex')}` : '') as Digest, size };
}
