import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { removeAtExit, requireBin, run, selfSignedCert, track, untrack } from './bins.ts';
import {
  startTokenServer,
  type TokenPolicy,
  type TokenServer,
  type TokenServerOptions,
} from './token-server.ts';

export type AuthMode = 'none' | 'basic' | 'token';

export interface TestRegistry {
  mode: AuthMode;
  /** `127.0.0.1:PORT`, as used in image references. */
  host: string;
  /** `http://127.0.0.1:PORT` (`https://` with `tls`). */
  url: string;
  /** Users and passwords (basic and token modes). */
  users: Record<string, string>;
  /** The filesystem driver's root (blobs under `docker/registry/v2/blobs/sha256/XX/HEX/data`). */
  storageDir: string;
  /** The token server (token mode). */
  tokenServer?: TokenServer;
  /** The self-signed certificate, when started with `tls`. */
  certPath?: string;
  /** The registry's process id. */
  pid: number;
  /** What the registry wrote to stderr so far (first 64 KiB). */
  stderr(): string;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  auth: AuthMode;
  /** Users and passwords for basic and token modes (default {@link DEFAULT_USERS}). */
  users?: Record<string, string>;
  /** Who may do what in token mode (see {@link TokenPolicy}); default: users everything, anonymous pull on `public/`. */
  tokenAccess?: TokenPolicy;
  /** Any other token server option (service and issuer are set to match the registry config). */
  token?: Partial<TokenServerOptions>;
  /** Serve HTTPS with a self-signed certificate for 127.0.0.1 (its path is in `certPath`). */
  tls?: boolean;
  /**
   * With `tls`: PEM files of CAs whose client certificates the registry requires (distribution's
   * `http.tls.clientcas`: every connection without a certificate signed by one is refused).
   */
  clientCas?: string[];
  /** Let the test process exit while the registry runs (it is still killed at exit). */
  unref?: boolean;
}

export const DEFAULT_USERS = { alice: 'wonderland-Secret-1', bob: 'builder-Secret-2' };
export const TOKEN_SERVICE = 'lading-test';
export const TOKEN_ISSUER = 'lading-issuer';

