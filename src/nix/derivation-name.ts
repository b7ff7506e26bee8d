/**
 * nixpkgs' `lib.strings.sanitizeDerivationName`, which `stdenv.mkDerivation` (and so `runCommand`,
 * `dockerTools.pullImage`, nix2container's `pullImage`) applies to every `name`:
 * a name of at most 207 characters made of `[A-Za-z0-9+_?=-]` then `[A-Za-z0-9+._?=-]*` is kept;
 * any other has its leading dots removed, each run of other characters replaced by `-`, and only
 * its **last 207 characters** kept (211 minus `.drv`); an empty result becomes `unknown`.
 */
export function sanitizeDerivationName(name: string): string {
  if (name.length <= 207 && /^[A-Za-z0-9+_?=-][A-Za-z0-9+._?=-]*$/.test(name)) return name;
  const noDots = name.replace(/^\.*/, '');
  const replaced = noDots.replace(/[^A-Za-z0-9+._?=-]+/g, '-');
  const kept = replaced.slice(Math.max(replaced.length - 207, 0));
  return kept.length === 0 ? 'unknown' : kept;
}
