import { type Command, InvalidArgumentError, Option } from 'commander';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { hostPlatform, normaliseArch, type Platform, parsePlatform } from '../image/index.ts';
import { defaultPerHostCertDirs, RegistryPool } from '../registry/index.ts';
import { escapeTerminal } from '../util/index.ts';
import { credentialResolver } from './credentials.ts';
import type { CliIo } from './io.ts';

/** Options every registry-facing command takes (skopeo's names where skopeo has them). */
export interface RegistryFlags {
  creds?: string | false;
  registryToken?: string;
  /** commander sets `creds: false` for --no-creds; kept separate here. */
  noCreds?: boolean;
  authfile?: string;
  credentialFile?: string;
  tlsVerify?: boolean;
  certDir?: string;
  retryTimes?: number;
  retryDelay?: number;
  /** `--timeout`: bound for connecting, for a response, and per window of a body read (ms). */
  timeout?: number;
  jobs?: number;
  debug?: boolean;
}

export interface PlatformFlags {
  platform?: string;
  overrideOs?: string;
  overrideArch?: string;
  overrideVariant?: string;
}

function parseBool(name: string) {
  return (v: string | undefined): boolean => {
    if (v === undefined || v === 'true' || v === '1') return true;
    if (v === 'false' || v === '0') return false;
    throw new LadingError(ErrorCode.BadArgument, `${name} takes true or false, got ${JSON.stringify(v)}`);
  };
}

function parseCount(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) {
      throw new LadingError(
        ErrorCode.BadArgument,
        `${name} needs an integer >= ${min}, got ${JSON.stringify(v)}`,
      );
    }
    return n;
  };
}

/** Parses a duration like skopeo's `--retry-delay`: `500ms`, `2s`, `1m`, or plain seconds. */
export function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v.trim());
  if (!m)
    throw new LadingError(
      ErrorCode.BadArgument,
      `invalid duration ${JSON.stringify(v)} (e.g. 500ms, 2s, 1m)`,
    );
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(unit === 'ms' ? n : unit === 's' ? n * 1000 : n * 60_000);
}

function parsePositiveDuration(name: string) {
  return (v: string): number => {
    const ms = parseDuration(v);
    if (ms <= 0)
      throw new LadingError(ErrorCode.BadArgument, `${name} must be more than 0, got ${JSON.stringify(v)}`);
    return ms;
  };
}

/** Adds the registry options to a command. */
export function withRegistryOptions(cmd: Command): Command {
  return cmd
    .option(
      '--creds <user[:password]>',
      'credentials for the registry (without :PASSWORD, asked for on a terminal)',
    )
    .option('--registry-token <token>', 'a bearer token to send as is')
    .addOption(new Option('--no-creds', 'access the registry anonymously').default(undefined))
    .option(
      '--authfile <path>',
      'auth file (containers auth.json or docker config.json); also REGISTRY_AUTH_FILE',
    )
    .option('--credential-file <path>', "hocker's credential file (USERNAME=/PASSWORD= or BEARER_TOKEN=)")
    .addOption(
      new Option(
        '--tls-verify [bool]',
        'require HTTPS and verify certificates; --tls-verify=false allows plain HTTP',
      )
        .argParser(parseBool('--tls-verify'))
        .default(undefined),
    )
    .addOption(new Option('--insecure', 'same as --tls-verify=false').implies({ tlsVerify: false }))
    .option(
      '--cert-dir <dir>',
      'CA certificates (*.crt) and a client certificate (*.cert + *.key) for the registry (default: certs.d lookup)',
    )
    .addOption(
      new Option('--retry-times <n>', 'retries on network errors, 408, 429, 5xx').argParser(
        parseCount('--retry-times', 0),
      ),
    )
    .addOption(
      new Option('--retry-delay <duration>', 'base delay between retries (doubles each time)').argParser(
        parseDuration,
      ),
    )
    .addOption(
      new Option(
        '--timeout <duration>',
        'give up on a server that does not connect, answer, or send at least 1 KiB within this long (default 30s)',
      ).argParser(parsePositiveDuration('--timeout')),
    )
    .addOption(
      new Option('--jobs <n>', 'parallel requests per registry (default 6)').argParser(
        parseCount('--jobs', 1),
      ),
    )
    .option('--debug', 'print each request and response on stderr (secrets redacted)');
}

/** Which end of a copy a registry option applies to. */
export type Side = 'src' | 'dest';

/** skopeo's per-side registry options (`copy`): each overrides the general option for its side. */
export interface SideRegistryFlags {
  srcCreds?: string;
  destCreds?: string;
  srcRegistryToken?: string;
  destRegistryToken?: string;
  srcNoCreds?: boolean;
  destNoCreds?: boolean;
  srcAuthfile?: string;
  destAuthfile?: string;
  srcTlsVerify?: boolean;
  destTlsVerify?: boolean;
  srcCertDir?: string;
  destCertDir?: string;
}

