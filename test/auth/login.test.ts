import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  decodeAuth,
  encodeAuth,
  login,
  loginAuthFile,
  logout,
  resolveCredential,
} from '../../src/auth/index.ts';
import { hasCode } from '../../src/errors/index.ts';
import { requireBin, run } from '../helpers/bins.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';

let root: string;
let n = 0;
let env: NodeJS.ProcessEnv;
let home: string;
const runtimeFile = () => join(env.XDG_RUNTIME_DIR!, 'containers', 'auth.json');
const readJson = async (p: string) => JSON.parse(await readFile(p, 'utf8'));
const mode = async (p: string) => (await stat(p)).mode & 0o777;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'lading-login-'));
});
after(() => rm(root, { recursive: true, force: true }));
beforeEach(async () => {
  home = join(root, `h${n++}`);
  await mkdir(join(home, 'run'), { recursive: true });
  env = { HOME: home, XDG_RUNTIME_DIR: join(home, 'run'), XDG_CONFIG_HOME: join(home, 'cfg') };
});

describe('login / logout', () => {
  it('writes the runtime auth.json (dir 0700, file 0600) that the lookup then finds', async () => {
    const p = await login({ host: 'ghcr.io', username: 'me', password: 'pa:ss', env });
    assert.equal(p, runtimeFile());
    assert.equal(await mode(p), 0o600);
    assert.equal(await mode(dirname(p)), 0o700);
    const doc = await readJson(p);
    assert.deepEqual(decodeAuth(doc.auths['ghcr.io'].auth, p), { username: 'me', password: 'pa:ss' });
    const r = await resolveCredential({ host: 'ghcr.io', repository: 'me/app', env });
    assert.ok(r.credential.kind === 'basic' && r.credential.password === 'pa:ss');
    assert.equal(r.credential.source, p);
  });

  it('falls back to XDG_CONFIG_HOME (then ~/.config) when XDG_RUNTIME_DIR is unset or missing', () => {
    assert.equal(loginAuthFile({ HOME: '/h', XDG_CONFIG_HOME: '/c' }), '/c/containers/auth.json');
    assert.equal(loginAuthFile({ HOME: '/h' }), '/h/.config/containers/auth.json');
    assert.equal(
      loginAuthFile({ HOME: '/h', XDG_RUNTIME_DIR: join(root, 'does-not-exist') }),
      '/h/.config/containers/auth.json',
    );
    assert.equal(loginAuthFile({ HOME: '/h', REGISTRY_AUTH_FILE: '/r.json' }), '/r.json');
    assert.equal(loginAuthFile({ HOME: '/h', REGISTRY_AUTH_FILE: '/r.json' }, '/a.json'), '/a.json');
  });

  it('keeps every other key, replaces the entry, normalises Docker Hub to docker.io', async () => {
    const p = runtimeFile();
    await mkdir(dirname(p), { recursive: true });
    const before = {
      auths: { 'quay.io': { auth: encodeAuth('q', 'q') }, 'ghcr.io': { auth: encodeAuth('old', 'old') } },
      credHelpers: { 'gcr.io': 'gcloud' },
      credsStore: 'pass',
      unknownKey: { kept: [1, 2] },
    };
    await writeFile(p, JSON.stringify(before), { mode: 0o644 });
    await login({ host: 'ghcr.io', username: 'new', password: 'n', env });
    await login({ host: 'index.docker.io', username: 'hub', password: 'h', env });
    const doc = await readJson(p);
    assert.deepEqual(Object.keys(doc.auths), ['docker.io', 'ghcr.io', 'quay.io']);
    assert.deepEqual(doc.auths['quay.io'], before.auths['quay.io']);
    assert.equal(decodeAuth(doc.auths['ghcr.io'].auth, p).username, 'new');
    assert.equal(decodeAuth(doc.auths['docker.io'].auth, p).username, 'hub');
    assert.deepEqual(doc.credHelpers, before.credHelpers);
    assert.equal(doc.credsStore, 'pass');
    assert.deepEqual(doc.unknownKey, before.unknownKey);
    assert.equal(await mode(p), 0o600);
  });

  it('logout removes the host (all its aliases) and keeps the rest; --all clears auths only', async () => {
    const p = runtimeFile();
    await mkdir(dirname(p), { recursive: true });
    await writeFile(
      p,
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: encodeAuth('a', 'b') },
          'docker.io': { auth: encodeAuth('a', 'b') },
          'docker.io/org': { auth: encodeAuth('o', 'b') },
          'quay.io': { auth: encodeAuth('q', 'q') },
        },
        credHelpers: { 'gcr.io': 'gcloud' },
      }),
    );
    assert.match(await logout({ host: 'docker.io', env }), /Removed login credentials for docker\.io/);
    assert.deepEqual(Object.keys((await readJson(p)).auths), ['docker.io/org', 'quay.io']);
    await assert.rejects(logout({ host: 'ghcr.io', env }), (e: Error) => hasCode(e, 'E_NOT_FOUND'));
    await logout({ all: true, env });
    assert.deepEqual(await readJson(p), { auths: {}, credHelpers: { 'gcr.io': 'gcloud' } });
    assert.equal(await mode(p), 0o600);
  });

  it('logout with no file: E_NOT_FOUND for a host, nothing written for --all', async () => {
    await assert.rejects(logout({ host: 'quay.io', env }), (e: Error) => hasCode(e, 'E_NOT_FOUND'));
    await logout({ all: true, env });
    await assert.rejects(stat(runtimeFile()), { code: 'ENOENT' });
  });

  it('refuses to change a malformed file and leaves it as it was', async () => {
    const p = runtimeFile();
    await mkdir(dirname(p), { recursive: true });
    const bad = '{"auths": {"quay.io": {"auth": "c2VjcmV0OnNlY3JldA=="}}';
    await writeFile(p, bad);
    await assert.rejects(
      login({ host: 'ghcr.io', username: 'u', password: 'p', env }),
      (e: Error) => hasCode(e, 'E_AUTH_FILE') && e.message.includes(p) && !e.message.includes('c2VjcmV0'),
    );
    await writeFile(p, '{"auths": []}');
    await assert.rejects(logout({ all: true, env }), (e: Error) => hasCode(e, 'E_AUTH_FILE'));
    assert.equal(await readFile(p, 'utf8'), '{"auths": []}');
  });
});

