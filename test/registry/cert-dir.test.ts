import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { getCACertificates } from 'node:tls';
import { parseReference } from '../../src/reference/index.ts';
import { RegistryClient, readCertDir } from '../../src/registry/index.ts';
import { requireBin, run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { buildLayout, pushLayout, smallImage } from '../helpers/images.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';

let work: string;
/** HTTPS with a self-signed server certificate. */
let reg: TestRegistry;
/** HTTPS that also requires a client certificate signed by `clientCa`. */
let mtls: TestRegistry;
let clientCa: { certPath: string; keyPath: string };
let client: { certPath: string; keyPath: string };
let digest: string;

/** A directory with the given files copied in under the given names. */
async function certDir(name: string, files: Record<string, string>): Promise<string> {
  const dir = join(work, name);
  await mkdir(dir, { recursive: true });
  for (const [to, from] of Object.entries(files)) await copyFile(from, join(dir, to));
  return dir;
}

const env = { HOME: '/nonexistent', PATH: process.env.PATH };

before(async () => {
  requireBin('openssl');
  work = await mkdtemp(join(tmpdir(), 'lading-certdir-'));
  // A CA of our own, and a client certificate it signs (extendedKeyUsage clientAuth, as Go checks).
  clientCa = { certPath: join(work, 'client-ca.pem'), keyPath: join(work, 'client-ca.key') };
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    clientCa.keyPath,
    '-out',
    clientCa.certPath,
    '-subj',
    '/CN=lading test client CA',
    '-days',
    '2',
  ]);
  client = { certPath: join(work, 'client.pem'), keyPath: join(work, 'client.key.pem') };
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    client.keyPath,
    '-out',
    client.certPath,
    '-subj',
    '/CN=lading test client',
    '-days',
    '2',
    '-CA',
    clientCa.certPath,
    '-CAkey',
    clientCa.keyPath,
    '-addext',
    'extendedKeyUsage=clientAuth',
    '-addext',
    'basicConstraints=CA:FALSE',
  ]);
  [reg, mtls] = await Promise.all([
    startRegistry({ auth: 'none', tls: true }),
    startRegistry({ auth: 'none', tls: true, clientCas: [clientCa.certPath] }),
  ]);
  const image = await buildLayout(smallImage('cert-dir'));
  digest = image.digest;
  await pushLayout(image, reg, 'certs/app:1');
  // skopeo pushes to the client-certificate registry with its own --dest-cert-dir.
  const skopeoDir = await certDir('skopeo', {
    'server.crt': mtls.certPath!,
    'client.cert': client.certPath,
    'client.key': client.keyPath,
  });
  await run(
    'skopeo',
    [
      'copy',
      '-q',
      '--insecure-policy',
      '--preserve-digests',
      '--dest-cert-dir',
      skopeoDir,
      `oci:${image.dir}:${image.tag}`,
      `docker://${mtls.host}/certs/app:1`,
    ],
    { env: { ...process.env, HOME: work } },
  );
});
after(async () => {
  await Promise.all([reg?.stop(), mtls?.stop()]);
  await rm(work, { recursive: true, force: true });
});

test('readCertDir: *.crt are added to the default CAs, NAME.cert + NAME.key is the client pair', async () => {
  const dir = await certDir('read', {
    'b.crt': reg.certPath!,
    'a.crt': clientCa.certPath,
    'client.cert': client.certPath,
    'client.key': client.keyPath,
  });
  await writeFile(join(dir, 'README'), 'ignored\n');
  const s = await readCertDir(dir);
  assert.ok(s);
  const defaults = getCACertificates('default');
  assert.equal(s.ca?.length, defaults.length + 2);
  assert.deepEqual(s.ca?.slice(0, defaults.length), defaults);
  assert.match(s.ca?.[defaults.length] ?? '', /BEGIN CERTIFICATE/);
  assert.ok(s.cert?.toString().includes('BEGIN CERTIFICATE'));
  assert.ok(s.key?.toString().includes('PRIVATE KEY'));
  assert.equal(await readCertDir(join(work, 'missing')), undefined);
  await assert.rejects(readCertDir(join(work, 'missing'), true), {
    code: 'E_BAD_ARGUMENT',
    message: /certificate directory .*missing does not exist/,
  });
});

test('readCertDir: a .cert without its .key, or a .key without its .cert, is an error naming the file', async () => {
  const noKey = await certDir('nokey', { 'ca.crt': reg.certPath!, 'client.cert': client.certPath });
  await assert.rejects(readCertDir(noKey), {
    code: 'E_BAD_ARGUMENT',
    message: new RegExp(`${join(noKey, 'client.cert')} has no key client.key`),
  });
  const noCert = await certDir('nocert', { 'mine.key': client.keyPath });
  await assert.rejects(readCertDir(noCert), {
    code: 'E_BAD_ARGUMENT',
    message: new RegExp(`${join(noCert, 'mine.key')} has no client certificate mine.cert`),
  });
  const r = await runCli(['digest', '--cert-dir', noKey, `${reg.host}/certs/app:1`], { env });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /client\.cert has no key client\.key/);
});

