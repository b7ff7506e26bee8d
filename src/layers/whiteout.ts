/** Prefix of a whiteout entry: `.wh.NAME` deletes NAME from lower layers. */
export const WHITEOUT_PREFIX = '.wh.';
/** An opaque marker: hides everything lower layers put in its directory. */
export const WHITEOUT_OPAQUE = '.wh..wh..opq';

/** For `dir/.wh.name` → `dir/name`; for the opaque marker → `{ opaque: dir }`; else undefined. */
export function parseWhiteout(path: string): { deletes: string } | { opaque: string } | undefined {
  const i = path.lastIndexOf('/');
  const dir = i === -1 ? '' : path.slice(0, i);
  const base = path.slice(i + 1);
  if (!base.startsWith(WHITEOUT_PREFIX)) return undefined;
  if (base === WHITEOUT_OPAQUE) return { opaque: dir };
  const name = base.slice(WHITEOUT_PREFIX.length);
  return { deletes: dir ? `${dir}/${name}` : name };
}
