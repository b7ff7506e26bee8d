import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import { type Digest, sha256, VerifyStream } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import {
  type BlobReadOptions,
  type Descriptor,
  type ImageConfig,
  type ImageSource,
  MediaType,
  type Platform,
  parseConfig,
  type RawManifest,
  selectImage,
} from '../image/index.ts';
import {
  planFingerprint,
  planReproducibleTar,
  reproducibleTar,
  reproducibleTarStream,
  type TarPath,
} from '../layers/index.ts';
import { mapLimit } from '../util/index.ts';
import type { LayerDigestCache } from './layer-digest-cache.ts';
import { addNixDatabase } from './nix-database.ts';
import { closureOf, type GraphEntry, popularityOrder, splitLayers } from './popularity.ts';
import type { BuildSpec, HistorySpec, LayerGroup, RewriteRule } from './spec.ts';

/** One layer lading makes: the inputs it is re-created from on demand. */
export interface BuiltLayer {
  descriptor: Descriptor;
  paths: TarPath[];
  history: HistorySpec;
}

export interface BuildOptions {
  /** The opened `fromImage` (required when the spec has one). */
  base?: ImageSource;
  /** Layers hashed at once (default 4). */
  jobs?: number;
  /** Digests of layers whose files have not changed since they were last hashed. */
  digestCache?: LayerDigestCache;
  signal?: AbortSignal;
  /**
   * The architecture when neither the spec nor the base image gives one: the building host's, as
   * nix2container's `arch ? go.GOARCH` (the CLI passes {@link hostArchitecture}). Default amd64.
   */
  hostArchitecture?: string;
}

/** Go's GOARCH for a Node `process.arch`, the name OCI configs use. */
export function hostArchitecture(nodeArch: string): string {
  const goArch: Record<string, string> = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm' };
  return goArch[nodeArch] ?? nodeArch;
}

/**
 * The runtime config of a built image: the base image's, with each key the spec gives replacing
 * it; as Docker does for ENTRYPOINT, a new `Entrypoint` drops the base's `Cmd` unless the spec
 * gives one too (the base's Cmd was meant for the base's Entrypoint).
 */
export function mergeConfig(
  base: Record<string, unknown> | undefined,
  spec: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...(base ?? {}) };
  if (spec.Entrypoint !== undefined && spec.Cmd === undefined) delete out.Cmd;
  return { ...out, ...spec };
}

const OCI_OF: Record<string, string> = {
  [MediaType.DockerLayer]: MediaType.OciLayer,
  [MediaType.DockerLayerGzip]: MediaType.OciLayerGzip,
  [MediaType.DockerLayerZstd]: MediaType.OciLayerZstd,
  [MediaType.DockerForeignLayerGzip]: MediaType.OciLayerNondistributableGzip,
};

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

async function readAll(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** sha256 and length of a stream, reading it once. */
async function measure(s: Readable): Promise<{ digest: Digest; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of s) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { digest: `sha256:${h.digest('hex')}` as Digest, size };
}

function rewriteFor(path: string, rules: RewriteRule[]): { regex: string; repl: string } | undefined {
  for (const r of rules) {
    if (r.path !== undefined ? r.path === path : new RegExp(r.regex).test(path))
      return { regex: r.regex, repl: r.repl };
  }
  return undefined;
}

