import type { PrefetchInput } from './prefetch.ts';

/**
 * What a prefetch is printed as: `dockerTools.pullImage`'s attrset (as nix-prefetch-docker), the
 * attrset of `nix2container.pullImage`, the instance manifest (for `pullImageFromManifest`), a
 * docker2nix-style function, or everything as JSON.
 */
export type PrefetchFormat = 'dockertools' | 'nix2container' | 'manifest' | 'docker2nix' | 'json';

export const PREFETCH_FORMATS: readonly PrefetchFormat[] = [
  'dockertools',
  'nix2container',
  'manifest',
  'docker2nix',
  'json',
];

/**
 * The hashes a format shows, and so the only work a prefetch for it must do: the NAR hash needs
 * no decompression, the manifest and docker2nix outputs need no layer at all.
 */
export function hashesFor(format: PrefetchFormat): NonNullable<PrefetchInput['want']> {
  return {
    dockerTools: format === 'dockertools' || format === 'json',
    nix2container: format === 'nix2container' || format === 'json',
  };
}
