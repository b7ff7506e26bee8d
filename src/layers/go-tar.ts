/**
 * Tar headers exactly as Go's archive/tar Writer encodes them when the format is left to it:
 * USTAR when the header fits (long names split into prefix/name), else PAX with a
 * `<dir>/PaxHeaders.0/<base>` extended header. Archives end with two zero blocks, no record padding.
 */

export interface GoTarHeader {
  name: string;
  /** '0' regular, '2' symlink, '5' directory. */
  typeflag: '0' | '2' | '5';
  mode: number;
  size: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  /** Seconds since the epoch. */
  mtime?: number;
  linkname?: string;
}

const BLOCK = 512;
const NAME_SIZE = 100;
const PREFIX_SIZE = 155;

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false;
  return true;
}

function toAscii(s: string): string {
  let out = '';
  for (const ch of s) if (ch.charCodeAt(0) < 0x80) out += ch;
  return out;
}

/** Go's formatString: copy, NUL-terminate when shorter than the field. */
function formatString(b: Buffer, off: number, len: number, s: string): void {
  const bytes = Buffer.from(s, 'utf8');
  bytes.copy(b, off, 0, Math.min(len, bytes.length));
  if (bytes.length < len) b[off + bytes.length] = 0;
}

/** Go's formatOctal: zero-padded to the field width minus one, NUL-terminated. */
function formatOctal(b: Buffer, off: number, len: number, x: number): void {
  let s = x.toString(8);
  const n = len - s.length - 1;
  if (n > 0) s = '0'.repeat(n) + s;
  formatString(b, off, len, s);
}

function fitsOctal(len: number, x: number): boolean {
  return x >= 0 && x < 8 ** (len - 1);
}

/** splitUSTARPath from archive/tar. */
function splitUstarPath(name: string): { prefix: string; suffix: string } | undefined {
  let length = name.length;
  if (length <= NAME_SIZE || !isAscii(name)) return undefined;
  if (length > PREFIX_SIZE + 1) length = PREFIX_SIZE + 1;
  else if (name[length - 1] === '/') length--;
  const i = name.lastIndexOf('/', length - 1);
  const nlen = name.length - i - 1;
  const plen = i;
  if (i <= 0 || nlen > NAME_SIZE || nlen === 0 || plen > PREFIX_SIZE) return undefined;
  return { prefix: name.slice(0, i), suffix: name.slice(i + 1) };
}

function setFormatAndChecksum(b: Buffer): void {
  b.write('ustar\0', 257, 'latin1');
  b.write('00', 263, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i]!;
  b.fill(0, 148, 156);
  formatOctal(b, 148, 7, sum);
  b[155] = 0x20;
}

function templateV7Plus(h: GoTarHeader, name: string, linkname: string): Buffer {
  const b = Buffer.alloc(BLOCK);
  b[156] = h.typeflag.charCodeAt(0);
  formatString(b, 0, 100, name);
  formatString(b, 157, 100, linkname);
  formatOctal(b, 100, 8, h.mode);
  formatOctal(b, 108, 8, h.uid ?? 0);
  formatOctal(b, 116, 8, h.gid ?? 0);
  formatOctal(b, 124, 12, h.size);
  formatOctal(b, 136, 12, h.mtime ?? 0);
  formatString(b, 265, 32, h.uname ?? '');
  formatString(b, 297, 32, h.gname ?? '');
  formatOctal(b, 329, 8, 0);
  formatOctal(b, 337, 8, 0);
  return b;
}

function paxRecord(k: string, v: string): string {
  const base = Buffer.byteLength(k) + Buffer.byteLength(v) + 3;
  let size = base + String(base).length;
  let rec = `${size} ${k}=${v}\n`;
  if (Buffer.byteLength(rec) !== size) {
    size = Buffer.byteLength(rec);
    rec = `${size} ${k}=${v}\n`;
  }
  return rec;
}

function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** The header block(s) Go writes for `h` (PAX extended header first when needed). */
export function goTarHeader(h: GoTarHeader): Buffer {
  const linkname = h.linkname ?? '';
  const ustarName = h.name.length <= NAME_SIZE && isAscii(h.name);
  const split = ustarName ? undefined : splitUstarPath(h.name);
  const linkOk = Buffer.byteLength(linkname) <= NAME_SIZE && isAscii(linkname);
  const numbersOk =
    fitsOctal(12, h.size) &&
    fitsOctal(12, h.mtime ?? 0) &&
    fitsOctal(8, h.uid ?? 0) &&
    fitsOctal(8, h.gid ?? 0);
  const namesOk = Buffer.byteLength(h.uname ?? '') <= 32 && Buffer.byteLength(h.gname ?? '') <= 32;
  if ((ustarName || split) && linkOk && numbersOk && namesOk) {
    const b = templateV7Plus(h, split ? split.suffix : h.name, linkname);
    if (split) formatString(b, 345, PREFIX_SIZE, split.prefix);
    setFormatAndChecksum(b);
    return b;
  }
  const records: Record<string, string> = {};
  if (!(ustarName || split)) records.path = h.name;
  if (!linkOk) records.linkpath = linkname;
  if (!fitsOctal(12, h.size)) records.size = String(h.size);
  if (!fitsOctal(12, h.mtime ?? 0)) records.mtime = String(h.mtime ?? 0);
  if (!fitsOctal(8, h.uid ?? 0)) records.uid = String(h.uid);
  if (!fitsOctal(8, h.gid ?? 0)) records.gid = String(h.gid);
  if (Buffer.byteLength(h.uname ?? '') > 32) records.uname = h.uname ?? '';
  if (Buffer.byteLength(h.gname ?? '') > 32) records.gname = h.gname ?? '';
  const data = Buffer.from(
    Object.keys(records)
      .sort()
      .map((k) => paxRecord(k, records[k]!))
      .join(''),
  );
  const slash = h.name.lastIndexOf('/');
  const dir = slash === -1 ? '' : h.name.slice(0, slash + 1);
  const file = h.name.slice(slash + 1);
  let paxName = toAscii(`${dir}PaxHeaders.0/${file}`.replace(/\/+/g, '/'));
  if (paxName.length > NAME_SIZE) paxName = paxName.slice(0, NAME_SIZE);
  paxName = paxName.replace(/\/+$/, '');
  const ext = Buffer.alloc(BLOCK);
  ext[156] = 'x'.charCodeAt(0);
  formatString(ext, 0, 100, paxName);
  formatOctal(ext, 100, 8, 0);
  formatOctal(ext, 108, 8, 0);
  formatOctal(ext, 116, 8, 0);
  formatOctal(ext, 124, 12, data.length);
  formatOctal(ext, 136, 12, 0);
  setFormatAndChecksum(ext);
  const main = templateV7Plus(
    { ...h, size: fitsOctal(12, h.size) ? h.size : 0, mtime: fitsOctal(12, h.mtime ?? 0) ? h.mtime : 0 },
    toAscii(h.name).slice(0, NAME_SIZE),
    toAscii(linkname).slice(0, NAME_SIZE),
  );
  setFormatAndChecksum(main);
  return Buffer.concat([ext, data, padding(data.length), main]);
}

/** Zero padding after `size` bytes of entry data. */
export function goTarPadding(size: number): Buffer {
  return padding(size);
}

/** The end of a Go-written archive: two zero blocks. */
export const GO_TAR_END: Buffer = Buffer.alloc(2 * BLOCK);
