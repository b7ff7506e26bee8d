/** A Nix string literal with `"`, `\`, `${` and control characters escaped. */
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

/** An attribute name, quoted when it is not a plain identifier. */
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
  | boolean
  | null
  | NixExpr
  | NixValue[]
  | { [k: string]: NixValue | undefined };

/** Pretty-prints a value as a Nix expression (2-space indent, one attribute per line). */
export function nixValue(v: NixValue, indent = 0): string {
  const pad = '  '.repeat(indent + 1);
  const end = '  '.repeat(indent);
  if (v instanceof NixExpr) return v.text;
  if (v === null) return 'null';
  if (typeof v === 'string') return nixString(v);
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (Array.isArray(v)) {
    if (v.length === 0) return '[ ]';
    return `[\n${v.map((x) => `${pad}${nixValue(x, indent + 1)}`).join('\n')}\n${end}]`;
  }
  const entries = Object.entries(v).filter(([, x]) => x !== undefined) as [string, NixValue][];
  if (entries.length === 0) return '{ }';
  return `{\n${entries.map(([k, x]) => `${pad}${nixAttrName(k)} = ${nixValue(x, indent + 1)};`).join('\n')}\n${end}}`;
}
