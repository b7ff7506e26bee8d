/**
 * Just enough of Go's encoding/json to reproduce, byte for byte, what containers/image writes into
 * a docker-archive: compact output, map keys sorted, HTML-safe escaping, and json.RawMessage values
 * re-compacted with the same escaping.
 */

/** A raw JSON text to embed as Go embeds a json.RawMessage (compacted, HTML-escaped). */
export class GoRaw {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

/** An ordered struct: fields are written in the given order (Go structs), not sorted (Go maps). */
export class GoStruct {
  readonly fields: [string, GoValue][];
  constructor(fields: [string, GoValue][]) {
    this.fields = fields;
  }
}

export type GoValue =
  | string
  | number
  | boolean
  | null
  | GoRaw
  | GoStruct
  | GoValue[]
  | { [k: string]: GoValue };

const HEX = '0123456789abcdef';

/** Go's string encoding with HTML escaping (`json.Marshal` default). */
export function goString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (c < 0x20) {
      if (ch === '\n') out += '\\n';
      else if (ch === '\r') out += '\\r';
      else if (ch === '\t') out += '\\t';
      else out += `\\u00${HEX[c >> 4]}${HEX[c & 15]}`;
    } else if (ch === '<' || ch === '>' || ch === '&') out += `\\u00${HEX[c >> 4]}${HEX[c & 15]}`;
    else if (c === 0x2028 || c === 0x2029) out += `\\u${c.toString(16)}`;
    else if (c >= 0xd800 && c <= 0xdfff) out += '\\ufffd';
    else out += ch;
  }
  return `${out}"`;
}

function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Go's `compact` with HTML escaping, applied to raw JSON text. */
export function goCompact(raw: string): string {
  let out = '';
  let inString = false;
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i]!;
    if (inString) {
      if (ch === '\\') {
        out += ch + (raw[i + 1] ?? '');
        i++;
        continue;
      }
      if (ch === '"') inString = false;
      if (ch === '<' || ch === '>' || ch === '&')
        out += `\\u00${HEX[ch.charCodeAt(0) >> 4]}${HEX[ch.charCodeAt(0) & 15]}`;
      else if (ch === '\u2028' || ch === '\u2029') out += `\\u${ch.charCodeAt(0).toString(16)}`;
      else out += ch;
      continue;
    }
    if (ch === '"') {
      inString = true;
      out += ch;
    } else if (ch !== ' ' && ch !== '\t' && ch !== '\n' && ch !== '\r') out += ch;
  }
  return out;
}

/** Go's `json.Marshal` of a value built from the types above. */
export function goMarshal(v: GoValue): string {
  if (v === null) return 'null';
  if (v instanceof GoRaw) return goCompact(v.text);
  if (v instanceof GoStruct)
    return `{${v.fields.map(([k, x]) => `${goString(k)}:${goMarshal(x)}`).join(',')}}`;
  if (typeof v === 'string') return goString(v);
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (Array.isArray(v)) return `[${v.map(goMarshal).join(',')}]`;
  const keys = Object.keys(v).sort(compareUtf8);
  return `{${keys.map((k) => `${goString(k)}:${goMarshal(v[k]!)}`).join(',')}}`;
}

/**
 * The raw text of each top-level value of a JSON object, as Go's
 * `json.Unmarshal(…, &map[string]*json.RawMessage)` keeps it (a repeated key: the last wins).
 */
export function topLevelRaw(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  const ws = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const str = (): string => {
    const start = i;
    i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const skipValue = (): void => {
    ws();
    const c = text[i];
    if (c === '"') {
      str();
      return;
    }
    if (c === '{' || c === '[') {
      let depth = 0;
      for (; i < text.length; i++) {
        const ch = text[i];
        if (ch === '"') {
          str();
          i--;
        } else if (ch === '{' || ch === '[') depth++;
        else if (ch === '}' || ch === ']') {
          depth--;
          if (depth === 0) {
            i++;
            return;
          }
        }
      }
      return;
    }
    while (i < text.length && !',}] \t\n\r'.includes(text[i]!)) i++;
  };
  ws();
  if (text[i] !== '{') throw new Error('not a JSON object');
  i++;
  for (;;) {
    ws();
    if (text[i] === '}') break;
    const key = str();
    ws();
    i++; // colon
    ws();
    const start = i;
    skipValue();
    out.set(key, text.slice(start, i));
    ws();
    if (text[i] === ',') i++;
    else break;
  }
  return out;
}
