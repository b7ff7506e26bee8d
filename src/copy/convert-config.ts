import { type Digest, sha256 } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { GoStruct, type GoValue, goMarshal } from '../transports/index.ts';
import { type GoJson, goField, goTime, parseGoJson } from './go-decode.ts';

/**
 * The image config as containers/image writes it when it converts a Docker schema2 image to OCI
 * (skopeo 1.9's `convertToManifestOCI1`): the config is unmarshalled into image-spec's Go type
 * `v1.Image` and marshalled again, so unknown fields are dropped, fields come in the struct's
 * order, map keys are sorted, times re-formatted, no trailing newline. This reproduces it byte for
 * byte (image-spec v1.1.0-rc2, the version skopeo 1.9 carries).
 */

type Kind =
  | 'string'
  | 'bool'
  | 'time'
  | 'strings'
  | 'set'
  | 'strmap'
  | { struct: Field[] }
  | { structs: Field[] };
/** A Go struct field: JSON name, kind, and whether it has `omitempty`. */
type Field = [name: string, kind: Kind, omitempty: boolean];

const HISTORY: Field[] = [
  ['created', 'time', true],
  ['created_by', 'string', true],
  ['author', 'string', true],
  ['comment', 'string', true],
  ['empty_layer', 'bool', true],
];
const IMAGE_CONFIG: Field[] = [
  ['User', 'string', true],
  ['ExposedPorts', 'set', true],
  ['Env', 'strings', true],
  ['Entrypoint', 'strings', true],
  ['Cmd', 'strings', true],
  ['Volumes', 'set', true],
  ['WorkingDir', 'string', true],
  ['Labels', 'strmap', true],
  ['StopSignal', 'string', true],
  ['ArgsEscaped', 'bool', true],
];
const ROOTFS: Field[] = [
  ['type', 'string', false],
  ['diff_ids', 'strings', false],
];
const IMAGE: Field[] = [
  ['created', 'time', true],
  ['author', 'string', true],
  ['architecture', 'string', false],
  ['variant', 'string', true],
  ['os', 'string', false],
  ['os.version', 'string', true],
  ['os.features', 'strings', true],
  ['config', { struct: IMAGE_CONFIG }, true],
  ['rootfs', { struct: ROOTFS }, false],
  ['history', { structs: HISTORY }, true],
];

/** A decoded Go value: nil slices and maps are null, a nil time pointer undefined. */
type Val = string | boolean | undefined | null | string[] | Map<string, string> | Obj | Obj[];
type Obj = Map<string, Val>;

function typeError(what: string, field: string, got: GoJson): LadingError {
  return new LadingError(
    ErrorCode.ManifestInvalid,
    `${what}: cannot convert to OCI: field ${JSON.stringify(field)} holds a JSON ${got.t === 'obj' ? 'object' : got.t === 'arr' ? 'array' : got.t}, which the OCI image config does not allow there (skopeo refuses it too)`,
  );
}

function zero(kind: Kind): Val {
  if (kind === 'string') return '';
  if (kind === 'bool') return false;
  if (kind === 'time') return undefined;
  if (typeof kind === 'object' && 'struct' in kind) return new Map();
  return null;
}

function decodeString(j: GoJson, old: string, what: string, field: string): string {
  if (j.t === 'null') return old;
  if (j.t !== 'str') throw typeError(what, field, j);
  return j.v;
}

