import { execFileSync, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';

/** Debian package of each binary the tests use, for the "not found" message. */
const PACKAGES: Record<string, string> = {
  'docker-registry': 'docker-registry',
  htpasswd: 'apache2-utils',
  skopeo: 'skopeo',
  umoci: 'umoci',
  'nix-hash': 'nix-bin',
  'nix-store': 'nix-bin',
  'nix-build': 'nix-bin',
  'nix-instantiate': 'nix-bin',
  nix: 'nix-bin',
  podman: 'podman',
  openssl: 'openssl',
  curl: 'curl',
  setpriv: 'util-linux',
  setfattr: 'attr',
  getfattr: 'attr',
};

/**
 * Absolute path of a binary the tests need; throws (never skips) when it is missing, naming the
 * Debian package that provides it.
 */
export function requireBin(name: string, pkg = PACKAGES[name] ?? name): string {
  if (!/^[A-Za-z0-9._+-]+$/.test(name)) throw new Error(`requireBin: not a command name: ${name}`);
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`${name} not found: install Debian package ${pkg} (bash .ci/run does)`);
  }
}

export interface RunResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

export interface RunOptions {
  input?: Buffer | string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Resolve with the result on a non-zero exit instead of rejecting. */
  allowFail?: boolean;
  /** Kill the command (SIGKILL) after this long and reject. */
  timeoutMs?: number;
}

/**
 * Runs a command; stdout is a Buffer (`.toString()` it for text). Rejects with the command line and
 * its stderr on a non-zero exit unless `allowFail`.
 */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    track(child);
    const out: Buffer[] = [];
    let err = '';
    let timedOut = false;
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, opts.timeoutMs);
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString('utf8');
    });
    child.on('error', (e) => {
      untrack(child);
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      untrack(child);
      clearTimeout(timer);
      const r = { code: code ?? 128, stdout: Buffer.concat(out), stderr: err };
      if (timedOut)
        reject(new Error(`${cmd} ${args.join(' ')} timed out after ${opts.timeoutMs} ms: ${err.trim()}`));
      else if (r.code !== 0 && !opts.allowFail)
        reject(new Error(`${cmd} ${args.join(' ')} exited ${code ?? signal}: ${err.trim()}`));
      else resolve(r);
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

// ---- clean-up at exit -------------------------------------------------------------------------

const children = new Set<{ kill: (signal?: NodeJS.Signals) => unknown }>();
const exitHooks = new Set<() => void>();

/** Registers a child to kill when the test process exits, even after a failure. */
export function track(child: { kill: (signal?: NodeJS.Signals) => unknown }): void {
  children.add(child);
}
export function untrack(child: { kill: (signal?: NodeJS.Signals) => unknown }): void {
  children.delete(child);
}

/** Runs `fn` (synchronous) when the process exits; returns a function that unregisters it. */
export function onExit(fn: () => void): () => void {
  exitHooks.add(fn);
  return () => exitHooks.delete(fn);
}

/** Removes `dir` recursively at exit unless it was removed (and unregistered) before. */
export function removeAtExit(dir: string): () => void {
  return onExit(() => rmSync(dir, { recursive: true, force: true }));
}

function cleanUp(): void {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
  for (const fn of exitHooks) {
    try {
      fn();
    } catch {
      // best effort
    }
  }
  exitHooks.clear();
}

process.once('exit', cleanUp);
// node:test kills a timed-out file with SIGTERM; 'exit' does not run on a signal, so clean up and
// die of the same signal.
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.once(sig, () => {
    cleanUp();
    process.kill(process.pid, sig);
  });
}

/**
 * A self-signed RSA-2048 certificate and key made with openssl in `dir` (valid 2 days), with an
 * optional subjectAltName such as `IP:127.0.0.1`.
 */
export async function selfSignedCert(
  dir: string,
  opts: { cn: string; san?: string; certName?: string; keyName?: string },
): Promise<{ certPath: string; keyPath: string }> {
  requireBin('openssl');
  const certPath = join(dir, opts.certName ?? 'cert.pem');
  const keyPath = join(dir, opts.keyName ?? 'key.pem');
  const args = ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath];
  args.push('-subj', `/CN=${opts.cn}`, '-days', '2');
  if (opts.san) args.push('-addext', `subjectAltName=${opts.san}`);
  await run('openssl', args);
  return { certPath, keyPath };
}
