import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { authFilePaths, type Credential, encodeAuth, resolveCredential } from '../../src/auth/index.ts';
import { hasCode } from '../../src/errors/index.ts';

let root: string;
let n = 0;
/** A fresh HOME with XDG dirs and a bin dir on PATH. */
let home: string;
let env: NodeJS.ProcessEnv;

async function put(path: string, doc: unknown): Promise<string> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, typeof doc === 'string' ? doc : JSON.stringify(doc));
  return path;
}
const auth = (user: string, pass = 'pw') => ({ auth: encodeAuth(user, pass) });
const runtimeFile = () => join(env.XDG_RUNTIME_DIR!, 'containers', 'auth.json');
const configFile = () => join(env.XDG_CONFIG_HOME!, 'containers', 'auth.json');
const dockerFile = () => join(env.DOCKER_CONFIG!, 'config.json');

/** A helper script on PATH; unless it reads stdin itself (`$(cat)`), stdin is drained first. */
async function helper(name: string, body: string): Promise<void> {
  const p = join(home, 'bin', `docker-credential-${name}`);
  await mkdir(dirname(p), { recursive: true });
  await writeFile(p, `#!/bin/sh\n${body.includes('$(cat)') ? '' : 'cat >/dev/null\n'}${body}\n`);
  await chmod(p, 0o755);
}
const answer = (user: string) => `echo '{"ServerURL":"x","Username":"${user}","Secret":"helper-secret"}'`;

function who(c: Credential): string {
  if (c.kind === 'basic') return `basic:${c.username}@${c.source}`;
  return `${c.kind}@${c.source}`;
}
async function resolve(host: string, repository: string, options = {}) {
  const r = await resolveCredential({ host, repository, options, env, uid: 4242 });
  return { who: who(r.credential), warnings: r.warnings, credential: r.credential };
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'lading-keychain-'));
});
after(() => rm(root, { recursive: true, force: true }));
beforeEach(async () => {
  home = join(root, `home${n++}`);
  await mkdir(join(home, 'run'), { recursive: true });
  env = {
    HOME: home,
    XDG_RUNTIME_DIR: join(home, 'run'),
    XDG_CONFIG_HOME: join(home, 'cfg'),
    DOCKER_CONFIG: join(home, 'dockercfg'),
    PATH: `${join(home, 'bin')}:/usr/bin:/bin`,
  };
});

describe('resolveCredential: flags', () => {
  beforeEach(async () => {
    await put(runtimeFile(), { auths: { 'ghcr.io': auth('file') } });
  });
  it('--creds, --registry-token, --no-creds beat every file', async () => {
    assert.equal(
      (await resolve('ghcr.io', 'a/b', { creds: { username: 'u', password: 'p' } })).who,
      'basic:u@--creds',
    );
    assert.equal((await resolve('ghcr.io', 'a/b', { registryToken: 't' })).who, 'bearer@--registry-token');
    assert.equal((await resolve('ghcr.io', 'a/b', { noCreds: true })).who, 'anonymous@--no-creds');
  });
  it('--credential-file beats auth files', async () => {
    const p = await put(join(home, 'hocker'), 'USERNAME=h\nPASSWORD=x\n');
    assert.equal((await resolve('ghcr.io', 'a/b', { credentialFile: p })).who, `basic:h@${p}`);
  });
  it('no flags: the file entry', async () => {
    assert.equal((await resolve('ghcr.io', 'a/b')).who, `basic:file@${runtimeFile()}`);
  });
});

