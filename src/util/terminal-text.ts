/**
 * Characters a terminal acts on instead of showing: C0 controls (ESC starts colour, cursor and
 * title sequences; BEL, CR, BS, NUL), DEL, C1 controls (U+009B is a one-character CSI), and the
 * Unicode line separators and bidirectional overrides that reorder what is shown.
 */
const UNSAFE =
  /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const UNSAFE_BUT_NEWLINES =
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * Text from outside (entry names, config values, registry messages, header values) made safe to
 * print to a terminal: every character a terminal would act on becomes `\uXXXX`, which is also
 * a valid JSON string escape (a JSON document stays valid and decodes to the same value). Tabs
 * stay; newlines stay only with `keepNewlines` (multi-line results), never in one-line messages,
 * where a hostile newline could forge a line of its own.
 */
export function escapeTerminal(text: string, opts: { keepNewlines?: boolean } = {}): string {
  return text.replace(
    opts.keepNewlines ? UNSAFE_BUT_NEWLINES : UNSAFE,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