/** The layers' inputs, in image order: each group split by popularity, then copyToRoot. */
export function planLayers(spec: BuildSpec): { paths: TarPath[]; history: HistorySpec; at: string }[] {
  const held = new Set<string>();
  const out: { paths: TarPath[]; history: HistorySpec; at: string }[] = [];
  const whereOf = new Map<string, string>();
  const graph = spec.closureGraph;
  for (const g of spec.groups) {
    g.paths.forEach((p, j) => {
      if (!whereOf.has(p)) whereOf.set(p, g.where[j]!);
    });
    let sub: GraphEntry[];
    if (graph) {
      const closure = closureOf(graph, g.paths);
      sub = graph.filter((e) => closure.has(e.path));
      const inGraph = new Set(sub.map((e) => e.path));
      for (const p of g.paths) if (!inGraph.has(p)) sub.push({ path: p, references: [] });
    } else {
      sub = g.paths.map((p) => ({ path: p, references: [] }));
    }
    // nix2container's closureGraph sorts the graph by path and each references list (jq
    // `map(.references |= sort) | sort_by(.path)`); node IDs, and so popularity ties, follow.
    sub = sub
      .map((e) => ({ path: e.path, references: [...e.references].sort(byCodePoint) }))
      .sort((a, b) => byCodePoint(a.path, b.path));
    const ordered = popularityOrder(sub).filter((p) => !held.has(p));
    for (const p of ordered) held.add(p);
    for (const chunk of splitLayers(ordered, g.maxLayers)) {
      out.push({
        paths: chunk.map((p) => tarPath(p, g, spec, whereOf.get(p) ?? `${g.at} closure`)),
        history: { ...spec.history, ...g.history },
        at: g.at,
      });
    }
  }
  if (spec.copyToRoot.paths.length > 0) {
    // nix2container puts the closure of copyToRoot into the same layer (at its store paths), less
    // what an earlier layer holds; the copyToRoot paths themselves go to `/`.
    const roots = new Set(spec.copyToRoot.paths);
    const deps = graph
      ? [...closureOf(graph, spec.copyToRoot.paths)]
          .filter((p) => !roots.has(p) && !held.has(p))
          .sort(byCodePoint)
      : [];
    const depGroup: LayerGroup = {
      paths: [],
      where: [],
      maxLayers: 1,
      perms: [],
      rewrites: [],
      history: {},
      at: 'copyToRoot',
    };
    out.push({
      paths: [
        ...spec.copyToRoot.paths.map((p, j) => ({
          path: p,
          where: spec.copyToRoot.where[j],
          options: {
            // A directory's contents go to `/`; a file goes to `/NAME`.
            rewrite: { regex: `^${escapeRegex(isDirSync(p) ? p : dirname(p))}`, repl: '' },
            perms: spec.perms,
            permsStyle: 'nix2container' as const,
          },
        })),
        ...deps.map((p) => tarPath(p, depGroup, spec, 'copyToRoot closure')),
      ],
      history: spec.history,
      at: 'copyToRoot',
    });
  }
  return out;
}