describe('login / logout against podman', () => {
  let reg: TestRegistry;
  before(async () => {
    requireBin('podman');
    reg = await startRegistry({ auth: 'basic' });
  });
  after(() => reg?.stop());

  it('writes the same bytes as podman login, and podman reads what lading writes', async () => {
    const start = JSON.stringify({
      auths: { 'quay.io': { auth: encodeAuth('q', 'q<&>') }, 'a.example/ns': { auth: encodeAuth('x', 'y') } },
      credHelpers: { 'z.example': 'zz', 'b.example': 'bb' },
    });
    const password = reg.users.alice!;
    const podmanFile = join(home, 'podman.json');
    const ladingFile = join(home, 'lading.json');
    await writeFile(podmanFile, start);
    await writeFile(ladingFile, start);
    const penv = { ...process.env, HOME: home, XDG_RUNTIME_DIR: env.XDG_RUNTIME_DIR };
    await run(
      'podman',
      ['login', '--tls-verify=false', '--authfile', podmanFile, '-u', 'alice', '--password-stdin', reg.host],
      { input: password, env: penv },
    );
    await login({ host: reg.host, username: 'alice', password, authFile: ladingFile, env });
    assert.equal(await readFile(ladingFile, 'utf8'), await readFile(podmanFile, 'utf8'));
    assert.equal(await mode(ladingFile), await mode(podmanFile));

    const getLogin = (authfile: string) =>
      run('podman', ['login', '--get-login', '--authfile', authfile, reg.host], {
        env: penv,
        allowFail: true,
      });
    assert.equal((await getLogin(ladingFile)).stdout.toString().trim(), 'alice');
    await logout({ host: reg.host, authFile: ladingFile, env });
    const after = await getLogin(ladingFile);
    assert.notEqual(after.code, 0);
    assert.match(after.stderr, /not logged in/i);
    await run('podman', ['logout', '--authfile', podmanFile, reg.host], { env: penv });
    assert.equal(await readFile(ladingFile, 'utf8'), await readFile(podmanFile, 'utf8'));
  });
});
