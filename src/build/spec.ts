import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { CONTAINER_CONFIG_FIELDS } from '../image/index.ts';
import type { PermRule } from '../layers/index.ts';
import type { GraphEntry } from './popularity.ts';

/** One `rewrites` rule: store paths matching `regex` get their destination rewritten. */
export interface RewriteRule {
  regex: string;
  repl: string;
  /** Only this input path (else every path of the group whose name matches). */
  path?: string;
}

export interface HistorySpec {
  created_by?: string;
  author?: string;
  comment?: string;
}

export interface LayerGroup {
  paths: string[];
  /** Where each path came from (`layers[1].paths[0]`). */
  where: string[];
  maxLayers: number;
  perms: PermRule[];
  rewrites: RewriteRule[];
  history: HistorySpec;
  /** Where the group came from (`layers[1]`, `copyToRoot`). */
  at: string;
}

/** A validated build spec, paths absolute. */
export interface BuildSpec {
  fromImage?: string;
  architecture?: string;
  os: string;
  variant?: string;
  created: string;
  config: Record<string, unknown>;
  closureGraph?: GraphEntry[];
  groups: LayerGroup[];
  /** The directories and files placed at `/` (one layer, last). */
  copyToRoot: { paths: string[]; where: string[] };
  perms: PermRule[];
  rewrites: RewriteRule[];
  history: HistorySpec;
  /** nix2container's `initializeNixDatabase` with `nixUid`/`nixGid` (default 0). */
  nixDatabase?: { uid: number; gid: number };
}

export interface ParseSpecOptions {
  /** Directory relative paths are resolved against (the spec file's). */
  baseDir: string;
  /** `SOURCE_DATE_EPOCH` (seconds): the default `created` when the spec gives none. */
  sourceDateEpoch?: string;
  /** Reads a `closureGraph` file (so tests and the CLI share one reader). */
  readFile?: (path: string) => string;
}

const TOP_KEYS = [
  'fromImage',
  'architecture',
  'os',
  'variant',
  'created',
  'config',
  'closureGraph',
  'maxLayers',
  'layers',
  'copyToRoot',
  'perms',
  'rewrites',
  'history',
  'initializeNixDatabase',
  'nixUid',
  'nixGid',
];
const GROUP_KEYS = ['paths', 'maxLayers', 'perms', 'rewrites', 'history'];
const PERM_KEYS = ['regex', 'mode', 'uid', 'gid', 'uname', 'gname'];
const REWRITE_KEYS = ['regex', 'repl', 'path'];
const HISTORY_KEYS = ['created_by', 'author', 'comment'];

export function specError(field: string, msg: string): LadingError {
  return new LadingError(ErrorCode.BadArgument, `build spec: ${field}: ${msg}`);
}

type Obj = Record<string, unknown>;

function object(v: unknown, field: string, keys: readonly string[]): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw specError(field || '(top level)', 'must be an object');
  for (const k of Object.keys(v)) {
    if (!keys.includes(k))
      throw specError(field ? `${field}.${k}` : k, `unknown key (expected one of ${keys.join(', ')})`);
  }
  return v as Obj;
}

function str(v: unknown, field: string): string {
  if (typeof v !== 'string' || v === '') throw specError(field, 'must be a non-empty string');
  return v;
}

function arr(v: unknown, field: string): unknown[] {
  if (!Array.isArray(v)) throw specError(field, 'must be an array');
  return v;
}

function int(v: unknown, field: string, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
    throw specError(field, `must be an integer ≥ ${min}`);
  return v;
}

function regex(v: unknown, field: string): string {
  const s = str(v, field);
  try {
    new RegExp(s);
  } catch (err) {
    throw specError(field, `invalid regular expression: ${(err as Error).message}`);
  }
  return s;
}

function existingPath(v: unknown, field: string, baseDir: string): string {
  const p = resolve(baseDir, str(v, field));
  try {
    statSync(p);
  } catch {
    throw specError(field, `${p} does not exist`);
  }
  return p;
}

function perms(v: unknown, field: string): PermRule[] {
  return arr(v, field).map((item, i) => {
    const at = `${field}[${i}]`;
    const o = object(item, at, PERM_KEYS);
    const rule: PermRule = { regex: regex(o.regex, `${at}.regex`), where: at };
    if (o.mode !== undefined) {
      const m =
        typeof o.mode === 'string' && /^0?[0-7]{1,4}$/.test(o.mode) ? Number.parseInt(o.mode, 8) : o.mode;
      if (typeof m !== 'number' || !Number.isInteger(m) || m < 0 || m > 0o7777)
        throw specError(`${at}.mode`, 'must be an octal string like "0755" (or a number ≤ 0o7777)');
      rule.mode = m;
    }
    if (o.uid !== undefined) rule.uid = int(o.uid, `${at}.uid`, 0);
    if (o.gid !== undefined) rule.gid = int(o.gid, `${at}.gid`, 0);
    if (o.uname !== undefined) rule.uname = str(o.uname, `${at}.uname`);
    if (o.gname !== undefined) rule.gname = str(o.gname, `${at}.gname`);
    return rule;
  });
}

