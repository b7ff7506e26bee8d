import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { requireBin, run } from '../helpers/bins.ts';
import {
  type BlobOrigin,
  type FaultProxy,
  startBlobOrigin,
  startFaultProxy,
} from '../helpers/fault-proxy.ts';
import {
  type BuiltLayout,
  bigImage,
  buildLayout,
  IMAGE_CACHE_DIR,
  MEDIA_TYPES,
  multiArchImage,
  pushLayout,
  pushLayoutRaw,
  registryFetch,
  sameLayerTwiceImage,
  smallImage,
  whiteoutImage,
  zstdImage,
} from '../helpers/images.ts';
import {
  sharedRegistry,
  startRegistry,
  stopSharedRegistries,
  type TestRegistry,
} from '../helpers/registry.ts';

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const HOME = { ...process.env, HOME: tmpdir() };

/** `skopeo inspect --raw`: the registry's manifest bytes, or the failure. */
function inspectRaw(ref: string, creds?: string) {
  const args = ['inspect', '--raw', '--tls-verify=false', '--retry-times', '0'];
  if (creds) args.push('--creds', creds);
  else args.push('--no-creds');
  return run('skopeo', [...args, `docker://${ref}`], { env: HOME, allowFail: true });
}

/** A GET with node:http that reports how many body bytes arrived and how it ended. */
function rawGet(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      const done = () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks),
          complete: res.complete,
        });
      res.on('end', done);
      res.on('error', done);
      res.on('aborted', done);
    });
    req.on('error', reject);
    req.end();
  });
}

let small: BuiltLayout;
let multi: BuiltLayout;
let anon: TestRegistry;

before(async () => {
  requireBin('skopeo');
  [small, multi] = await Promise.all([
    buildLayout(smallImage('harness'), 'v1'),
    buildLayout(multiArchImage(), 'm'),
  ]);
  anon = await sharedRegistry('none');
});
after(stopSharedRegistries);

