import { spawn } from 'node:child_process';
import { type Credential, sealCredential } from './credential.ts';

/** What asking a credential helper gave: a credential, nothing (not stored), or a warning. */
export interface HelperResult {
  credential?: Credential;
  /** Why the helper gave nothing usable; the caller goes on (anonymous access still works). */
  warning?: string;
}

export interface HelperOptions {
  /** Environment of the helper; its PATH finds `docker-credential-<name>`. */
  env: NodeJS.ProcessEnv;
  /** Kill the helper after this long (default 30 s: helpers may ask for a GPG passphrase). */
  timeoutMs?: number;
}

const HELPER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const MAX_OUTPUT = 1024 * 1024;

/** The server URL helpers are asked about: Docker stores Hub under its legacy index URL. */
export function helperServerUrl(host: string): string {
  return host === 'docker.io' ? 'https://index.docker.io/v1/' : host;
}

/**
 * Runs `docker-credential-<name> get` with `serverUrl` on stdin and reads
 * `{"ServerURL","Username","Secret"}`; `Username: "<token>"` means the secret is an identity token.
 * Never throws: a missing helper, a failure, a timeout or unreadable output is a warning, and
 * "credentials not found" is simply no credential. Warnings never include the helper's output
 * (it may hold secrets).
 */
export async function runCredentialHelper(
  name: string,
  serverUrl: string,
  opts: HelperOptions,
): Promise<HelperResult> {
  if (!HELPER_NAME.test(name))
    return { warning: `ignoring credential helper with an invalid name ${JSON.stringify(name)}` };
  const bin = `docker-credential-${name}`;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const r = await new Promise<{
    code: number | null;
    stdout: Buffer;
    stderr: string;
    timedOut: boolean;
    error?: NodeJS.ErrnoException;
  }>((resolve) => {
    const out: Buffer[] = [];
    let outLen = 0;
    let stderr = '';
    let timedOut = false;
    let error: NodeJS.ErrnoException | undefined;
    // Its own process group, so a timeout kills what it started too (gpg, a pinentry, a shell).
    const child = spawn(bin, ['get'], { env: opts.env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    // Outside lading's process group it no longer gets the terminal's Ctrl-C: end it with lading.
    const onExit = () => killGroup(child.pid);
    process.once('exit', onExit);
    const timer = setTimeout(() => {
      timedOut = true;
      process.off('exit', onExit);
      killGroup(child.pid);
      child.kill('SIGKILL');
      // A grandchild may still hold the pipes open: stop listening instead of waiting for 'close'.
      child.stdout.destroy();
      child.stderr.destroy();
      resolve({ code: null, stdout: Buffer.alloc(0), stderr: '', timedOut, error });
    }, timeoutMs);
    child.stdout.on('data', (c: Buffer) => {
      outLen += c.length;
      if (outLen <= MAX_OUTPUT) out.push(c);
    });
    child.stderr.on('data', (c: Buffer) => {
      if (stderr.length < 4096) stderr += c.toString('utf8');
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      error = e;
      // A child that never started emits no 'close' on every Node version.
      if (child.pid === undefined) {
        clearTimeout(timer);
        process.off('exit', onExit);
        resolve({ code: null, stdout: Buffer.alloc(0), stderr: '', timedOut, error });
      }
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      process.off('exit', onExit);
      resolve({ code, stdout: Buffer.concat(out), stderr, timedOut, error });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(serverUrl);
  });
  const fallback = 'continuing without credentials';
  if (r.error?.code === 'ENOENT')
    return { warning: `credential helper ${bin} not found on PATH; ${fallback}` };
  if (r.error)
    return { warning: `credential helper ${bin} failed to start (${r.error.code ?? 'error'}); ${fallback}` };
  if (r.timedOut)
    return { warning: `credential helper ${bin} did not answer within ${timeoutMs} ms; ${fallback}` };
  if (r.code !== 0) {
    if (/credentials not found/i.test(`${r.stdout.toString('utf8')}\n${r.stderr}`)) return {};
    return {
      warning: `credential helper ${bin} failed (exit status ${r.code ?? 'signal'}; its output is not shown as it may hold secrets); ${fallback}`,
    };
  }
  if (r.stdout.length > MAX_OUTPUT)
    return { warning: `credential helper ${bin} printed more than ${MAX_OUTPUT} bytes; ${fallback}` };
  let json: unknown;
  try {
    json = JSON.parse(r.stdout.toString('utf8'));
  } catch {
    return { warning: `credential helper ${bin} printed something that is not JSON; ${fallback}` };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    return { warning: `credential helper ${bin} printed something that is not a JSON object; ${fallback}` };
  const o = json as { Username?: unknown; Secret?: unknown };
  const username = typeof o.Username === 'string' ? o.Username : '';
  const secret = typeof o.Secret === 'string' ? o.Secret : '';
  if (!secret) return {};
  const source = bin;
  if (username === '<token>')
    return { credential: sealCredential({ kind: 'identity-token', token: secret, source }) };
  return { credential: sealCredential({ kind: 'basic', username, password: secret, source }) };
}

/** SIGKILLs the process group led by `pid` (the helper and every descendant still in it). */
function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}