test('--cert-dir with the CA: verified HTTPS works; without it a clear certificate error', async () => {
  const dir = await certDir('server-ca', { 'registry.crt': reg.certPath! });
  const ok = await runCli(['digest', '--cert-dir', dir, `${reg.host}/certs/app:1`], { env });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout.toString().trim(), digest);
  const refused = await runCli(['digest', '--retry-times', '0', `${reg.host}/certs/app:1`], { env });
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /certificate is not trusted.*--cert-dir/);
  const missing = await runCli(['digest', '--cert-dir', join(work, 'nope'), `${reg.host}/certs/app:1`], {
    env,
  });
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /certificate directory .*nope does not exist/);
});

test('without --cert-dir, $HOME/.config/containers/certs.d/HOST:PORT is used', async () => {
  const home = join(work, 'home');
  await certDir(join('home', '.config', 'containers', 'certs.d', reg.host), { 'ca.crt': reg.certPath! });
  const ok = await runCli(['digest', `${reg.host}/certs/app:1`], { env: { ...env, HOME: home } });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout.toString().trim(), digest);
  // The library reads only the roots it is given.
  const c = new RegistryClient({
    registry: reg.host,
    perHostCertDirs: [join(work, 'empty-root'), join(home, '.config', 'containers', 'certs.d')],
    retry: { times: 0 },
  });
  try {
    assert.equal((await c.headManifest(parseReference(`${reg.host}/certs/app:1`)))?.digest, digest);
  } finally {
    await c.close();
  }
});

test('client certificates: the registry requiring one is reached with client.cert/client.key, refused clearly without', async () => {
  const expected = (
    await run('skopeo', [
      'inspect',
      '--format',
      '{{.Digest}}',
      '--cert-dir',
      join(work, 'skopeo'),
      `docker://${mtls.host}/certs/app:1`,
    ])
  ).stdout
    .toString()
    .trim();
  assert.equal(expected, digest);
  const withCert = await certDir('mtls', {
    'server.crt': mtls.certPath!,
    'client.cert': client.certPath,
    'client.key': client.keyPath,
  });
  const ok = await runCli(['digest', '--cert-dir', withCert, `${mtls.host}/certs/app:1`], { env });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout.toString().trim(), expected);
  const caOnly = await certDir('mtls-ca-only', { 'server.crt': mtls.certPath! });
  const refused = await runCli(
    ['digest', '--retry-times', '0', '--cert-dir', caOnly, `${mtls.host}/certs/app:1`],
    { env },
  );
  assert.notEqual(refused.code, 0);
  assert.match(
    refused.stderr,
    /registry 127\.0\.0\.1:\d+ refused the TLS connection \(\S+ALERT\S+\): it requires a client certificate and none was found/,
  );
  // A certificate the registry's CA did not sign is refused too (here: the server's own).
  const wrong = await certDir('mtls-wrong', {
    'server.crt': mtls.certPath!,
    'client.cert': reg.certPath!,
    'client.key': join(reg.certPath!, '..', 'tls.key'),
  });
  const wrongRes = await runCli(
    ['digest', '--retry-times', '0', '--cert-dir', wrong, `${mtls.host}/certs/app:1`],
    { env },
  );
  assert.notEqual(wrongRes.code, 0);
  assert.match(
    wrongRes.stderr,
    /refused the TLS connection .*did not accept the client certificate from .*mtls-wrong/,
  );
});

test('copy --src-cert-dir/--dest-cert-dir: each registry gets its own certificates', async () => {
  const src = await certDir('copy-src', {
    'server.crt': mtls.certPath!,
    'client.cert': client.certPath,
    'client.key': client.keyPath,
  });
  const dst = await certDir('copy-dst', { 'server.crt': reg.certPath! });
  const r = await runCli(
    [
      '-q',
      'copy',
      '--src-cert-dir',
      src,
      '--dest-cert-dir',
      dst,
      `docker://${mtls.host}/certs/app:1`,
      `docker://${reg.host}/copied/app:1`,
    ],
    { env },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.toString().trim(), digest);
  const check = await runCli(['digest', '--cert-dir', dst, `${reg.host}/copied/app:1`], { env });
  assert.equal(check.stdout.toString().trim(), digest);
  // With only the destination's directory for both, the source's certificate is not trusted.
  const bad = await runCli(
    [
      '-q',
      'copy',
      '--retry-times',
      '0',
      '--cert-dir',
      dst,
      `docker://${mtls.host}/certs/app:1`,
      `docker://${reg.host}/copied/app:2`,
    ],
    { env },
  );
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /certificate is not trusted/);
});
