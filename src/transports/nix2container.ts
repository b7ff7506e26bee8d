import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { type Digest, parseDigest, sha256, VerifyStream } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import {
  type BlobReadOptions,
  type Descriptor,
  type ImageSource,
  MediaType,
  type RawManifest,
} from '../image/index.ts';
import { type PermRule, reproducibleTar, type TarPath } from '../layers/index.ts';
import { GoStruct, type GoValue, goMarshal } from './docker-archive/index.ts';

/**
 * `nix2container:IMAGE.json`: an image nix2container's `buildImage` describes (its `types/types.go`),
 * read directly: layers with `paths` are re-tarred from the store by the reproducible tar writer,
 * `layer-path` layers are read from their file, and the config is built as nix2container builds
 * it (Go `json.Marshal` of an OCI v1.Image). Nothing is stored; every blob is verified.
 */

interface N2cLayer {
  descriptor: Descriptor;
  diffId: Digest;
  paths?: TarPath[];
  file?: string;
  history?: Record<string, unknown>;
}

function bad(file: string, field: string, why: string): LadingError {
  return new LadingError(ErrorCode.ManifestInvalid, `${file}: ${field}: ${why}`, { path: file });
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function strings(v: unknown): GoValue[] | undefined {
  return Array.isArray(v) && v.length > 0 ? v.map((s) => String(s)) : undefined;
}

function emptyStructs(v: unknown): GoValue | undefined {
  if (!isObj(v) || Object.keys(v).length === 0) return undefined;
  return Object.fromEntries(Object.keys(v).map((k) => [k, new GoStruct([])]));
}

/** OCI ImageConfig (image-spec v1.1.1) as Go marshals it: field order, omitempty. */
function goImageConfig(c: unknown): GoStruct {
  const o = isObj(c) ? c : {};
  const fields: [string, GoValue | undefined][] = [
    ['User', typeof o.User === 'string' && o.User !== '' ? o.User : undefined],
    ['ExposedPorts', emptyStructs(o.ExposedPorts)],
    ['Env', strings(o.Env)],
    ['Entrypoint', strings(o.Entrypoint)],
    ['Cmd', strings(o.Cmd)],
    ['Volumes', emptyStructs(o.Volumes)],
    ['WorkingDir', typeof o.WorkingDir === 'string' && o.WorkingDir !== '' ? o.WorkingDir : undefined],
    [
      'Labels',
      isObj(o.Labels) && Object.keys(o.Labels).length > 0
        ? Object.fromEntries(Object.entries(o.Labels).map(([k, v]) => [k, String(v)]))
        : undefined,
    ],
    ['StopSignal', typeof o.StopSignal === 'string' && o.StopSignal !== '' ? o.StopSignal : undefined],
    ['ArgsEscaped', o.ArgsEscaped === true ? true : undefined],
  ];
  return new GoStruct(fields.filter((f): f is [string, GoValue] => f[1] !== undefined));
}

function goHistory(h: Obj | undefined): GoStruct {
  const o = h ?? {};
  const s = (k: string): GoValue | undefined =>
    typeof o[k] === 'string' && o[k] !== '' ? (o[k] as string) : undefined;
  const fields: [string, GoValue | undefined][] = [
    ['created', s('created')],
    ['created_by', s('created_by')],
    ['author', s('author')],
    ['comment', s('comment')],
    ['empty_layer', o.empty_layer === true ? true : undefined],
  ];
  return new GoStruct(fields.filter((f): f is [string, GoValue] => f[1] !== undefined));
}

function perm(v: unknown, file: string, at: string): PermRule {
  if (!isObj(v) || typeof v.regex !== 'string') throw bad(file, at, 'a perms entry needs a regex');
  const rule: PermRule = { regex: v.regex, where: `${file}: ${at}` };
  // Go writes every field: `"mode": ""` is a rule that leaves the mode alone (Sscanf "%o").
  if (v.mode !== undefined && v.mode !== '') {
    const m = typeof v.mode === 'string' && /^[0-7]+$/.test(v.mode) ? Number.parseInt(v.mode, 8) : v.mode;
    if (typeof m !== 'number' || !Number.isInteger(m) || m < 0) throw bad(file, `${at}.mode`, 'not a mode');
    rule.mode = m;
  }
  if (typeof v.uid === 'number') rule.uid = v.uid;
  if (typeof v.gid === 'number') rule.gid = v.gid;
  if (typeof v.uname === 'string' && v.uname !== '') rule.uname = v.uname;
  if (typeof v.gname === 'string' && v.gname !== '') rule.gname = v.gname;
  return rule;
}

function digestField(v: unknown, file: string, at: string): Digest {
  try {
    return parseDigest(String(v));
  } catch {
    throw bad(file, at, `not a digest: ${JSON.stringify(v)}`);
  }
}

/** The image config as nix2container builds it (Go `json.Marshal` of an OCI v1.Image). */
function goImage(json: Obj, layers: N2cLayer[]): GoStruct {
  const created = typeof json.created === 'string' && json.created !== '' ? json.created : undefined;
  const image: [string, GoValue | undefined][] = [
    ['created', created],
    ['architecture', typeof json.arch === 'string' ? json.arch : ''],
    ['os', 'linux'],
    ['config', goImageConfig(json['image-config'])],
    [
      'rootfs',
      new GoStruct([
        ['type', 'layers'],
        ['diff_ids', layers.map((l) => l.diffId)],
      ]),
    ],
    ['history', layers.length > 0 ? layers.map((l) => goHistory(l.history)) : undefined],
  ];
  return new GoStruct(image.filter((f): f is [string, GoValue] => f[1] !== undefined));
}

function ociManifest(configDigest: Digest, configSize: number, layers: N2cLayer[]): RawManifest {
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: configDigest, size: configSize },
      layers: layers.map((l) => l.descriptor),
    }),
  );
  return { bytes, mediaType: MediaType.OciManifest, digest: sha256(bytes) };
}