function rewrites(v: unknown, field: string, baseDir: string): RewriteRule[] {
  return arr(v, field).map((item, i) => {
    const at = `${field}[${i}]`;
    const o = object(item, at, REWRITE_KEYS);
    if (typeof o.repl !== 'string') throw specError(`${at}.repl`, 'must be a string');
    const r: RewriteRule = { regex: regex(o.regex, `${at}.regex`), repl: o.repl };
    if (o.path !== undefined) r.path = resolve(baseDir, str(o.path, `${at}.path`));
    return r;
  });
}

function history(v: unknown, field: string): HistorySpec {
  const o = object(v, field, HISTORY_KEYS);
  const h: HistorySpec = {};
  for (const k of HISTORY_KEYS as (keyof HistorySpec)[]) {
    if (o[k] !== undefined) {
      if (typeof o[k] !== 'string') throw specError(`${field}.${k}`, 'must be a string');
      h[k] = o[k];
    }
  }
  return h;
}

function closureGraph(v: unknown, field: string, opts: ParseSpecOptions): GraphEntry[] {
  let value = v;
  if (typeof v === 'string') {
    const file = resolve(opts.baseDir, v);
    let text: string;
    try {
      text = opts.readFile ? opts.readFile(file) : readFileSync(file, 'utf8');
    } catch (err) {
      throw specError(field, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw specError(field, `${file} is not JSON: ${(err as Error).message}`);
    }
  }
  // With structured attrs, exportReferencesGraph puts each graph in `.attrs.json` under the name
  // it was given (`exportReferencesGraph.closure = [ … ]` gives { "closure": [...] }).
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const o = value as Obj;
    const erg = o.exportReferencesGraph;
    const names =
      erg && typeof erg === 'object' && !Array.isArray(erg)
        ? Object.keys(erg)
        : ['closure', 'graph'].filter((k) => k in o);
    if (names.length === 0)
      throw specError(
        field,
        'an object must be a derivation\'s .attrs.json with exportReferencesGraph, or hold the graph under "closure" or "graph"',
      );
    const parts = names.map((k) => arr(o[k], `${field}.${k}`));
    value = parts.flat();
  }
  return arr(value, field).map((item, i) => {
    const at = `${field}[${i}]`;
    if (typeof item !== 'object' || item === null) throw specError(at, 'must be an object');
    const o = item as Obj;
    const path = str(o.path, `${at}.path`);
    const refs = arr(o.references ?? [], `${at}.references`).map((r, j) => str(r, `${at}.references[${j}]`));
    return { path, references: refs };
  });
}

function strings(v: unknown, field: string): string[] {
  return arr(v, field).map((s, i) => {
    if (typeof s !== 'string') throw specError(`${field}[${i}]`, 'must be a string');
    return s;
  });
}

/** `{ "80/tcp": {} }`: keys as `check` wants them, every value an empty object. */
function emptyObjects(v: unknown, field: string, check?: { re: RegExp; what: string }): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw specError(field, 'must be an object');
  for (const [k, x] of Object.entries(v)) {
    if (check && !check.re.test(k)) throw specError(`${field}.${k}`, `must be ${check.what}`);
    if (typeof x !== 'object' || x === null || Array.isArray(x) || Object.keys(x).length > 0)
      throw specError(`${field}.${k}`, 'must be {}');
  }
  return v as Obj;
}

const HEALTHCHECK_KEYS = ['Test', 'Interval', 'Timeout', 'StartPeriod', 'StartInterval', 'Retries'];

/** The `config` object: known keys only, each of the type the OCI image config gives it. */
function imageConfig(v: unknown): Obj {
  // The keys of a Docker/OCI container config, as Go's image types have them.
  const o = object(v, 'config', CONTAINER_CONFIG_FIELDS);
  for (const [k, x] of Object.entries(o)) {
    const at = `config.${k}`;
    switch (k) {
      case 'User':
      case 'WorkingDir':
      case 'StopSignal':
        if (typeof x !== 'string') throw specError(at, 'must be a string');
        break;
      case 'Env':
      case 'Entrypoint':
      case 'Cmd':
      case 'OnBuild':
      case 'Shell':
        strings(x, at);
        break;
      case 'ExposedPorts':
        emptyObjects(x, at, { re: /^\d{1,5}(\/(tcp|udp|sctp))?$/, what: 'a port like "80/tcp"' });
        break;
      case 'Volumes':
        emptyObjects(x, at);
        break;
      case 'Labels': {
        if (typeof x !== 'object' || x === null || Array.isArray(x)) throw specError(at, 'must be an object');
        for (const [l, s] of Object.entries(x))
          if (typeof s !== 'string') throw specError(`${at}.${l}`, 'must be a string');
        break;
      }
      case 'ArgsEscaped':
        if (typeof x !== 'boolean') throw specError(at, 'must be true or false');
        break;
      case 'Healthcheck': {
        const h = object(x, at, HEALTHCHECK_KEYS);
        if (h.Test !== undefined) strings(h.Test, `${at}.Test`);
        for (const n of HEALTHCHECK_KEYS.slice(1)) if (h[n] !== undefined) int(h[n], `${at}.${n}`, 0);
        break;
      }
    }
  }
  return o;
}

