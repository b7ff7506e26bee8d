import { spawn } from 'node:child_process';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { type Credential, sealCredential } from './credential.ts';

export interface HelperResult {
  credential?: Credential;
  warning?: string;
}

/**
 * Runs `docker-credential-<name> get` with the server URL on stdin. Missing helpers and "not
 * found" answers are not errors: the caller falls back to anonymous access with a warning.
 */
export async function runCredentialHelper(
  name: string,
  serverUrl: string,
  env: NodeJS.ProcessEnv,
  timeoutMs = 30_000,
): Promise<HelperResult> {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) {
    return { warning: `ignoring credential helper with an invalid name ${JSON.stringify(name)}` };
  }
  const bin = `docker-credential-${name}`;
  const r = await new Promise<{
    code: number | null;
    stdout: string;
    stderr: string;
    error?: NodeJS.ErrnoException;
  }>((resolve) => {
    let stdout = '';
    let stderr = '';
    const child = spawn(bin, ['get'], { env, stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs });
    child.stdout.on('data', (c: Buffer) => {
      if (stdout.length < 1 << 20) stdout += c.toString('utf8');
    });
    child.stderr.on('data', (c: Buffer) => {
      if (stderr.length < 4096) stderr += c.toString('utf8');
    });
    child.on('error', (error: NodeJS.ErrnoException) => resolve({ code: null, stdout, stderr, error }));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.on('error', () => {});
    child.stdin.end(serverUrl);
  });
  if (r.error?.code === 'ENOENT')
    return { warning: `credential helper ${bin} not found on PATH; continuing without credentials` };
  if (r.error)
    return {
      warning: `credential helper ${bin} failed to start (${r.error.code ?? 'error'}); continuing without credentials`,
    };
  if (r.code !== 0) {
    const out = `${r.stdout}${r.stderr}`;
    if (/credentials not found/i.test(out)) return {};
    return {
      warning: `credential helper ${bin} exited with status ${r.code}; continuing without credentials`,
    };
  }
  let json: { Username?: unknown; Secret?: unknown };
  try {
    json = JSON.parse(r.stdout);
  } catch {
    throw new LadingError(
      ErrorCode.CredentialHelper,
      `credential helper ${bin} printed something that is not JSON`,
    );
  }
  const username = typeof json.Username === 'string' ? json.Username : '';
  const secret = typeof json.Secret === 'string' ? json.Secret : '';
  if (!secret) return {};
  const source = bin;
  if (username === '<token>')
    return { credential: sealCredential({ kind: 'identity-token', token: secret, source }) };
  return { credential: sealCredential({ kind: 'basic', username, password: secret, source }) };
}
