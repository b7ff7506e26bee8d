import { ErrorCode, LadingError } from '../errors/index.ts';

/** A Nix string literal with `"`, `\`, `${` and newline/CR/tab escaped. */
export function nixString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '"' || c === '\\') out += `\\${c}`;
    else if (c === '$' && s[i + 1] === '{') out += '\\$';
    else if (c === '\n') out += '\\n';
    else if (c === '\r') out += '\\r';
    else if (c === '\t') out += '\\t';
    else out += c;
  }
  return `${out}"`;
}

const IDENT = /^[a-zA-Z_][a-zA-Z0-9_'-]*$/;
const KEYWORDS = new Set(['if', 'then', 'else', 'assert', 'with', 'let', 'in', 'rec', 'inherit', 'or']);

/** An attribute name, quoted when it is not a plain identifier (or is a keyword). */
export function nixAttrName(name: string): string {
  return IDENT.test(name) && !KEYWORDS.has(name) ? name : nixString(name);
}

/** A raw Nix expression to embed unquoted in {@link nixValue}. */
export class NixExpr {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

export function nixExpr(text: string): NixExpr {
  return new NixExpr(text);
}

export type NixValue =
  | string
  | number
  | bigint
  | boolean
  | null
  | NixExpr
  | NixValue[]
  | { [k: string]: NixValue | undefined };

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function nixNumber(v: number | bigint): string {
  if (typeof v === 'bigint') {
    if (v < INT64_MIN || v > INT64_MAX)
      throw new LadingError(ErrorCode.BadArgument, `integer ${v} does not fit a Nix integer (64-bit)`);
    // Nix reads `-n` as negation of `n`, and 2^63 is not a literal it accepts.
    if (v === INT64_MIN) return `(${v + 1n} - 1)`;
    return v < 0n ? `(${v})` : String(v);
  }
  if (!Number.isFinite(v))
    throw new LadingError(ErrorCode.BadArgument, `${v} cannot be written as a Nix number`);
  if (Number.isInteger(v) && !Number.isSafeInteger(v))
    throw new LadingError(ErrorCode.BadArgument, `${v} is not an exact integer; pass a bigint`);
  let s: string;
  if (Number.isInteger(v)) s = Object.is(v, -0) ? '0' : String(v);
  else {
    // Nix floats need a digit before the exponent and a dot: `1.5e-07`, not `1.5e-7` or `1e21`.
    s = String(Math.abs(v));
    const m = /^(\d+)(?:\.(\d+))?e([+-]\d+)$/.exec(s);
    if (m) s = `${m[1]}.${m[2] ?? '0'}e${m[3]!.replace('+', '')}`;
    if (v < 0) s = `-${s}`;
  }
  return s.startsWith('-') ? `(${s})` : s;
}

/** Pretty-prints a value as a Nix expression (2-space indent, one attribute or item per line). */
export function nixValue(v: NixValue, indent = 0): string {
  const pad = '  '.repeat(indent + 1);
  const end = '  '.repeat(indent);
  if (v instanceof NixExpr) return v.text;
  if (v === null) return 'null';
  if (typeof v === 'string') return nixString(v);
  if (typeof v === 'number' || typeof v === 'bigint') return nixNumber(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (Array.isArray(v)) {
    if (v.length === 0) return '[ ]';
    return `[\n${v.map((x) => `${pad}${nixListItem(x, indent + 1)}`).join('\n')}\n${end}]`;
  }
  return nixAttrs(v, indent);
}

/** A list element: raw expressions are parenthesised so `f x` stays one item. */
function nixListItem(v: NixValue, indent: number): string {
  return v instanceof NixExpr && !/^[\w.'"-]+$/.test(v.text) ? `(${v.text})` : nixValue(v, indent);
}

/**
 * Pretty-prints an attribute set: `{`, one `name = value;` per line indented by 2 spaces
 * relative to `indent` levels, then `}`. Undefined values are left out; names are quoted as needed.
 */
export function nixAttrs(obj: { [k: string]: NixValue | undefined }, indent = 0): string {
  const pad = '  '.repeat(indent + 1);
  const end = '  '.repeat(indent);
  const entries = Object.entries(obj).filter(([, x]) => x !== undefined) as [string, NixValue][];
  if (entries.length === 0) return '{ }';
  return `{\n${entries.map(([k, x]) => `${pad}${nixAttrName(k)} = ${nixValue(x, indent + 1)};`).join('\n')}\n${end}}`;
}
