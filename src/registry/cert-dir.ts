import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as Tls from 'node:tls';
import { ErrorCode, LadingError } from '../errors/index.ts';

/** TLS settings for connections to one host: what undici passes to `tls.connect`. */
export interface TlsSettings {
  /** Trusted CAs: the default ones plus the directory's `*.crt` (absent when it has none). */
  ca?: string[];
  /** Client certificate (PEM) from `NAME.cert`. */
  cert?: Buffer;
  /** Its private key (PEM) from `NAME.key`. */
  key?: Buffer;
  /** The directory the settings came from. */
  dir: string;
}

/** Where certificates come from (containers-certs.d(5)); the CLI fills this, the library reads no environment. */
export interface CertDirOptions {
  /**
   * One directory used for the registry as is (skopeo's `--cert-dir`), instead of the per-host
   * lookup. It must exist.
   */
  certDir?: string;
  /**
   * Roots searched in order for a `HOST[:PORT]` subdirectory; the first that exists is used
   * (see {@link defaultPerHostCertDirs}). Default: none.
   */
  perHostCertDirs?: readonly string[];
}

/**
 * The per-host roots podman and skopeo search: `$HOME/.config/containers/certs.d` (when a home is
 * given), `/etc/containers/certs.d`, `/etc/docker/certs.d`.
 */
export function defaultPerHostCertDirs(home?: string): string[] {
  const dirs = ['/etc/containers/certs.d', '/etc/docker/certs.d'];
  if (home) dirs.unshift(join(home, '.config', 'containers', 'certs.d'));
  return dirs;
}

function ioError(err: unknown, what: string, path: string): LadingError {
  const code = (err as { code?: string })?.code ?? String(err);
  return new LadingError(ErrorCode.Io, `cannot read ${what} ${path}: ${code}`, { path }, { cause: err });
}

/**
 * Reads a certificate directory: every `*.crt` is a CA to trust (besides the default ones), and
 * `NAME.cert` + `NAME.key` is a client certificate and its key (with several pairs the first by
 * name is used). A `.cert` without its `.key`, or a `.key` without its `.cert`, is an error naming
 * the file. Other files are ignored. Returns undefined when the directory does not exist, unless
 * `required`.
 */
export async function readCertDir(dir: string, required = false): Promise<TlsSettings | undefined> {
  let names: string[];
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    names = entries
      .filter((e) => !e.isDirectory())
      .map((e) => e.name)
      .sort();
  } catch (err) {
    const code = (err as { code?: string })?.code;
    if (!required && (code === 'ENOENT' || code === 'EACCES')) return undefined;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      throw new LadingError(ErrorCode.BadArgument, `certificate directory ${dir} does not exist`, {
        path: dir,
      });
    throw ioError(err, 'certificate directory', dir);
  }
  const have = new Set(names);
  const read = async (name: string): Promise<Buffer> => {
    const path = join(dir, name);
    try {
      return await readFile(path);
    } catch (err) {
      throw ioError(err, 'certificate file', path);
    }
  };
  const extraCas: string[] = [];
  let pair: { cert: Buffer; key: Buffer } | undefined;
  for (const name of names) {
    if (name.endsWith('.crt')) {
      extraCas.push((await read(name)).toString('utf8'));
    } else if (name.endsWith('.cert')) {
      const keyName = `${name.slice(0, -'.cert'.length)}.key`;
      if (!have.has(keyName))
        throw new LadingError(
          ErrorCode.BadArgument,
          `client certificate ${join(dir, name)} has no key ${keyName} next to it (CA certificates end in .crt)`,
          { path: join(dir, name) },
        );
      pair ??= { cert: await read(name), key: await read(keyName) };
    } else if (name.endsWith('.key')) {
      const certName = `${name.slice(0, -'.key'.length)}.cert`;
      if (!have.has(certName))
        throw new LadingError(
          ErrorCode.BadArgument,
          `key ${join(dir, name)} has no client certificate ${certName} next to it`,
          { path: join(dir, name) },
        );
    }
  }
  const settings: TlsSettings = { dir };
  // Node's `ca` replaces the trusted set, so the defaults (system or bundled, NODE_EXTRA_CA_CERTS)
  // are kept explicitly: the directory adds CAs, as in containers-certs.d.
  if (extraCas.length)
    settings.ca = [
      ...(process.getBuiltinModule('node:tls') as typeof Tls).getCACertificates('default'),
      ...extraCas,
    ];
  if (pair) {
    settings.cert = pair.cert;
    settings.key = pair.key;
  }
  return settings;
}

/**
 * The TLS settings for `hostPort` (`registry.example:5000`, as in image references): the explicit
 * `certDir` if given, else the first `ROOT/HOST[:PORT]` directory that exists.
 */
export async function certsForHost(hostPort: string, opts: CertDirOptions): Promise<TlsSettings | undefined> {
  if (opts.certDir) return readCertDir(opts.certDir, true);
  // A host like `[::1]:5000` is a directory name as is; nothing in it can climb out of the root.
  if (hostPort.includes('/') || hostPort === '..' || hostPort === '.') return undefined;
  for (const root of opts.perHostCertDirs ?? []) {
    const found = await readCertDir(join(root, hostPort));
    if (found) return found;
  }
  return undefined;
}
