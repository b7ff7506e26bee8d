/**
 * Nesting allowed in a document from outside (manifests, configs). Real ones nest 4-6 levels; Go's
 * encoding/json stops at 10000. A deeper value would overflow the stack of every recursive walk
 * (JSON.stringify included), so it is refused before it is parsed.
 */
export const MAX_JSON_DEPTH = 100;

/**
 * The depth at which `text` first goes deeper than `max` levels of `[`/`{`, or undefined when it
 * never does. A linear scan that skips strings; it does not validate the JSON (JSON.parse does).
 */
export function jsonTooDeep(text: string, max: number): number | undefined {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return depth;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return undefined;
}

/** JSON.parse that throws (a SyntaxError) on a document nested deeper than `max`. */
export function parseBoundedJson(text: string, max = MAX_JSON_DEPTH): unknown {
  if (jsonTooDeep(text, max) !== undefined) throw new SyntaxError(`nested deeper than ${max} levels`);
  return JSON.parse(text);
}

/** Why a document failed parseBoundedJson, for a message: `not JSON (…)` or `nested deeper than N levels`. */
export function jsonWhy(err: unknown): string {
  const m = (err as Error)?.message ?? String(err);
  return /^nested deeper than \d+ levels$/.test(m) ? m : `not JSON (${m})`;
}