/** Decodes `j` into the current value `old` of a field of `kind`, as Go's decoder does. */
function decode(kind: Kind, j: GoJson, old: Val, what: string, field: string): Val {
  if (kind === 'string') return decodeString(j, old as string, what, field);
  if (kind === 'bool') {
    if (j.t === 'null') return old;
    if (j.t !== 'bool') throw typeError(what, field, j);
    return j.v;
  }
  if (kind === 'time') {
    if (j.t === 'null') return undefined;
    if (j.t !== 'str') throw typeError(what, field, j);
    const t = goTime(j.v);
    if (t === undefined)
      throw new LadingError(
        ErrorCode.ManifestInvalid,
        `${what}: cannot convert to OCI: ${field} ${JSON.stringify(j.v)} is not an RFC 3339 time`,
      );
    return t;
  }
  if (j.t === 'null') return typeof kind === 'object' && 'struct' in kind ? old : null;
  if (kind === 'strings') {
    if (j.t !== 'arr') throw typeError(what, field, j);
    return j.v.map((e) => decodeString(e, '', what, field));
  }
  if (kind === 'set' || kind === 'strmap') {
    if (j.t !== 'obj') throw typeError(what, field, j);
    // Go adds to an existing map (a repeated key merges).
    const m = (old as Map<string, string> | null) ?? new Map<string, string>();
    for (const [k, v] of j.v) {
      if (kind === 'set') {
        if (v.t !== 'obj' && v.t !== 'null') throw typeError(what, `${field}.${k}`, v);
        m.set(k, '');
      } else m.set(k, decodeString(v, '', what, `${field}.${k}`));
    }
    return m;
  }
  if ('struct' in kind) {
    if (j.t !== 'obj') throw typeError(what, field, j);
    return decodeStruct(kind.struct, j, old as Obj, what);
  }
  if (j.t !== 'arr') throw typeError(what, field, j);
  // Go decodes array elements into the existing ones (a repeated key merges element-wise).
  const prev = (old as Obj[] | null) ?? [];
  return j.v.map((e, n) => {
    const into = prev[n] ?? new Map<string, Val>();
    if (e.t === 'null') return into;
    if (e.t !== 'obj') throw typeError(what, field, e);
    return decodeStruct(kind.structs, e, into, what);
  });
}

function decodeStruct(fields: Field[], j: GoJson & { t: 'obj' }, into: Obj, what: string): Obj {
  const names = fields.map((f) => f[0]);
  for (const [key, v] of j.v) {
    const name = goField(names, key);
    if (name === undefined) continue; // unknown fields are dropped
    const kind = fields.find((f) => f[0] === name)![1];
    into.set(name, decode(kind, v, into.has(name) ? into.get(name) : zero(kind), what, name));
  }
  return into;
}

function isEmpty(v: Val): boolean {
  if (v === undefined || v === null || v === '' || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  return false;
}

function encode(kind: Kind, v: Val): GoValue {
  if (v === undefined || v === null) return null;
  if (kind === 'set') return Object.fromEntries([...(v as Map<string, string>).keys()].map((k) => [k, {}]));
  if (kind === 'strmap') return Object.fromEntries(v as Map<string, string>);
  if (typeof kind === 'object' && 'struct' in kind) return encodeStruct(kind.struct, v as Obj);
  if (typeof kind === 'object') return (v as Obj[]).map((o) => encodeStruct(kind.structs, o));
  return v as GoValue;
}

function encodeStruct(fields: Field[], o: Obj): GoStruct {
  const out: [string, GoValue][] = [];
  for (const [name, kind, omitempty] of fields) {
    const v = o.has(name) ? o.get(name) : zero(kind);
    const isStruct = typeof kind === 'object' && 'struct' in kind;
    // omitempty never omits a struct; an empty map or slice is omitted like a nil one.
    if (omitempty && !isStruct && (isEmpty(v) || (v instanceof Map && v.size === 0))) continue;
    out.push([name, encode(kind, isStruct ? (v ?? new Map()) : v)]);
  }
  return new GoStruct(out);
}

/** A Docker image config re-encoded as skopeo writes it into an OCI image. */
export function ociConfigBytes(config: Buffer, what: string): { bytes: Buffer; digest: Digest } {
  const j = parseGoJson(config.toString('utf8'), what);
  if (j.t !== 'obj') {
    if (j.t === 'null') return ociConfigBytes(Buffer.from('{}'), what);
    throw new LadingError(ErrorCode.ManifestInvalid, `${what}: cannot convert to OCI: not a JSON object`);
  }
  const bytes = Buffer.from(goMarshal(encodeStruct(IMAGE, decodeStruct(IMAGE, j, new Map(), what))));
  return { bytes, digest: sha256(bytes) };
}