describe('resolveCredential: files', () => {
  it('--authfile and REGISTRY_AUTH_FILE are the only file read', async () => {
    const explicit = await put(join(home, 'explicit.json'), { auths: { 'quay.io': auth('explicit') } });
    await put(runtimeFile(), { auths: { 'ghcr.io': auth('runtime') } });
    assert.equal((await resolve('quay.io', 'a/b', { authFile: explicit })).who, `basic:explicit@${explicit}`);
    assert.equal((await resolve('ghcr.io', 'a/b', { authFile: explicit })).who, 'anonymous@anonymous');
    env.REGISTRY_AUTH_FILE = explicit;
    assert.equal((await resolve('ghcr.io', 'a/b')).who, 'anonymous@anonymous');
    assert.equal((await resolve('quay.io', 'a/b')).who, `basic:explicit@${explicit}`);
  });
  it('a missing --authfile is a warning, then anonymous', async () => {
    const r = await resolve('quay.io', 'a/b', { authFile: join(home, 'none.json') });
    assert.equal(r.who, 'anonymous@anonymous');
    assert.match(r.warnings.join('\n'), /none\.json does not exist/);
  });
  it('order: runtime, config, docker, .dockercfg; the first file with an entry wins', async () => {
    await put(join(home, '.dockercfg'), { 'https://quay.io': auth('legacy') });
    assert.equal((await resolve('quay.io', 'o/r')).who, `basic:legacy@${join(home, '.dockercfg')}`);
    await put(dockerFile(), { auths: { 'quay.io/o/r': auth('docker') } });
    assert.equal((await resolve('quay.io', 'o/r')).who, `basic:docker@${dockerFile()}`);
    await put(configFile(), { auths: { 'quay.io': auth('config') } });
    assert.equal((await resolve('quay.io', 'o/r')).who, `basic:config@${configFile()}`);
    // A file whose entries are for other hosts, or empty, does not stop the search.
    await put(runtimeFile(), {
      auths: { 'ghcr.io': auth('runtime'), 'quay.io/other': auth('x'), 'quay.io/o/r': {} },
    });
    assert.equal((await resolve('quay.io', 'o/r')).who, `basic:config@${configFile()}`);
    await put(runtimeFile(), { auths: { 'quay.io': auth('runtime') } });
    assert.equal((await resolve('quay.io', 'o/r')).who, `basic:runtime@${runtimeFile()}`);
  });
  it('default paths: HOME/.config, HOME/.docker, /run/containers/<uid> without XDG_RUNTIME_DIR', () => {
    assert.deepEqual(
      authFilePaths({ HOME: '/h' }, undefined, 4242).map((p) => p.path),
      [
        '/run/containers/4242/auth.json',
        '/h/.config/containers/auth.json',
        '/h/.docker/config.json',
        '/h/.dockercfg',
      ],
    );
    assert.deepEqual(
      authFilePaths({ HOME: '/h', XDG_RUNTIME_DIR: '/r', XDG_CONFIG_HOME: '/c', DOCKER_CONFIG: '/d' }).map(
        (p) => p.path,
      ),
      ['/r/containers/auth.json', '/c/containers/auth.json', '/d/config.json', '/h/.dockercfg'],
    );
  });
  it('HOME-based files are found with no XDG or DOCKER_CONFIG set', async () => {
    env = { HOME: home, PATH: env.PATH, XDG_RUNTIME_DIR: join(home, 'run') };
    await put(join(home, '.docker', 'config.json'), {
      auths: { 'https://index.docker.io/v1/': auth('hub') },
    });
    assert.equal(
      (await resolve('docker.io', 'library/alpine')).who,
      `basic:hub@${join(home, '.docker', 'config.json')}`,
    );
    await put(join(home, '.config', 'containers', 'auth.json'), { auths: { 'docker.io': auth('podman') } });
    assert.equal((await resolve('docker.io', 'library/alpine')).who.split('@')[0], 'basic:podman');
  });
  it('DOCKER_AUTH_CONFIG is read before the files', async () => {
    await put(runtimeFile(), { auths: { 'gitlab.example': auth('runtime') } });
    env.DOCKER_AUTH_CONFIG = JSON.stringify({ auths: { 'gitlab.example': auth('ci') } });
    assert.equal((await resolve('gitlab.example', 'g/p')).who, 'basic:ci@$DOCKER_AUTH_CONFIG');
  });
  it('a malformed file is an error naming it', async () => {
    await put(configFile(), '{"auths": {"quay.io": {"auth": "c2VjcmV0OnNlY3JldA=="}}');
    await assert.rejects(
      resolve('quay.io', 'a/b'),
      (e: Error) =>
        hasCode(e, 'E_AUTH_FILE') && e.message.includes(configFile()) && !e.message.includes('c2VjcmV0'),
    );
  });
});

describe('resolveCredential: helpers in a docker config', () => {
  it('credHelpers[host] beats credsStore beats auths', async () => {
    await helper('per-host', answer('from-per-host'));
    await helper('store', answer('from-store'));
    await put(dockerFile(), {
      auths: { 'ghcr.io': auth('from-auths'), 'quay.io': auth('from-auths') },
      credHelpers: { 'ghcr.io': 'per-host' },
      credsStore: 'store',
    });
    assert.equal((await resolve('ghcr.io', 'a/b')).who, 'basic:from-per-host@docker-credential-per-host');
    assert.equal((await resolve('quay.io', 'a/b')).who, 'basic:from-store@docker-credential-store');
    await put(dockerFile(), { auths: { 'quay.io': auth('from-auths') } });
    assert.equal((await resolve('quay.io', 'a/b')).who, `basic:from-auths@${dockerFile()}`);
  });
  it('a helper without the credential falls back to auths, then to the next file', async () => {
    await helper('none', 'echo "credentials not found in native keychain"; exit 1');
    await put(dockerFile(), { auths: { 'quay.io': auth('from-auths'), 'ghcr.io': {} }, credsStore: 'none' });
    assert.equal((await resolve('quay.io', 'a/b')).who, `basic:from-auths@${dockerFile()}`);
    await put(join(home, '.dockercfg'), { 'ghcr.io': auth('legacy') });
    const r = await resolve('ghcr.io', 'a/b');
    assert.equal(r.who, `basic:legacy@${join(home, '.dockercfg')}`);
    assert.deepEqual(r.warnings, []);
  });
  it('a missing helper binary: warning, and public images still work anonymously', async () => {
    await put(dockerFile(), { auths: { 'ghcr.io': {} }, credsStore: 'desktop' });
    const r = await resolve('docker.io', 'library/alpine');
    assert.equal(r.who, 'anonymous@anonymous');
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0]!, /docker-credential-desktop not found on PATH/);
  });
  it('asks helpers about Docker Hub under https://index.docker.io/v1/', async () => {
    await helper('hub', `[ "$(cat)" = "https://index.docker.io/v1/" ] || exit 9\n${answer('hubuser')}`);
    await put(dockerFile(), { credHelpers: { 'index.docker.io': 'hub' } });
    assert.equal((await resolve('docker.io', 'library/alpine')).who, 'basic:hubuser@docker-credential-hub');
  });
});