/** jq's string order (by code point). */
function byCodePoint(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

function isDirSync(p: string): boolean {
  // The spec parser has already stat'ed every path.
  return statSync(p).isDirectory();
}

function tarPath(p: string, g: LayerGroup, spec: BuildSpec, where: string): TarPath {
  const rewrite = rewriteFor(p, [...g.rewrites, ...spec.rewrites]);
  const perms = [...spec.perms, ...g.perms];
  // nix2container's rule: every matching rule applies in order (last wins), each resetting uid/gid.
  const options =
    rewrite || perms.length > 0
      ? { ...(rewrite ? { rewrite } : {}), perms, permsStyle: 'nix2container' as const }
      : undefined;
  return options ? { path: p, where, options } : { path: p, where };
}

function ociLayer(d: Descriptor): Descriptor {
  const out: Descriptor = { mediaType: OCI_OF[d.mediaType] ?? d.mediaType, digest: d.digest, size: d.size };
  if (d.urls) out.urls = d.urls;
  if (d.annotations) out.annotations = d.annotations;
  return out;
}

/**
 * An image built from a spec, as an image source: lazy (layers are hashed once when built and
 * re-created from the files on every read, verified), base layers passed through from the base.
 */
export class BuiltImage implements ImageSource {
  readonly name: string;
  readonly layers: BuiltLayer[];
  readonly manifestBytes: Buffer;
  readonly manifestDigest: Digest;
  readonly configBytes: Buffer;
  readonly configDigest: Digest;
  readonly #base: ImageSource | undefined;
  readonly #baseLayers: Set<string>;

  private constructor(
    name: string,
    layers: BuiltLayer[],
    baseLayers: Descriptor[],
    config: Buffer,
    manifest: Buffer,
    base: ImageSource | undefined,
  ) {
    this.name = name;
    this.layers = layers;
    this.configBytes = config;
    this.configDigest = sha256(config);
    this.manifestBytes = manifest;
    this.manifestDigest = sha256(manifest);
    this.#base = base;
    this.#baseLayers = new Set(baseLayers.map((d) => d.digest));
  }

  /** Builds the image described by a validated spec: hashes every layer once, never stores one. */
  static async build(spec: BuildSpec, name: string, opts: BuildOptions = {}): Promise<BuiltImage> {
    let baseConfig: ImageConfig | undefined;
    let baseLayers: Descriptor[] = [];
    if (spec.fromImage) {
      if (!opts.base)
        throw new LadingError(ErrorCode.Internal, 'build: fromImage given but no base source opened');
      ({ config: baseConfig, layers: baseLayers } = await readBase(
        opts.base,
        spec,
        opts.signal,
        opts.hostArchitecture,
      ).catch((err: unknown) => {
        throw fromImageError(err);
      }));
    }
    const planned = planLayers(spec);
    if (spec.nixDatabase) await addNixDatabase(planned, spec.closureGraph, spec.nixDatabase, spec.history);
    const layers = await mapLimit(planned, opts.jobs ?? 4, async (l) => {
      const plan = await planReproducibleTar(l.paths);
      const key = opts.digestCache ? planFingerprint(plan) : '';
      let measured = opts.digestCache ? await opts.digestCache.get(key) : undefined;
      if (!measured) {
        measured = await measure(reproducibleTarStream(plan));
        await opts.digestCache?.set(key, measured);
      }
      const { digest, size } = measured;
      return {
        descriptor: { mediaType: MediaType.OciLayer, digest, size },
        paths: l.paths,
        history: l.history,
      } satisfies BuiltLayer;
    });
    const created = spec.created;
    const history: Record<string, unknown>[] = [
      ...((baseConfig?.history as Record<string, unknown>[]) ?? []),
    ];
    for (const l of layers) {
      history.push({ created, created_by: l.history.created_by ?? 'lading build', ...pick(l.history) });
    }
    const configObj: Record<string, unknown> = {
      created,
      architecture: spec.architecture ?? baseConfig?.architecture ?? opts.hostArchitecture ?? 'amd64',
      ...((spec.variant ?? baseConfig?.variant) ? { variant: spec.variant ?? baseConfig?.variant } : {}),
      os: spec.os,
      config: mergeConfig(baseConfig?.config as Record<string, unknown> | undefined, spec.config),
      rootfs: {
        type: 'layers',
        diff_ids: [...(baseConfig?.rootfs?.diff_ids ?? []), ...layers.map((l) => l.descriptor.digest)],
      },
      history,
    };
    const config = Buffer.from(JSON.stringify(configObj));
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: { mediaType: MediaType.OciConfig, digest: sha256(config), size: config.length },
        layers: [...baseLayers.map(ociLayer), ...layers.map((l) => l.descriptor)],
      }),
    );
    return new BuiltImage(name, layers, baseLayers, config, manifest, opts.base);
  }

  async topManifest(): Promise<RawManifest> {
    return { bytes: this.manifestBytes, mediaType: MediaType.OciManifest, digest: this.manifestDigest };
  }

  async manifest(digest: Digest): Promise<RawManifest> {
    if (digest === this.manifestDigest) return this.topManifest();
    throw new LadingError(ErrorCode.NotFound, `${this.name}: no manifest ${digest}`);
  }

  async blob(desc: Descriptor, opts: BlobReadOptions = {}): Promise<Readable> {
    if (desc.digest === this.configDigest) return Readable.from([this.configBytes]);
    const mine = this.layers.find((l) => l.descriptor.digest === desc.digest);
    if (mine) {
      const verify = new VerifyStream({
        digest: mine.descriptor.digest,
        size: mine.descriptor.size,
        source: `${this.name} layer`,
      });
      const tar = reproducibleTar(mine.paths);
      tar.on('error', (err) => verify.destroy(err));
      // Bytes since the last report (the contract), not a running total. tar is already piped,
      // so this listener does not start a flow the consumer would miss.
      if (opts.onProgress) {
        const report = opts.onProgress;
        tar.on('data', (c: Buffer) => report(c.length));
      }
      return tar.pipe(verify);
    }
    if (this.#base && this.#baseLayers.has(desc.digest)) return this.#base.blob(desc, opts);
    throw new LadingError(ErrorCode.NotFound, `${this.name}: no blob ${desc.digest}`);
  }

  async close(): Promise<void> {
    await this.#base?.close();
  }
}

/** A failure to read the base, named as the spec field it comes from (the code is kept). */
function fromImageError(err: unknown): unknown {
  if (!(err instanceof LadingError) || err.code === ErrorCode.Aborted) return err;
  const { ref, registry, url, method, status, path, temporary } = err;
  const context = Object.fromEntries(
    Object.entries({ ref, registry, url, method, status, path, temporary }).filter(
      ([, v]) => v !== undefined,
    ),
  );
  return new LadingError(err.code, `build spec: fromImage: ${err.message}`, context, { cause: err });
}

function pick(h: HistorySpec): HistorySpec {
  const out: HistorySpec = {};
  if (h.author !== undefined) out.author = h.author;
  if (h.comment !== undefined) out.comment = h.comment;
  return out;
}

async function readBase(
  base: ImageSource,
  spec: BuildSpec,
  signal?: AbortSignal,
  hostArch = 'amd64',
): Promise<{ config: ImageConfig; layers: Descriptor[] }> {
  const wanted: Platform = { os: spec.os, architecture: spec.architecture ?? hostArch };
  if (spec.variant) wanted.variant = spec.variant;
  // A single-image base is taken as it is (its platform is not checked, as before).
  const sel = await selectImage(base, { platform: wanted, signal });
  const configBytes = await readAll(await base.blob(sel.manifest.config, { signal }));
  return { config: parseConfig(configBytes, `${base.name} config`), layers: sel.manifest.layers };
}