/** Adds skopeo's `--src-*` and `--dest-*` registry options to a command (see {@link sideFlags}). */
export function withSideRegistryOptions(cmd: Command): Command {
  for (const [side, what] of [
    ['src', 'source'],
    ['dest', 'destination'],
  ] as const) {
    cmd
      .option(
        `--${side}-creds <user[:password]>`,
        `credentials for the ${what} registry (instead of --creds; without :PASSWORD, asked for)`,
      )
      .option(`--${side}-registry-token <token>`, `a bearer token for the ${what} registry`)
      .option(`--${side}-no-creds`, `access the ${what} registry anonymously`)
      .option(`--${side}-authfile <path>`, `auth file for the ${what} registry (instead of --authfile)`)
      .addOption(
        new Option(`--${side}-tls-verify [bool]`, `--tls-verify for the ${what} registry`)
          .argParser(parseBool(`--${side}-tls-verify`))
          .default(undefined),
      )
      .option(`--${side}-cert-dir <dir>`, `certificates for the ${what} registry (instead of --cert-dir)`);
  }
  return cmd;
}

/**
 * The registry flags for one side of a copy: its `--src-*`/`--dest-*` options where given, the
 * general ones otherwise. Credentials given for a side replace every other way to find them there.
 */
export function sideFlags<F extends RegistryFlags>(flags: F & SideRegistryFlags, side: Side | undefined): F {
  if (!side) return flags;
  const pick = <K extends keyof SideRegistryFlags>(src: K, dest: K) =>
    side === 'src' ? flags[src] : flags[dest];
  const out: F = { ...flags };
  const creds = pick('srcCreds', 'destCreds');
  const token = pick('srcRegistryToken', 'destRegistryToken');
  const noCreds = pick('srcNoCreds', 'destNoCreds');
  if (creds !== undefined || token !== undefined || noCreds) {
    out.creds = creds;
    out.registryToken = token;
    out.noCreds = noCreds === true;
    out.credentialFile = undefined;
  }
  const authfile = pick('srcAuthfile', 'destAuthfile');
  if (authfile !== undefined) out.authfile = authfile;
  const tls = pick('srcTlsVerify', 'destTlsVerify');
  if (tls !== undefined) out.tlsVerify = tls;
  const certDir = pick('srcCertDir', 'destCertDir');
  if (certDir !== undefined) out.certDir = certDir;
  return out;
}

/**
 * The parser of an option that takes one value: given twice, it is refused instead of keeping the
 * last one silently (`copy --platform linux/amd64 --platform linux/arm64` copies one platform,
 * not both).
 */
export function onlyOnce(flag: string): (value: string, previous: string | undefined) => string {
  return (value, previous) => {
    if (previous !== undefined)
      throw new InvalidArgumentError(
        `${flag} was given twice (${previous}, ${value}): this command takes one`,
      );
    return value;
  };
}

/** Values of an option given several times, joined with commas (as one comma-separated value). */
function joined(value: string, previous: string | undefined): string {
  return previous === undefined ? value : `${previous},${value}`;
}

/**
 * Adds the platform options to a command. `several`: --platform may be repeated (copy keeps
 * every platform asked for); otherwise a second one is refused.
 */
export function withPlatformOptions(cmd: Command, opts: { several?: boolean } = {}): Command {
  return cmd
    .option(
      '--platform <os/arch[/variant]>',
      'platform to select from a multi-arch image (default: linux/<host arch>)',
      opts.several ? joined : onlyOnce('--platform'),
    )
    .option('--override-os <os>', 'skopeo-style: the OS to select')
    .option('--override-arch <arch>', 'skopeo-style: the architecture to select')
    .option('--override-variant <variant>', 'skopeo-style: the architecture variant to select');
}

/** The platform asked for, and whether it was asked for explicitly. */
export function platformFrom(flags: PlatformFlags): { platform: Platform; explicit: boolean } {
  if (flags.platform) {
    if (flags.overrideArch || flags.overrideOs || flags.overrideVariant) {
      throw new LadingError(
        ErrorCode.BadArgument,
        'use either --platform or --override-os/--override-arch/--override-variant',
      );
    }
    return { platform: parsePlatform(flags.platform), explicit: true };
  }
  if (flags.overrideArch || flags.overrideOs || flags.overrideVariant) {
    const host = hostPlatform();
    const architecture = normaliseArch(flags.overrideArch ?? host.architecture);
    const p = parsePlatform(
      `${flags.overrideOs ?? 'linux'}/${architecture}${flags.overrideVariant ? `/${flags.overrideVariant}` : ''}`,
    );
    return { platform: p, explicit: true };
  }
  return { platform: hostPlatform(), explicit: false };
}

/**
 * Builds the registry pool a command uses, credentials resolved per repository. Certificates come
 * from `certDir` (default `--cert-dir`), else the containers-certs.d lookup under `$HOME` and `/etc`.
 */
export function registryPool(
  flags: RegistryFlags,
  io: CliIo,
  warn: (msg: string) => void,
  certDir: string | undefined = flags.certDir,
): RegistryPool {
  const retry: { times?: number; delayMs?: number } = {};
  if (flags.retryTimes !== undefined) retry.times = flags.retryTimes;
  if (flags.retryDelay !== undefined) retry.delayMs = flags.retryDelay;
  return new RegistryPool({
    tlsVerify: flags.tlsVerify !== false,
    certDir,
    perHostCertDirs: defaultPerHostCertDirs(io.env.HOME || undefined),
    retry,
    timeoutMs: flags.timeout,
    jobs: flags.jobs,
    onDebug: flags.debug ? (line) => io.err.write(`debug: ${escapeTerminal(line)}\n`) : undefined,
    onRetry: (r) => warn(`retrying (${r.attempt}) in ${r.delayMs} ms: ${r.reason}`),
    credentials: credentialResolver(flags, io, warn),
  });
}
