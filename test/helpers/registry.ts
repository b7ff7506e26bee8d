import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireBin, run, track, untrack } from './bins.ts';
import { startTokenServer, type TokenServer, type TokenServerOptions } from './token-server.ts';

export type AuthMode = 'none' | 'basic' | 'token';

export interface TestRegistry {
  mode: AuthMode;
  /** `127.0.0.1:PORT`, as used in image references. */
  host: string;
  url: string;
  /** Users and passwords (basic and token modes). */
  users: Record<string, string>;
  storageDir: string;
  tokenServer?: TokenServer;
  /** The self-signed certificate, when started with `tls`. */
  certPath?: string;
  stop(): Promise<void>;
}

export const DEFAULT_USERS = { alice: 'wonderland-Secret-1', bob: 'builder-Secret-2' };

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts Debian's docker-registry (the CNCF distribution registry) on 127.0.0.1 with an ephemeral
 * port: anonymous, htpasswd (bcrypt) basic auth, or bearer tokens from a test token server.
 */
export async function startRegistry(
  opts: {
    auth: AuthMode;
    users?: Record<string, string>;
    token?: Partial<TokenServerOptions>;
    /** Serve HTTPS with a self-signed certificate for 127.0.0.1 (its path is in `certPath`). */
    tls?: boolean;
  } = { auth: 'none' },
): Promise<TestRegistry> {
  const bin = requireBin('docker-registry');
  const dir = await mkdtemp(join(tmpdir(), 'lading-registry-'));
  const storageDir = join(dir, 'storage');
  const users = opts.users ?? DEFAULT_USERS;
  const port = await freePort();
  let authYaml = '';
  let tokenServer: TokenServer | undefined;
  if (opts.auth === 'basic') {
    requireBin('htpasswd', 'apache2-utils');
    let lines = '';
    for (const [u, p] of Object.entries(users))
      lines += (await run('htpasswd', ['-Bbn', u, p])).stdout.toString().trim() + '\n';
    await writeFile(join(dir, 'htpasswd'), lines);
    authYaml = `auth:\n  htpasswd:\n    realm: lading-basic\n    path: ${join(dir, 'htpasswd')}\n`;
  } else if (opts.auth === 'token') {
    tokenServer = await startTokenServer({
      service: 'lading-test',
      issuer: 'lading-issuer',
      users,
      ...opts.token,
    });
    authYaml = `auth:\n  token:\n    realm: ${tokenServer.realm}\n    service: lading-test\n    issuer: lading-issuer\n    rootcertbundle: ${tokenServer.certPath}\n`;
  }
  let tlsYaml = '';
  let certPath: string | undefined;
  if (opts.tls) {
    certPath = join(dir, 'tls.crt');
    const keyPath = join(dir, 'tls.key');
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-subj',
      '/CN=127.0.0.1',
      '-days',
      '2',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ]);
    tlsYaml = `  tls:\n    certificate: ${certPath}\n    key: ${keyPath}\n`;
  }
  const config = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${storageDir}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
  secret: lading-test-secret
${tlsYaml}${authYaml}`;
  await writeFile(join(dir, 'config.yml'), config);
  const child: ChildProcess = spawn(bin, ['serve', join(dir, 'config.yml')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  track(child);
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    if (stderr.length < 8192) stderr += c.toString('utf8');
  });
  const url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}: ${stderr}`);
    try {
      if (opts.tls) {
        const r = await run(
          'curl',
          ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', certPath!, `${url}/v2/`],
          { allowFail: true },
        );
        if (['200', '401'].includes(r.stdout.toString())) break;
      } else {
        const res = await fetch(`${url}/v2/`);
        if (res.status === 200 || res.status === 401) break;
      }
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`docker-registry did not answer on ${url} within 15 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    mode: opts.auth,
    host: `127.0.0.1:${port}`,
    url,
    users,
    storageDir,
    tokenServer,
    certPath,
    async stop() {
      untrack(child);
      child.kill();
      await new Promise((r) => child.once('exit', r));
      await tokenServer?.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const shared = new Map<AuthMode, Promise<TestRegistry>>();
/** One registry per auth mode per test process (stopped at exit). */
export function sharedRegistry(mode: AuthMode): Promise<TestRegistry> {
  let p = shared.get(mode);
  if (!p) {
    p = startRegistry({ auth: mode });
    shared.set(mode, p);
  }
  return p;
}

/** Stops every shared registry (call in an `after` hook so node:test can exit). */
export async function stopSharedRegistries(): Promise<void> {
  const all = [...shared.values()];
  shared.clear();
  await Promise.all(all.map(async (p) => (await p).stop()));
}