describe('registry', () => {
  test('starts in well under a second and answers /v2/; several run at once', async () => {
    const t0 = performance.now();
    const [a, b] = await Promise.all([startRegistry({ auth: 'none' }), startRegistry({ auth: 'none' })]);
    const ms = performance.now() - t0;
    try {
      assert.ok(ms < 3000, `two registries took ${ms} ms`);
      assert.notEqual(a.host, b.host);
      assert.match(a.host, /^127\.0\.0\.1:\d+$/);
      assert.equal((await fetch(`${a.url}/v2/`)).status, 200);
      assert.equal((await fetch(`${b.url}/v2/`)).status, 200);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
    assert.equal(existsSync(a.storageDir), false, 'storage removed by stop()');
    await assert.rejects(fetch(`${a.url}/v2/`));
  });

  test('sharedRegistry is one instance per mode', async () => {
    assert.equal(await sharedRegistry('none'), anon);
  });

  test('OCI image: skopeo reads back the exact manifest bytes', async () => {
    await pushLayout(small, anon, 'h/small:oci');
    const r = await inspectRaw(`${anon.host}/h/small:oci`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha(r.stdout), small.digest);
    assert.ok(r.stdout.equals(small.images[0]!.manifest));
  });

  test('Docker schema2 image via --format v2s2', async () => {
    await pushLayout(small, anon, 'h/small:v2s2', { format: 'v2s2' });
    const r = await inspectRaw(`${anon.host}/h/small:v2s2`);
    assert.equal(r.code, 0, r.stderr);
    const m = JSON.parse(r.stdout.toString()) as { mediaType: string; layers: { mediaType: string }[] };
    assert.equal(m.mediaType, MEDIA_TYPES.dockerManifest);
    assert.ok(m.layers.every((l) => l.mediaType === 'application/vnd.docker.image.rootfs.diff.tar.gzip'));
  });

  test('OCI index and Docker manifest list (skopeo --all [--format v2s2])', async () => {
    await pushLayout(multi, anon, 'h/multi:oci');
    await pushLayout(multi, anon, 'h/multi:list', { format: 'v2s2', all: true });
    const oci = await inspectRaw(`${anon.host}/h/multi:oci`);
    assert.equal(oci.code, 0, oci.stderr);
    assert.equal(sha(oci.stdout), multi.digest);
    const list = await inspectRaw(`${anon.host}/h/multi:list`);
    const parsed = JSON.parse(list.stdout.toString()) as {
      mediaType: string;
      manifests: { mediaType: string; platform: { architecture: string; variant?: string } }[];
    };
    assert.equal(parsed.mediaType, MEDIA_TYPES.dockerList);
    assert.deepEqual(
      parsed.manifests.map((m) => [m.mediaType, m.platform.architecture, m.platform.variant]),
      [
        [MEDIA_TYPES.dockerManifest, 'amd64', undefined],
        [MEDIA_TYPES.dockerManifest, 'arm64', 'v8'],
        [MEDIA_TYPES.dockerManifest, 'arm', 'v7'],
      ],
    );
    // Each instance is there by digest.
    const arm = await inspectRaw(`${anon.host}/h/multi@${multi.images[2]!.manifestDigest}`);
    assert.equal(sha(arm.stdout), multi.images[2]!.manifestDigest);
  });

  test('plain-HTTP push keeps the bytes (monolithic upload, manifest PUT)', async () => {
    const digest = await pushLayoutRaw(multi, anon, 'h/raw', 'x');
    assert.equal(digest, multi.digest);
    const r = await inspectRaw(`${anon.host}/h/raw:x`);
    assert.equal(sha(r.stdout), multi.digest);
    const blob = await fetch(`${anon.url}/v2/h/raw/blobs/${multi.images[1]!.layers[0]!.digest}`);
    assert.equal(sha(Buffer.from(await blob.arrayBuffer())), multi.images[1]!.layers[0]!.digest);
  });
});

describe('basic auth', () => {
  let basic: TestRegistry;
  before(async () => {
    basic = await sharedRegistry('basic');
    await pushLayout(small, basic, 'private/small:1');
  });

  test('skopeo with credentials reads; without, or with a wrong password, it is refused', async () => {
    const [u, p] = Object.entries(basic.users)[0]!;
    const ok = await inspectRaw(`${basic.host}/private/small:1`, `${u}:${p}`);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(sha(ok.stdout), small.digest);
    const none = await inspectRaw(`${basic.host}/private/small:1`);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /unauthorized|authentication required/i);
    const wrong = await inspectRaw(`${basic.host}/private/small:1`, `${u}:nope`);
    assert.notEqual(wrong.code, 0);
    const res = await fetch(`${basic.url}/v2/`);
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Basic realm="lading-basic"/);
  });
});

