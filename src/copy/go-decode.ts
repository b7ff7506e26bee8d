import { ErrorCode, LadingError } from '../errors/index.ts';

/**
 * A JSON value parsed the way Go's encoding/json sees it: objects keep their keys in order,
 * repeated keys included (Go assigns each in turn), strings are well-formed (a lone surrogate
 * becomes U+FFFD, as Go decodes it), numbers keep their text.
 */
export type GoJson =
  | { t: 'null' }
  | { t: 'bool'; v: boolean }
  | { t: 'num'; v: string }
  | { t: 'str'; v: string }
  | { t: 'arr'; v: GoJson[] }
  | { t: 'obj'; v: [string, GoJson][] };

/** A JSON number at `lastIndex` (sticky). */
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** Parses JSON text strictly (RFC 8259, as Go does), keeping object key order and repeats. */
export function parseGoJson(text: string, what: string): GoJson {
  let i = 0;
  const fail = (why: string): never => {
    throw new LadingError(ErrorCode.ManifestInvalid, `${what} is not valid JSON: ${why} at offset ${i}`);
  };
  const ws = (): void => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r'))
      i++;
  };
  const str = (): string => {
    const start = i;
    i++;
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) fail('control character in string');
      i += c === 0x5c ? 2 : 1;
    }
    i++;
    try {
      return (JSON.parse(text.slice(start, i)) as string).replace(LONE_SURROGATE, '\ufffd');
    } catch {
      return fail('bad string');
    }
  };
  const value = (depth: number): GoJson => {
    if (depth > 10000) fail('nested too deeply');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const v: [string, GoJson][] = [];
      ws();
      if (text[i] === '}') {
        i++;
        return { t: 'obj', v };
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const k = str();
        ws();
        if (text[i] !== ':') fail('expected a colon');
        i++;
        v.push([k, value(depth + 1)]);
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return { t: 'obj', v };
        } else fail('expected , or }');
      }
    }
    if (c === '[') {
      i++;
      const v: GoJson[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return { t: 'arr', v };
      }
      for (;;) {
        v.push(value(depth + 1));
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') {
          i++;
          return { t: 'arr', v };
        } else fail('expected , or ]');
      }
    }
    if (c === '"') return { t: 'str', v: str() };
    for (const [word, val] of [
      ['true', { t: 'bool', v: true }],
      ['false', { t: 'bool', v: false }],
      ['null', { t: 'null' }],
    ] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return val;
      }
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) return fail('unexpected character');
    i += m[0].length;
    return { t: 'num', v: m[0] };
  };
  const v = value(0);
  ws();
  if (i !== text.length) fail('data after the value');
  return v;
}

/** Go's case-insensitive field-name match (ASCII folding, plus K U+212A and ſ U+017F). */
export function goFoldEqual(name: string, key: string): boolean {
  const fold = (c: string): string =>
    c === '\u212a' ? 'k' : c === '\u017f' ? 's' : c >= 'A' && c <= 'Z' ? c.toLowerCase() : c;
  const a = [...name];
  const b = [...key];
  return a.length === b.length && a.every((c, j) => fold(c) === fold(b[j]!));
}

/** The field of `names` a JSON key sets, as Go's decoder picks it (exact match first). */
export function goField(names: readonly string[], key: string): string | undefined {
  if (names.includes(key)) return key;
  return names.find((n) => goFoldEqual(n, key));
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(Z|([+-])(\d{2}):(\d{2}))$/;

/**
 * A time as Go's time.Time decodes (RFC 3339) and encodes it again (RFC 3339 with nanoseconds:
 * at most 9 fraction digits, trailing zeros dropped, `Z` for a zero offset). Undefined when Go
 * would refuse it.
 */
export function goTime(s: string): string | undefined {
  const m = RFC3339.exec(s);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, se, frac, zone, sign, zh, zm] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  if (month < 1 || month > 12) return undefined;
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]!;
  if (day < 1 || day > days || Number(h) > 23 || Number(mi) > 59 || Number(se) > 59) return undefined;
  const f = (frac ?? '').slice(0, 9).replace(/0+$/, '');
  const offset = zone === 'Z' ? 0 : Number(zh) * 60 + Number(zm);
  const z = offset === 0 ? 'Z' : `${sign}${zh}:${zm}`;
  return `${y}-${mo}-${d}T${h}:${mi}:${se}${f ? `.${f}` : ''}${z}`;
}