export class Nix2containerSource implements ImageSource {
  readonly name: string;
  readonly #file: string;
  #loaded?: Promise<{ manifest: RawManifest; config: Buffer; configDigest: Digest; layers: N2cLayer[] }>;

  constructor(file: string) {
    this.#file = resolve(file);
    this.name = `nix2container:${file}`;
  }

  #load() {
    this.#loaded ??= this.#read();
    return this.#loaded;
  }

  async #read() {
    const file = this.#file;
    const json = await this.#readJson();
    if (!isObj(json)) throw bad(file, '(top)', 'not an object');
    if (json.version !== 1) throw bad(file, 'version', `expected 1, got ${JSON.stringify(json.version)}`);
    if (!Array.isArray(json.layers)) throw bad(file, 'layers', 'not an array');
    const layers: N2cLayer[] = [];
    for (const [i, raw] of json.layers.entries()) layers.push(await this.#layer(raw, `layers[${i}]`));
    const config = Buffer.from(goMarshal(goImage(json, layers)));
    const configDigest = sha256(config);
    const manifest = ociManifest(configDigest, config.length, layers);
    return { manifest, config, configDigest, layers };
  }

  async #readJson(): Promise<unknown> {
    const file = this.#file;
    try {
      return JSON.parse(await readFile(file, 'utf8'));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new LadingError(
        e.code ? ErrorCode.NotFound : ErrorCode.ManifestInvalid,
        `${this.name}: ${e.code ? `cannot read ${file} (${e.code})` : `not JSON: ${e.message}`}`,
        { path: file },
      );
    }
  }

  /** One entry of `layers`: a file already built (`layer-path`), or store paths to tar (`paths`). */
  async #layer(raw: unknown, at: string): Promise<N2cLayer> {
    const file = this.#file;
    if (!isObj(raw)) throw bad(file, at, 'not an object');
    const digest = digestField(raw.digest, file, `${at}.digest`);
    const diffId = digestField(raw.diff_ids, file, `${at}.diff_ids`);
    const mediaType = typeof raw.mediatype === 'string' && raw.mediatype ? raw.mediatype : MediaType.OciLayer;
    const layer: N2cLayer = {
      descriptor: { mediaType, digest, size: typeof raw.size === 'number' ? raw.size : 0 },
      diffId,
      history: isObj(raw.History) ? raw.History : undefined,
    };
    if (typeof raw['layer-path'] === 'string' && raw['layer-path'] !== '') {
      layer.file = resolve(dirname(file), raw['layer-path']);
      try {
        layer.descriptor.size = (await stat(layer.file)).size;
      } catch (err) {
        throw bad(
          file,
          `${at}.layer-path`,
          `cannot read ${layer.file} (${(err as NodeJS.ErrnoException).code})`,
        );
      }
    } else if (Array.isArray(raw.paths)) {
      layer.paths = raw.paths.map((p, j) => this.#tarPath(p, `${at}.paths[${j}]`));
      if (layer.descriptor.size <= 0)
        throw bad(file, `${at}.size`, 'a layer built from paths needs its size');
    } else throw bad(file, at, 'has neither paths nor layer-path');
    return layer;
  }

  /** One entry of a layer's `paths`, with its rewrite and perms options. */
  #tarPath(p: unknown, at: string): TarPath {
    const file = this.#file;
    if (!isObj(p) || typeof p.path !== 'string') throw bad(file, at, 'needs a path');
    const o = isObj(p.options) ? p.options : {};
    const tp: TarPath = { path: p.path, where: `${this.name}: ${at}` };
    // Go writes `"rewrite": {"regex": "", "repl": ""}` when there is none; it applies only a
    // non-empty regex.
    const rw =
      isObj(o.rewrite) && typeof o.rewrite.regex === 'string' && o.rewrite.regex !== ''
        ? o.rewrite
        : undefined;
    const perms = Array.isArray(o.perms)
      ? o.perms.map((x, k) => perm(x, file, `${at}.options.perms[${k}]`))
      : [];
    if (rw || perms.length > 0)
      tp.options = {
        ...(rw ? { rewrite: { regex: String(rw.regex), repl: String(rw.repl ?? '') } } : {}),
        perms,
        permsStyle: 'nix2container',
      };
    return tp;
  }

  async topManifest(): Promise<RawManifest> {
    return (await this.#load()).manifest;
  }

  async manifest(digest: Digest): Promise<RawManifest> {
    const { manifest } = await this.#load();
    if (digest === manifest.digest) return manifest;
    throw new LadingError(ErrorCode.NotFound, `${this.name}: no manifest ${digest}`, { ref: this.name });
  }

  async blob(desc: Descriptor, opts: BlobReadOptions = {}): Promise<Readable> {
    const { config, configDigest, layers } = await this.#load();
    if (desc.digest === configDigest) return Readable.from([config]);
    const layer = layers.find((l) => l.descriptor.digest === desc.digest);
    if (!layer)
      throw new LadingError(ErrorCode.NotFound, `${this.name}: no blob ${desc.digest}`, { ref: this.name });
    const raw = layer.file
      ? createReadStream(layer.file, { signal: opts.signal, highWaterMark: 1 << 20 })
      : reproducibleTar(layer.paths ?? []);
    const verify = new VerifyStream({
      digest: layer.descriptor.digest,
      size: layer.descriptor.size,
      source: `${this.name} ${desc.digest}`,
    });
    raw.on('error', (err: Error) => verify.destroy(err));
    // Bytes since the last report (the contract), not a running total.
    if (opts.onProgress) {
      const report = opts.onProgress;
      raw.on('data', (c: Buffer) => report(c.length));
    }
    return raw.pipe(verify);
  }

  async close(): Promise<void> {}
}
