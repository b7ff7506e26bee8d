import { createHash } from 'node:crypto';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { toNix32 } from './base32.ts';
import type { NixHash } from './hash.ts';

export const DEFAULT_STORE_DIR = '/nix/store';

/**
 * Checks a store path name as Nix does (`checkName`): 1 to 211 characters of
 * `[A-Za-z0-9+\-._?=]`. A leading `.` is rejected too: Nix 2.8 allows it, some older releases
 * reject it and current ones reject `.`, `..`, `.-…`, so a name without it is valid everywhere.
 */
export function checkStoreName(name: string): void {
  if (name.length === 0 || name.length > 211) {
    throw new LadingError(
      ErrorCode.BadArgument,
      `invalid store path name ${JSON.stringify(name)}: must be 1 to 211 characters`,
    );
  }
  if (name.startsWith('.'))
    throw new LadingError(
      ErrorCode.BadArgument,
      `invalid store path name ${JSON.stringify(name)}: starts with a dot`,
    );
  const bad = /[^A-Za-z0-9+\-._?=]/.exec(name);
  if (bad)
    throw new LadingError(
      ErrorCode.BadArgument,
      `invalid store path name ${JSON.stringify(name)}: character ${JSON.stringify(bad[0])} is not allowed`,
    );
}

/** XOR-folds a hash into `size` bytes (Nix's `compressHash`). */
export function compressHash(bytes: Uint8Array, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < bytes.length; i++) out[i % size] = out[i % size]! ^ bytes[i]!;
  return out;
}

/** `makeStorePath(type, hash, name)`: `/nix/store/<nix32(compress20(sha256(type:sha256:hex:storeDir:name)))>-<name>`. */
export function makeStorePath(
  type: string,
  hash: NixHash,
  name: string,
  storeDir = DEFAULT_STORE_DIR,
): string {
  checkStoreName(name);
  const s = `${type}:${hash.algo}:${hash.bytes.toString('hex')}:${storeDir}:${name}`;
  const digest = createHash('sha256').update(s).digest();
  return `${storeDir}/${toNix32(compressHash(digest, 20))}-${name}`;
}

/**
 * The store path of a fixed-output derivation's output (or `nix-store --add-fixed`): recursive
 * sha256 uses type `source`; everything else `output:out` over `fixed:out:[r:]algo:hex:`.
 */
export function makeFixedOutputPath(opts: {
  method: 'flat' | 'recursive';
  hash: NixHash;
  name: string;
  storeDir?: string;
}): string {
  const storeDir = opts.storeDir ?? DEFAULT_STORE_DIR;
  if (opts.method === 'recursive' && opts.hash.algo === 'sha256')
    return makeStorePath('source', opts.hash, opts.name, storeDir);
  const inner = `fixed:out:${opts.method === 'recursive' ? 'r:' : ''}${opts.hash.algo}:${opts.hash.bytes.toString('hex')}:`;
  const h: NixHash = { algo: 'sha256', bytes: createHash('sha256').update(inner).digest() };
  return makeStorePath('output:out', h, opts.name, storeDir);
}

/**
 * nixpkgs dockerTools' (and nix2container's) `fixName`:
 * `builtins.replaceStrings [ "/" ":" ] [ "-" "-" ]`. Other characters are kept, so the result may
 * still be an invalid store name (see {@link checkStoreName}).
 */
export function fixName(name: string): string {
  return name.replace(/[/:]/g, '-');
}

/** The 32-character nix32 hash part of a store path (`/nix/store/<hash>-<name>`). */
export function storePathHashPart(path: string, storeDir = DEFAULT_STORE_DIR): string {
  const base = path.startsWith(`${storeDir}/`) ? path.slice(storeDir.length + 1) : undefined;
  const m = base === undefined ? null : /^([0-9a-df-np-sv-z]{32})-(.+)$/.exec(base);
  if (!m || m[2]!.includes('/'))
    throw new LadingError(
      ErrorCode.BadArgument,
      `${JSON.stringify(path)} is not a store path in ${storeDir}`,
    );
  return m[1]!;
}
