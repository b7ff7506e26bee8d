import { arch as hostArch } from 'node:os';
import { ErrorCode, LadingError } from '../errors/index.ts';

/** An OCI platform. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
  features?: string[];
}

const ARCH_ALIASES: Record<string, string> = {
  x86_64: 'amd64',
  'x86-64': 'amd64',
  x64: 'amd64',
  aarch64: 'arm64',
  armhf: 'arm',
  armel: 'arm',
  i386: '386',
  i686: '386',
  ia32: '386',
  ppc64el: 'ppc64le',
};

/** Go/OCI architecture name for a Node `os.arch()` or uname value. */
export function normaliseArch(arch: string): string {
  const a = arch.toLowerCase();
  return ARCH_ALIASES[a] ?? a;
}

/** Normalises a variant as containerd does (`arm64` v8 is the default, `arm` v7). */
export function normaliseVariant(arch: string, variant: string | undefined): string | undefined {
  if (variant === undefined || variant === '') return undefined;
  let v = variant.toLowerCase();
  if (/^\d+$/.test(v)) v = `v${v}`;
  if (arch === 'arm64' && (v === 'v8' || v === '8')) return undefined;
  return v;
}

/** Normalises a platform: lower-case, aliases, default variants. */
export function normalisePlatform(p: Platform): Platform {
  const architecture = normaliseArch(p.architecture);
  let variant = normaliseVariant(architecture, p.variant);
  if (architecture === 'arm' && variant === undefined && p.variant === undefined) variant = undefined;
  const out: Platform = { os: p.os.toLowerCase(), architecture };
  if (variant !== undefined) out.variant = variant;
  if (p['os.version']) out['os.version'] = p['os.version'];
  return out;
}

/**
 * Parses `os/arch[/variant]` (as docker, crane and podman take it). Also accepts `arch` alone
 * (linux implied) and aliases (`x86_64`, `aarch64`).
 */
export function parsePlatform(input: string): Platform {
  const parts = input.trim().split('/');
  if (parts.some((p) => p === '') || parts.length > 3 || input.trim() === '') {
    throw new LadingError(
      ErrorCode.BadPlatform,
      `invalid platform ${JSON.stringify(input)}: expected os/arch[/variant]`,
      {
        found: input,
      },
    );
  }
  if (parts.length === 1) return normalisePlatform({ os: 'linux', architecture: parts[0]! });
  const p: Platform = { os: parts[0]!, architecture: parts[1]! };
  if (parts[2] !== undefined) p.variant = parts[2];
  return normalisePlatform(p);
}

/** The platform of this machine, as Go names it (linux on the host's architecture by default). */
export function hostPlatform(os = 'linux'): Platform {
  const architecture = normaliseArch(hostArch());
  const p: Platform = { os, architecture };
  if (architecture === 'arm') p.variant = 'v7';
  return p;
}

/** `os/arch[/variant]`. */
export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/**
 * True when `candidate` satisfies `wanted`. OS and architecture must match after normalisation;
 * a wanted variant must match (arm64 v8 equals no variant); no wanted variant takes any.
 */
export function platformMatches(wanted: Platform, candidate: Platform | undefined): boolean {
  if (!candidate) return false;
  const w = normalisePlatform(wanted);
  const c = normalisePlatform(candidate);
  if (w.os !== c.os || w.architecture !== c.architecture) return false;
  if (w.variant !== undefined && w.variant !== c.variant) {
    // arm without variant in the index is commonly v7.
    return w.architecture === 'arm' && w.variant === 'v7' && c.variant === undefined;
  }
  return true;
}

/**
 * Picks the best candidate for `wanted` among `candidates`: an exact variant match first, then
 * the highest compatible variant (arm v7 may run v6/v5 images), preferring entries without an
 * `os.version` mismatch. Returns the index in `candidates`, or -1.
 */
export function selectPlatform(wanted: Platform, candidates: (Platform | undefined)[]): number {
  const w = normalisePlatform(wanted);
  let best = -1;
  let bestScore = -1;
  candidates.forEach((c, i) => {
    if (!c) return;
    const n = normalisePlatform(c);
    if (n.os !== w.os || n.architecture !== w.architecture) return;
    let score: number;
    if (w.variant === undefined) score = n.variant === undefined ? 100 : 50 + variantNumber(n.variant);
    else if (n.variant === w.variant) score = 100;
    else if (n.variant === undefined && w.architecture === 'arm' && w.variant === 'v7') score = 90;
    else if (
      w.architecture === 'arm' &&
      n.variant !== undefined &&
      variantNumber(n.variant) < variantNumber(w.variant)
    ) {
      score = 10 + variantNumber(n.variant);
    } else return;
    if (score > bestScore) {
      best = i;
      bestScore = score;
    }
  });
  return best;
}

function variantNumber(v: string): number {
  const m = /^v(\d+)/.exec(v);
  return m ? Number(m[1]) : 0;
}