function epochString(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(/\.000Z$/, 'Z');
}

/**
 * Validates a parsed build spec: unknown keys, wrong types, missing paths and conflicting perms
 * fail with a `LadingError` naming the field (`layers[1].paths[0]`). Relative paths are resolved
 * against `opts.baseDir`.
 */
export function parseBuildSpec(json: unknown, opts: ParseSpecOptions): BuildSpec {
  const o = object(json, '', TOP_KEYS);
  const baseDir = opts.baseDir;
  let created = epochString(0);
  if (opts.sourceDateEpoch !== undefined && opts.sourceDateEpoch !== '') {
    if (!/^\d+$/.test(opts.sourceDateEpoch))
      throw specError(
        'SOURCE_DATE_EPOCH',
        `must be a number of seconds, not ${JSON.stringify(opts.sourceDateEpoch)}`,
      );
    created = epochString(Number(opts.sourceDateEpoch));
  }
  if (o.created !== undefined) {
    created = str(o.created, 'created');
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(created))
      throw specError(
        'created',
        `must be an RFC 3339 time like 1970-01-01T00:00:00Z, not ${JSON.stringify(created)}`,
      );
  }
  const config = o.config === undefined ? {} : imageConfig(o.config);
  const topPerms = o.perms === undefined ? [] : perms(o.perms, 'perms');
  const topRewrites = o.rewrites === undefined ? [] : rewrites(o.rewrites, 'rewrites', baseDir);
  const topHistory = o.history === undefined ? {} : history(o.history, 'history');
  const maxLayers = o.maxLayers === undefined ? 1 : int(o.maxLayers, 'maxLayers', 1);
  const groups: LayerGroup[] = (o.layers === undefined ? [] : arr(o.layers, 'layers')).map((g, i) => {
    const at = `layers[${i}]`;
    const go = object(g, at, GROUP_KEYS);
    const paths = arr(go.paths, `${at}.paths`);
    if (paths.length === 0) throw specError(`${at}.paths`, 'must list at least one path');
    const where = paths.map((_, j) => `${at}.paths[${j}]`);
    const groupPerms = go.perms === undefined ? [] : perms(go.perms, `${at}.perms`);
    return {
      paths: paths.map((p, j) => existingPath(p, where[j]!, baseDir)),
      where,
      maxLayers: go.maxLayers === undefined ? maxLayers : int(go.maxLayers, `${at}.maxLayers`, 1),
      perms: groupPerms,
      rewrites: go.rewrites === undefined ? [] : rewrites(go.rewrites, `${at}.rewrites`, baseDir),
      history: go.history === undefined ? {} : history(go.history, `${at}.history`),
      at,
    };
  });
  const rootPaths = o.copyToRoot === undefined ? [] : arr(o.copyToRoot, 'copyToRoot');
  const rootWhere = rootPaths.map((_, j) => `copyToRoot[${j}]`);
  const spec: BuildSpec = {
    os: o.os === undefined ? 'linux' : str(o.os, 'os'),
    created,
    config,
    groups,
    copyToRoot: { paths: rootPaths.map((p, j) => existingPath(p, rootWhere[j]!, baseDir)), where: rootWhere },
    perms: topPerms,
    rewrites: topRewrites,
    history: topHistory,
  };
  if (o.fromImage !== undefined) spec.fromImage = str(o.fromImage, 'fromImage');
  if (o.initializeNixDatabase !== undefined && typeof o.initializeNixDatabase !== 'boolean')
    throw specError('initializeNixDatabase', 'must be true or false');
  const nixUid = o.nixUid === undefined ? 0 : int(o.nixUid, 'nixUid', 0);
  const nixGid = o.nixGid === undefined ? 0 : int(o.nixGid, 'nixGid', 0);
  if (o.initializeNixDatabase === true) spec.nixDatabase = { uid: nixUid, gid: nixGid };
  else if (o.nixUid !== undefined || o.nixGid !== undefined)
    throw specError(
      o.nixUid !== undefined ? 'nixUid' : 'nixGid',
      'applies only with initializeNixDatabase: true',
    );
  if (o.architecture !== undefined) spec.architecture = str(o.architecture, 'architecture');
  if (o.variant !== undefined) spec.variant = str(o.variant, 'variant');
  if (o.closureGraph !== undefined) spec.closureGraph = closureGraph(o.closureGraph, 'closureGraph', opts);
  if (groups.length === 0 && spec.copyToRoot.paths.length === 0 && !spec.fromImage)
    throw specError('layers', 'the spec builds nothing: give layers, copyToRoot or fromImage');
  for (const g of groups) {
    g.paths.forEach((p, j) => {
      if (!isAbsolute(p)) throw specError(g.where[j]!, 'must be an absolute path');
    });
  }
  return spec;
}