/** A port that was free a moment ago on 127.0.0.1 (the registry retries if it is taken by then). */
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
 * Whether a TLS server answers a handshake on 127.0.0.1:`port` (the readiness check when the
 * registry requires client certificates: with TLS 1.3 the client side completes before the server
 * checks the client's certificate).
 */
function probeHandshake(port: number, ca?: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ...(ca ? { ca } : {}), timeout: 2000 });
    s.once('secureConnect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

/** Status of `GET url` on a fresh connection, or undefined when nothing answers. */
function probe(url: string, ca?: Buffer): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = (url.startsWith('https:') ? httpsRequest : httpRequest)(
      url,
      { method: 'GET', agent: false, timeout: 2000, ...(ca ? { ca } : {}) },
      (res) => {
        res.resume();
        resolve(res.statusCode);
      },
    );
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

const pdeathsig = existsSync('/usr/bin/setpriv');

/**
 * Starts Debian's docker-registry (the CNCF distribution registry 2.8) on 127.0.0.1 with an ephemeral
 * port: anonymous, htpasswd (bcrypt) basic auth, or bearer tokens from a test token server. Resolves
 * once `GET /v2/` answers 200 or 401 (about 0.1 s). Several can run at once.
 */
export async function startRegistry(opts: RegistryOptions = { auth: 'none' }): Promise<TestRegistry> {
  const bin = requireBin('docker-registry');
  const dir = await mkdtemp(join(tmpdir(), 'lading-registry-'));
  const unregisterDir = removeAtExit(dir);
  const storageDir = join(dir, 'storage');
  const users = opts.users ?? DEFAULT_USERS;
  let tokenServer: TokenServer | undefined;
  let child: ChildProcess | undefined;
  try {
    let authYaml = '';
    if (opts.auth === 'basic') {
      requireBin('htpasswd');
      let lines = '';
      for (const [u, p] of Object.entries(users))
        lines += (await run('htpasswd', ['-Bbn', u, p])).stdout.toString().trim() + '\n';
      await writeFile(join(dir, 'htpasswd'), lines);
      authYaml = `auth:\n  htpasswd:\n    realm: lading-basic\n    path: ${join(dir, 'htpasswd')}\n`;
    } else if (opts.auth === 'token') {
      tokenServer = await startTokenServer({
        users,
        ...(opts.tokenAccess ? { policy: opts.tokenAccess } : {}),
        ...opts.token,
        service: TOKEN_SERVICE,
        issuer: TOKEN_ISSUER,
        ...(opts.unref ? { unref: true } : {}),
      });
      authYaml = `auth:\n  token:\n    realm: ${tokenServer.realm}\n    service: ${TOKEN_SERVICE}\n    issuer: ${TOKEN_ISSUER}\n    rootcertbundle: ${tokenServer.certPath}\n`;
    }
    let tlsYaml = '';
    let certPath: string | undefined;
    if (opts.tls) {
      const made = await selfSignedCert(dir, {
        cn: '127.0.0.1',
        san: 'IP:127.0.0.1',
        certName: 'tls.crt',
        keyName: 'tls.key',
      });
      certPath = made.certPath;
      const keyPath = made.keyPath;
      tlsYaml = `  tls:\n    certificate: ${certPath}\n    key: ${keyPath}\n`;
      if (opts.clientCas?.length)
        tlsYaml += `    clientcas:\n${opts.clientCas.map((p) => `      - ${p}\n`).join('')}`;
    } else if (opts.clientCas) {
      throw new Error('startRegistry: clientCas needs tls');
    }
    const ca = certPath ? readFileSync(certPath) : undefined;

    // The port is found free first, then bound by the registry: another process may take it in
    // between, so a bind failure is retried on a new port.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
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
      // setpriv --pdeathsig: the registry dies with the test process even on SIGKILL.
      const c = pdeathsig
        ? spawn('setpriv', ['--pdeathsig', 'KILL', '--', bin, 'serve', join(dir, 'config.yml')], {
            stdio: ['ignore', 'ignore', 'pipe'],
          })
        : spawn(bin, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
      child = c;
      track(c);
      let stderr = '';
      c.stderr?.on('data', (d: Buffer) => {
        if (stderr.length < 65536) stderr += d.toString('utf8');
      });
      const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
      const url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
      const deadline = Date.now() + 15_000;
      let up = false;
      while (!up) {
        if (c.exitCode !== null || c.signalCode !== null) break;
        if (opts.clientCas?.length) up = await probeHandshake(port, ca);
        else {
          const status = await probe(`${url}/v2/`, ca);
          if (status === 200 || status === 401) up = true;
        }
        if (up) break;
        if (Date.now() > deadline) {
          untrack(c);
          c.kill('SIGKILL');
          throw new Error(`docker-registry did not answer GET ${url}/v2/ within 15 s; its stderr: ${stderr}`);
        } else await new Promise((r) => setTimeout(r, 20));
      }
      if (!up) {
        untrack(c);
        if (/address already in use/.test(stderr) && attempt < 5) continue;
        throw new Error(`docker-registry exited with ${c.exitCode ?? c.signalCode}; its stderr: ${stderr}`);
      }
      if (opts.unref) {
        c.unref();
        (c.stderr as Socket | null)?.unref();
      }
      const ts = tokenServer;
      let stopped: Promise<void> | undefined;
      return {
        mode: opts.auth,
        host: `127.0.0.1:${port}`,
        url,
        users,
        storageDir,
        tokenServer: ts,
        certPath,
        pid: c.pid!,
        stderr: () => stderr,
        stop() {
          stopped ??= (async () => {
            untrack(c);
            if (c.exitCode === null && c.signalCode === null) {
              c.kill('SIGKILL');
              await exited;
            }
            await ts?.stop();
            await rm(dir, { recursive: true, force: true });
            unregisterDir();
          })();
          return stopped;
        },
      };
    }
  } catch (e) {
    if (child) {
      untrack(child);
      child.kill('SIGKILL');
    }
    await tokenServer?.stop();
    await rm(dir, { recursive: true, force: true });
    unregisterDir();
    throw e;
  }
}

const shared = new Map<AuthMode, Promise<TestRegistry>>();

/**
 * One registry per auth mode per test process, started on first use with the default users and
 * token policy. It does not keep the process alive and is killed at exit; `stopSharedRegistries`
 * stops them earlier.
 */
export function sharedRegistry(mode: AuthMode): Promise<TestRegistry> {
  let p = shared.get(mode);
  if (!p) {
    p = startRegistry({ auth: mode, unref: true });
    p.catch(() => shared.delete(mode));
    shared.set(mode, p);
  }
  return p;
}

/** Stops every shared registry (call in an `after` hook). */
export async function stopSharedRegistries(): Promise<void> {
  const all = [...shared.values()];
  shared.clear();
  await Promise.all(all.map(async (p) => (await p.catch(() => undefined))?.stop()));
}