describe('token auth', () => {
  let token: TestRegistry;
  before(async () => {
    token = await sharedRegistry('token');
    await pushLayout(small, token, 'private/small:1');
    await pushLayout(small, token, 'public/small:1');
  });

  test('the challenge names the realm, service and scope', async () => {
    const res = await fetch(`${token.url}/v2/private/small/manifests/1`);
    assert.equal(res.status, 401);
    const ch = res.headers.get('www-authenticate') ?? '';
    assert.ok(ch.includes(`realm="${token.tokenServer!.realm}"`), ch);
    assert.ok(ch.includes('service="lading-test"'), ch);
    assert.ok(ch.includes('scope="repository:private/small:pull"'), ch);
  });

  test('a user pulls private repositories; anonymous pulls public/… only', async () => {
    const [u, p] = Object.entries(token.users)[0]!;
    const before = token.tokenServer!.log.length;
    const priv = await inspectRaw(`${token.host}/private/small:1`, `${u}:${p}`);
    assert.equal(priv.code, 0, priv.stderr);
    assert.equal(sha(priv.stdout), small.digest);
    const pub = await inspectRaw(`${token.host}/public/small:1`);
    assert.equal(pub.code, 0, pub.stderr);
    assert.equal(sha(pub.stdout), small.digest);
    const denied = await inspectRaw(`${token.host}/private/small:1`);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /unauthorized|authentication required|denied/i);
    const log = token.tokenServer!.log.slice(before);
    assert.ok(log.some((e) => e.user === u && e.authorization && e.status === 200));
    assert.ok(log.some((e) => e.user === undefined && !e.authorization && e.access?.length === 0));
    // The log never holds a secret.
    assert.ok(!JSON.stringify(token.tokenServer!.log).includes(p));
  });

  test('plain-HTTP push and registryFetch get a bearer token from the challenge', async () => {
    assert.equal(await pushLayoutRaw(small, token, 'private/raw', 'r'), small.digest);
    const res = await registryFetch(token, 'private/raw', '/v2/private/raw/manifests/r', {
      headers: { accept: MEDIA_TYPES.ociManifest },
    });
    assert.equal(res.status, 200);
    assert.equal(sha(Buffer.from(await res.arrayBuffer())), small.digest);
    const anonymous = await registryFetch(token, 'private/raw', '/v2/private/raw/manifests/r', {
      creds: false,
    });
    assert.equal(anonymous.status, 401);
  });

  test('tokens: RS256 with x5c, claims, several scopes, catalog', async () => {
    const [u, p] = Object.entries(token.users)[0]!;
    const url = new URL(token.tokenServer!.realm);
    url.searchParams.set('service', 'lading-test');
    url.searchParams.append('scope', 'repository:private/a:pull,push repository:public/b:pull');
    url.searchParams.append('scope', 'registry:catalog:*');
    const authz = `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
    const res = await fetch(url, { headers: { authorization: authz } });
    assert.equal(res.status, 200);
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(body.token, body.access_token);
    assert.equal(body.expires_in, 300);
    assert.equal(typeof body.issued_at, 'string');
    const { header, claims } = token.tokenServer!.decode(body.token as string);
    assert.equal(header.alg, 'RS256');
    assert.ok(Array.isArray(header.x5c));
    assert.equal(claims.iss, 'lading-issuer');
    assert.equal(claims.aud, 'lading-test');
    assert.equal(claims.sub, u);
    for (const k of ['exp', 'nbf', 'iat']) assert.equal(typeof claims[k], 'number');
    assert.equal(typeof claims.jti, 'string');
    assert.deepEqual(claims.access, [
      { type: 'repository', name: 'private/a', actions: ['pull', 'push'] },
      { type: 'repository', name: 'public/b', actions: ['pull'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
    // The registry accepts it.
    const cat = await fetch(`${token.url}/v2/_catalog`, {
      headers: { authorization: `Bearer ${body.token}` },
    });
    assert.equal(cat.status, 200);
    assert.ok(((await cat.json()) as { repositories: string[] }).repositories.includes('private/small'));
    // Missing service is refused by default.
    const noService = await fetch(`${token.tokenServer!.realm}?scope=repository:public/b:pull`);
    assert.equal(noService.status, 400);
  });

  test('OAuth2 POST: password grant gives a refresh token, refresh grant works, bad ones are 401', async () => {
    const [u, p] = Object.entries(token.users)[0]!;
    const post = (f: Record<string, string>) =>
      fetch(token.tokenServer!.realm, { method: 'POST', body: new URLSearchParams(f) });
    const r1 = await post({
      grant_type: 'password',
      username: u,
      password: p,
      service: 'lading-test',
      scope: 'repository:private/small:pull',
      client_id: 'lading',
    });
    assert.equal(r1.status, 200);
    const b1 = (await r1.json()) as { refresh_token: string; access_token: string };
    assert.equal(typeof b1.refresh_token, 'string');
    const r2 = await post({
      grant_type: 'refresh_token',
      refresh_token: b1.refresh_token,
      service: 'lading-test',
      scope: 'repository:private/small:pull',
    });
    assert.equal(r2.status, 200);
    const b2 = (await r2.json()) as { access_token: string };
    const m = await fetch(`${token.url}/v2/private/small/manifests/1`, {
      headers: { authorization: `Bearer ${b2.access_token}`, accept: MEDIA_TYPES.ociManifest },
    });
    assert.equal(m.status, 200);
    assert.equal(sha(Buffer.from(await m.arrayBuffer())), small.digest);
    assert.equal(
      (await post({ grant_type: 'password', username: u, password: 'x', service: 'lading-test' })).status,
      401,
    );
    assert.equal(
      (await post({ grant_type: 'refresh_token', refresh_token: 'x', service: 'lading-test' })).status,
      401,
    );
    const secrets = JSON.stringify(token.tokenServer!.log);
    assert.ok(!secrets.includes(p) && !secrets.includes(b1.refresh_token));
  });

  test('policy, kid-only headers, short expiry and a lax service check', async () => {
    const reg = await startRegistry({
      auth: 'token',
      tokenAccess: { users: { bob: [{ repository: 'team/*', actions: ['pull'] }] } },
      token: { keyId: 'kid', expiresIn: 5, ignoreService: true },
    });
    try {
      await pushLayout(small, reg, 'team/app:1', { creds: `alice:${reg.users.alice}` });
      const bob = `bob:${reg.users.bob}`;
      const pulled = await inspectRaw(`${reg.host}/team/app:1`, bob);
      assert.equal(pulled.code, 0, pulled.stderr);
      await assert.rejects(
        pushLayout(small, reg, 'team/app:2', { creds: bob }),
        /denied|unauthorized|authentication/i,
      );
      const t = await fetch(`${reg.tokenServer!.realm}?scope=repository:team/app:pull`);
      assert.equal(t.status, 200, 'no service is fine with ignoreService');
      const body = (await t.json()) as { token: string; expires_in: number };
      assert.equal(body.expires_in, 5);
      const { header, claims } = reg.tokenServer!.decode(body.token);
      assert.equal(header.x5c, undefined);
      assert.match(String(header.kid), /^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
      assert.equal((claims.exp as number) - (claims.iat as number), 5);
      assert.deepEqual(claims.access, []);
    } finally {
      await reg.stop();
    }
  });
});

describe('fault proxy', () => {
  let proxy: FaultProxy;
  let big: BuiltLayout;
  const layer = () => big.images[0]!.layers[0]!;
  const blobUrl = () => `${proxy.url}/v2/h/big/blobs/${layer().digest}`;
  before(async () => {
    big = await buildLayout(bigImage(8), 'b');
    await pushLayout(big, anon, 'h/big:1');
    proxy = await startFaultProxy(anon.url);
  });
  after(() => proxy.stop());

  test('forwards faithfully: skopeo pushes and reads through it; Location is rewritten; HEAD and Range pass', async () => {
    proxy.clear();
    await pushLayout(small, { host: proxy.host }, 'h/via-proxy:1');
    assert.ok(proxy.log.some((e) => e.method === 'PUT' && /\/blobs\/uploads\//.test(e.path)));
    const r = await inspectRaw(`${proxy.host}/h/via-proxy:1`);
    assert.equal(sha(r.stdout), small.digest);
    const post = await fetch(`${proxy.url}/v2/h/loc/blobs/uploads/`, { method: 'POST' });
    assert.equal(post.status, 202);
    assert.ok(new URL(post.headers.get('location')!, proxy.url).origin === proxy.url);
    proxy.clear();
    const head = await fetch(blobUrl(), { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers.get('content-length')), layer().size);
    const part = await rawGet(blobUrl(), { range: 'bytes=10-19' });
    assert.equal(part.status, 206);
    assert.equal(part.body.length, 10);
    assert.deepEqual(
      proxy.log.map((e) => [e.method, e.range, e.status]),
      [
        ['HEAD', undefined, 200],
        ['GET', 'bytes=10-19', 206],
      ],
    );
  });

  test('dropAfterBytes: the client gets a short body and a cut connection, once', async () => {
    proxy.clear();
    proxy.addRule({ method: 'GET', path: /\/blobs\/sha256:/, dropAfterBytes: 100_000 });
    const cut = await rawGet(blobUrl());
    assert.equal(cut.status, 200);
    assert.equal(Number(cut.headers['content-length']), layer().size);
    assert.equal(cut.body.length, 100_000);
    assert.equal(cut.complete, false);
    // undici's fetch sees the cut too.
    proxy.addRule({ method: 'GET', path: /\/blobs\/sha256:/, dropAfterBytes: 100_000 });
    await assert.rejects(async () => (await fetch(blobUrl())).arrayBuffer(), TypeError);
    proxy.clear();
    const full = await rawGet(blobUrl());
    assert.equal(sha(full.body), layer().digest);
  });

  test('tamperAt flips exactly one byte and keeps the length', async () => {
    proxy.clear();
    proxy.addRule({ method: 'GET', path: /\/blobs\//, tamperAt: 70_000 });
    const bad = await rawGet(blobUrl());
    const good = await rawGet(blobUrl());
    assert.equal(bad.body.length, good.body.length);
    const diffs = [...bad.body.keys()].filter((i) => bad.body[i] !== good.body[i]);
    assert.deepEqual(diffs, [70_000]);
    assert.deepEqual(
      proxy.log.map((e) => e.fault),
      ['tamper', undefined],
    );
  });

  test('status rules: 429 with Retry-After, then 503 twice, then the real answer', async () => {
    proxy.clear();
    proxy.addRule({ path: /\/manifests\//, status: 429, retryAfter: '2' });
    proxy.addRule({ path: /\/manifests\//, status: 503, times: 2 });
    const accept = { accept: MEDIA_TYPES.ociManifest };
    const r1 = await fetch(`${proxy.url}/v2/h/small/manifests/oci`, { headers: accept });
    assert.equal(r1.status, 429);
    assert.equal(r1.headers.get('retry-after'), '2');
    assert.equal((await fetch(`${proxy.url}/v2/h/small/manifests/oci`, { headers: accept })).status, 503);
    assert.equal((await fetch(`${proxy.url}/v2/h/small/manifests/oci`, { headers: accept })).status, 503);
    const ok = await fetch(`${proxy.url}/v2/h/small/manifests/oci`, { headers: accept });
    assert.equal(ok.status, 200);
    assert.equal(sha(Buffer.from(await ok.arrayBuffer())), small.digest);
    assert.deepEqual(
      proxy.log.map((e) => e.status),
      [429, 503, 503, 200],
    );
  });

  test('delayMs holds a request back', async () => {
    proxy.clear();
    proxy.addRule({ method: 'GET', path: /\/v2\/$/, delayMs: 300 });
    const t0 = performance.now();
    assert.equal((await fetch(`${proxy.url}/v2/`)).status, 200);
    assert.ok(performance.now() - t0 >= 290);
  });
});

describe('blob origin (S3/CDN stand-in)', () => {
  let proxy: FaultProxy;
  let origin: BlobOrigin;
  before(async () => {
    await pushLayout(small, anon, 'h/redirect:1');
    proxy = await startFaultProxy(anon.url);
    origin = await startBlobOrigin(anon.storageDir);
  });
  after(async () => {
    await proxy.stop();
    await origin.stop();
  });

  test('a redirected blob is served; undici fetch sends no Authorization across origins', async () => {
    const layer = small.images[0]!.layers[1]!;
    proxy.addRule({ method: 'GET', path: /\/blobs\//, redirectTo: origin.url });
    const res = await fetch(`${proxy.url}/v2/h/redirect/blobs/${layer.digest}`, {
      headers: { authorization: 'Bearer not-for-s3' },
    });
    assert.equal(res.status, 200);
    assert.equal(sha(Buffer.from(await res.arrayBuffer())), layer.digest);
    assert.equal(proxy.log.at(-1)!.status, 307);
    assert.equal(proxy.log.at(-1)!.authorization, true);
    assert.equal(origin.requests.length, 1);
    assert.equal(origin.requests[0]!.headers.authorization, undefined);
    assert.equal(origin.requests[0]!.query['X-Amz-Signature'], 's3cr3t-signature');
  });

  test('the origin requires the signature, refuses Authorization, and serves ranges', async () => {
    const layer = small.images[0]!.layers[0]!;
    const path = `${origin.url}/v2/h/redirect/blobs/${layer.digest}`;
    assert.equal((await fetch(path)).status, 403);
    const signed = `${path}?X-Amz-Signature=x`;
    assert.equal((await fetch(signed, { headers: { authorization: 'Bearer t' } })).status, 400);
    const part = await fetch(signed, { headers: { range: 'bytes=5-' } });
    assert.equal(part.status, 206);
    const data = await readFile(
      join(
        anon.storageDir,
        'docker/registry/v2/blobs/sha256',
        layer.digest.slice(7, 9),
        layer.digest.slice(7),
        'data',
      ),
    );
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(data.subarray(5)));
    assert.equal(part.headers.get('content-range'), `bytes 5-${data.length - 1}/${data.length}`);
  });
});

describe('image factory', () => {
  test('layers unpack as specified (umoci): whiteouts, opaque dirs, hard links, owners', async () => {
    requireBin('umoci');
    const lay = await buildLayout(whiteoutImage(), 'w');
    const bundle = join(await mkdtemp(join(tmpdir(), 'lading-harness-')), 'b');
    try {
      await run('umoci', ['unpack', '--image', `${lay.dir}:w`, bundle]);
      const root = join(bundle, 'rootfs');
      assert.equal(existsSync(join(root, 'etc/gone.conf')), false);
      assert.equal(existsSync(join(root, 'var/cache/old-1')), false);
      assert.equal(await readFile(join(root, 'var/cache/new'), 'utf8'), 'new\n');
      const [a, b] = await Promise.all([
        stat(join(root, 'etc/kept.conf')),
        stat(join(root, 'etc/kept-link')),
      ]);
      assert.equal(a.ino, b.ino);
      assert.equal(a.uid, 1000);
      assert.equal(a.mode & 0o777, 0o600);
      assert.equal(await readFile(join(root, 'etc/motd'), 'utf8'), 'new\n');
    } finally {
      await rm(join(bundle, '..'), { recursive: true, force: true });
    }
  });

  test('diff_ids, zstd layers and a layer listed twice', async () => {
    const z = await buildLayout(zstdImage(), 'z');
    const m = JSON.parse(z.images[0]!.manifest.toString()) as { layers: { mediaType: string }[] };
    assert.ok(m.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar+zstd'));
    const cfg = JSON.parse(z.images[0]!.config.toString()) as { rootfs: { diff_ids: string[] } };
    assert.deepEqual(
      cfg.rootfs.diff_ids,
      z.images[0]!.layers.map((l) => sha(l.uncompressed)),
    );
    const twice = await buildLayout(sameLayerTwiceImage(), 't');
    const ls = twice.images[0]!.layers;
    assert.equal(ls[0]!.digest, ls[2]!.digest);
    assert.notEqual(ls[0]!.digest, ls[1]!.digest);
    await pushLayout(twice, anon, 'h/twice:1');
    assert.equal(sha((await inspectRaw(`${anon.host}/h/twice:1`)).stdout), twice.digest);
  });

  test('bigImage layouts are cached on disk and read back lazily', async () => {
    const t0 = performance.now();
    const a = await buildLayout(bigImage(8), 'b');
    const ms = performance.now() - t0;
    assert.ok(a.dir.startsWith(IMAGE_CACHE_DIR));
    assert.ok(ms < 500, `cached layout took ${ms} ms`);
    const l = a.images[0]!.layers[1]!;
    assert.equal(sha(l.uncompressed), l.diffId);
    assert.equal(sha(gunzipSync(await readFile(join(a.dir, 'blobs/sha256', l.digest.slice(7))))), l.diffId);
    const index = JSON.parse(await readFile(join(a.dir, 'index.json'), 'utf8')) as {
      manifests: { digest: string }[];
    };
    assert.equal(index.manifests[0]!.digest, a.digest);
  });
});

describe('clean-up', () => {
  test('a killed test process takes its registry and temp dirs with it', async () => {
    const script = `
      import { startRegistry } from ${JSON.stringify(join(import.meta.dirname, '../helpers/registry.ts'))};
      const r = await startRegistry({ auth: 'none' });
      console.log(JSON.stringify({ pid: r.pid, dir: r.storageDir }));
      setInterval(() => {}, 1000);
    `;
    for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const line = await new Promise<string>((resolve) =>
        child.stdout.once('data', (c: Buffer) => resolve(c.toString())),
      );
      const { pid, dir } = JSON.parse(line) as { pid: number; dir: string };
      assert.doesNotThrow(() => process.kill(pid, 0));
      const exited = new Promise((r) => child.once('exit', r));
      child.kill(signal);
      await exited;
      const deadline = Date.now() + 3000;
      let alive = true;
      while (alive && Date.now() < deadline) {
        // Gone, or a zombie waiting for init to reap it.
        const st = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
        alive = st !== '' && !/^\d+ \(.*\) Z/.test(st);
        if (alive) await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(alive, false, `registry ${pid} outlived a ${signal}ed test process`);
      // SIGKILL runs no handler: only the signal cases that can clean up are checked for the directory.
      if (signal === 'SIGTERM') assert.equal(existsSync(dir), false);
      else await rm(join(dir, '..'), { recursive: true, force: true });
    }
  });
});

test('requireBin names the Debian package', () => {
  assert.throws(
    () => requireBin('docker-registry-nope', 'docker-registry'),
    /install Debian package docker-registry/,
  );
  assert.match(requireBin('docker-registry'), /^\//);
});

describe('nix-build builders (Nix 2.8)', () => {
  test('a builder that closes its stdout and stderr before it exits is killed; one ending in `; exit $?` is not', async () => {
    const { nixEnv } = await import('../helpers/nix.ts');
    const dir = await mkdtemp(join(tmpdir(), 'lading-nix-kill-'));
    const expr = join(dir, 'k.nix');
    // The sleep widens the window between the close and the exit that cp, chmod, ... leave when
    // bash runs them in place as the last command: Nix reads EOF on the log and SIGKILLs the group.
    await writeFile(
      expr,
      `{ nonce, script }: derivation {
  name = "lading-harness-\${nonce}";
  system = builtins.currentSystem;
  builder = "/bin/bash";
  args = [ "-c" script ];
}
`,
    );
    const nonce = `${process.pid}-${Date.now()}`;
    const build = (name: string, script: string) =>
      run(
        'nix-build',
        ['--no-out-link', expr, '--argstr', 'nonce', `${nonce}-${name}`, '--argstr', 'script', script],
        {
          env: nixEnv(),
          allowFail: true,
        },
      );
    const closes = await build('closes', 'echo x > $out; exec 1>&- 2>&-; /bin/sleep 0.3; exit 0');
    assert.notEqual(closes.code, 0);
    assert.match(closes.stderr, /signal 9/);
    // The same program run by a shell that exits after it: the shell still holds the pipe.
    const keeps = await build(
      'keeps',
      'echo x > $out && /bin/bash -c "exec 1>&- 2>&-; /bin/sleep 0.3"; exit $?',
    );
    assert.equal(keeps.code, 0, keeps.stderr);
    await rm(dir, { recursive: true, force: true });
  });
});
