import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Digest } from '../../src/digest/index.ts';
import { isLadingError } from '../../src/errors/index.ts';
import { RegistryClient, readBlob, sendBlobRequestEarly } from '../../src/registry/index.ts';
import { run } from '../helpers/bins.ts';
import {
  type BlobOrigin,
  type FaultProxy,
  startBlobOrigin,
  startFaultProxy,
} from '../helpers/fault-proxy.ts';
import { type BuiltLayout, buildLayout, pushLayout } from '../helpers/images.ts';
import {
  sharedRegistry,
  startRegistry,
  stopSharedRegistries,
  type TestRegistry,
} from '../helpers/registry.ts';

// The raw-socket blob reader (src/registry/blob-reader.ts) against the real registry, the fault
// proxy (drops, ignored ranges, tampering, redirects to the blob origin), HTTPS, and the two
// body framings a registry does not send itself (chunked, ended by the connection).

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
let anon: TestRegistry;
let token: TestRegistry;
let tlsReg: TestRegistry;
let anonProxy: FaultProxy;
let tokenProxy: FaultProxy;
let origin: BlobOrigin;
let image: BuiltLayout;
let bytes: Buffer;
const blob = () => image.images[0]!.layers[0]!;
const FAST = { times: 3, delayMs: 5, maxDelayMs: 50 };
const clients: RegistryClient[] = [];

function client(host: string, extra: Partial<ConstructorParameters<typeof RegistryClient>[0]> = {}) {
  const c = new RegistryClient({ registry: host, retry: FAST, ...extra });
  clients.push(c);
  return c;
}

/** Reads the blob through the reader, collecting copies of what the consumer saw. */
async function read(c: RegistryClient, repo: string, digest = blob().digest as Digest, size = blob().size) {
  const parts: Buffer[] = [];
  let seen = 0;
  let error: unknown;
  try {
    await readBlob(c, repo, digest, {
      size,
      onData: (piece) => {
        seen += piece.length;
        parts.push(Buffer.from(piece));
        return undefined;
      },
    });
  } catch (err) {
    error = err;
  }
  return { data: Buffer.concat(parts), seen, error };
}

before(async () => {
  [anon, token] = await Promise.all([sharedRegistry('none'), sharedRegistry('token')]);
  tlsReg = await startRegistry({ auth: 'none', tls: true });
  image = await buildLayout({
    layers: [{ entries: [{ path: 'blob.bin', content: randomBytes(3 << 20) }], compression: 'none' }],
  });
  bytes = await readFile(join(image.dir, 'blobs', 'sha256', blob().digest.slice(7)));
  await Promise.all([
    pushLayout(image, anon, 'reader:1'),
    pushLayout(image, token, 'private/reader:1'),
    pushLayout(image, tlsReg, 'reader:1'),
  ]);
  anonProxy = await startFaultProxy(anon.url);
  tokenProxy = await startFaultProxy(token.url);
  origin = await startBlobOrigin(token.storageDir);
});
after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await anonProxy.stop();
  await tokenProxy.stop();
  await origin.stop();
  await tlsReg.stop();
  await stopSharedRegistries();
});

describe('raw blob reader', () => {
  test('the real registry: every byte once, in order, twice', async () => {
    const c = client(anonProxy.host);
    anonProxy.clear();
    const r = await read(c, 'reader');
    assert.equal(r.error, undefined);
    assert.ok(r.data.equals(bytes));
    const again = await read(c, 'reader');
    assert.ok(again.data.equals(bytes));
  });

  test('a dropped connection resumes with Range from the byte it stopped at', async () => {
    const c = client(anonProxy.host);
    anonProxy.clear();
    anonProxy.addRule({ method: 'GET', path: /\/blobs\//, dropAfterBytes: 1_000_000 });
    const r = await read(c, 'reader');
    assert.equal(r.error, undefined);
    assert.ok(r.data.equals(bytes));
    const gets = anonProxy.log.filter((e) => e.method === 'GET' && /\/blobs\//.test(e.path));
    assert.equal(gets.length, 2);
    assert.equal(gets[0]!.fault, 'drop');
    const from = Number(/^bytes=(\d+)-$/.exec(gets[1]!.range ?? '')?.[1]);
    assert.ok(from > 0 && from <= 1_000_000, `resumed from ${gets[1]!.range}`);
    assert.equal(gets[1]!.status, 206);
  });

  test('a server that ignores the Range has the bytes already consumed skipped', async () => {
    const c = client(anonProxy.host);
    anonProxy.clear();
    anonProxy.addRule({ method: 'GET', path: /\/blobs\//, dropAfterBytes: 700_000 });
    anonProxy.addRule({
      method: 'GET',
      path: /\/blobs\//,
      ignoreRange: true,
      when: (q) => !!q.headers.range,
    });
    const r = await read(c, 'reader');
    assert.equal(r.error, undefined);
    assert.equal(r.seen, bytes.length);
    assert.ok(r.data.equals(bytes));
    const gets = anonProxy.log.filter((e) => e.method === 'GET' && /\/blobs\//.test(e.path));
    assert.equal(gets.at(-1)!.status, 200);
  });

  test('a tampered body fails with E_DIGEST_MISMATCH after the last byte', async () => {
    const c = client(anonProxy.host);
    anonProxy.clear();
    anonProxy.addRule({ method: 'GET', path: /\/blobs\//, tamperAt: 12345 });
    const r = await read(c, 'reader');
    assert.ok(isLadingError(r.error), String(r.error));
    assert.equal(r.error.code, 'E_DIGEST_MISMATCH');
    assert.ok(r.error.message.includes(blob().digest));
    assert.ok(r.error.message.includes(sha(Buffer.from(r.data))));
  });

  test('a wrong size: the Content-Length is refused before any byte', async () => {
    const c = client(anon.host);
    const r = await read(c, 'reader', blob().digest as Digest, blob().size - 1);
    assert.ok(isLadingError(r.error));
    assert.equal(r.error.code, 'E_SIZE_MISMATCH');
    assert.equal(r.seen, 0);
  });

  test('a 404 is the registry error, not retried', async () => {
    const c = client(anonProxy.host);
    anonProxy.clear();
    const missing = `sha256:${'0'.repeat(64)}` as Digest;
    const r = await read(c, 'reader', missing, 10);
    assert.ok(isLadingError(r.error));
    assert.equal(r.error.code, 'E_NOT_FOUND');
    assert.equal(anonProxy.log.filter((e) => e.path.includes('/blobs/')).length, 1);
  });

  test('503 then success: retried', async () => {
    const c = client(anonProxy.host);
    anonProxy.clear();
    anonProxy.addRule({ method: 'GET', path: /\/blobs\//, status: 503, times: 2 });
    const r = await read(c, 'reader');
    assert.equal(r.error, undefined);
    assert.ok(r.data.equals(bytes));
  });

  test('token auth; a redirect to the blob origin gets no credentials, the registry does', async () => {
    const c = client(tokenProxy.host, {
      credentials: async () => ({ kind: 'basic', username: 'alice', password: 'wonderland-Secret-1' }),
    });
    tokenProxy.clear();
    origin.requests.length = 0;
    tokenProxy.addRule({ method: 'GET', path: /\/blobs\//, redirectTo: origin.url, times: 5 });
    const r = await read(c, 'private/reader');
    assert.equal(r.error, undefined, String(r.error));
    assert.ok(r.data.equals(bytes));
    assert.ok(origin.requests.length >= 1);
    for (const q of origin.requests) {
      assert.equal(q.headers.authorization, undefined);
      assert.equal(q.headers.cookie, undefined);
    }
    assert.ok(tokenProxy.log.some((e) => /\/blobs\//.test(e.path) && e.authorization));
  });

  test('a redirect, then a drop at the origin: resumed there with Range', async () => {
    const c = client(tokenProxy.host, {
      credentials: async () => ({ kind: 'basic', username: 'alice', password: 'wonderland-Secret-1' }),
    });
    const originProxy = await startFaultProxy(origin.url);
    try {
      tokenProxy.clear();
      origin.requests.length = 0;
      tokenProxy.addRule({ method: 'GET', path: /\/blobs\//, redirectTo: originProxy.url, times: 5 });
      originProxy.addRule({ method: 'GET', path: /\/blobs\//, dropAfterBytes: 500_000 });
      const r = await read(c, 'private/reader');
      assert.equal(r.error, undefined, String(r.error));
      assert.ok(r.data.equals(bytes));
      assert.ok(origin.requests.some((q) => q.status === 206 && q.headers.range?.startsWith('bytes=')));
      for (const q of origin.requests) assert.equal(q.headers.authorization, undefined);
    } finally {
      await originProxy.stop();
    }
  });

  test('HTTPS: with the registry CA, and with --tls-verify=false', async () => {
    const ca = await readFile(tlsReg.certPath!, 'utf8');
    const good = client(tlsReg.host, {
      tlsFor: async () => ({ dir: 'test', ca: [ca] }),
      scheme: 'https',
    });
    const r = await read(good, 'reader');
    assert.equal(r.error, undefined, String(r.error));
    assert.ok(r.data.equals(bytes));
    const insecure = client(tlsReg.host, { tlsVerify: false, scheme: 'https' });
    assert.ok((await read(insecure, 'reader')).data.equals(bytes));
  });

  test('a redirect to an HTTPS origin whose certificate is not trusted fails; --tls-verify=false reads it', async () => {
    anonProxy.clear();
    anonProxy.addRule({ method: 'GET', path: /\/blobs\//, redirectTo: `https://${tlsReg.host}`, times: 10 });
    const strict = await read(
      client(anonProxy.host, { retry: { times: 0, delayMs: 1, maxDelayMs: 1 } }),
      'reader',
    );
    assert.ok(isLadingError(strict.error), String(strict.error));
    assert.equal(strict.seen, 0);
    assert.match(strict.error.message, /certificate/i);
    const lax = await read(client(anonProxy.host, { tlsVerify: false }), 'reader');
    assert.equal(lax.error, undefined, String(lax.error));
    assert.ok(lax.data.equals(bytes));
  });
});

describe('GETs sent early (sendBlobRequestEarly)', () => {
  const blobGets = () => anonProxy.log.filter((e) => e.method === 'GET' && /\/blobs\//.test(e.path));
  async function until(ok: () => boolean): Promise<void> {
    for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(ok(), 'timed out waiting');
  }

  test('the read takes the GET sent early: one request, every byte once', async () => {
    const c = client(anonProxy.host);
    await c.base();
    anonProxy.clear();
    sendBlobRequestEarly(c, 'reader', blob().digest as Digest);
    // The request is at the registry before anyone reads.
    await until(() => blobGets().length === 1);
    await new Promise((r) => setTimeout(r, 50));
    const r = await read(c, 'reader');
    assert.equal(r.error, undefined);
    assert.ok(r.data.equals(bytes));
    assert.equal(r.seen, bytes.length);
    assert.equal(blobGets().length, 1);
  });

  test("an early GET that fails is the read's first attempt: retried as one", async () => {
    const c = client(anonProxy.host);
    await c.base();
    anonProxy.clear();
    anonProxy.addRule({ method: 'GET', path: /\/blobs\//, status: 503 });
    sendBlobRequestEarly(c, 'reader', blob().digest as Digest);
    await until(() => blobGets().length === 1);
    const r = await read(c, 'reader');
    assert.equal(r.error, undefined);
    assert.ok(r.data.equals(bytes));
    assert.deepEqual(
      blobGets().map((e) => e.status),
      [503, 200],
    );
  });

  test('an early GET whose connection closed while it waited is sent again, not counted (no retries left)', async () => {
    const c = client(anonProxy.host, { retry: { times: 0, delayMs: 5, maxDelayMs: 50 } });
    await c.base();
    anonProxy.clear();
    anonProxy.addRule({ method: 'GET', path: /\/blobs\//, dropAfterBytes: 1000 });
    sendBlobRequestEarly(c, 'reader', blob().digest as Digest);
    // The proxy sends the head and 1000 bytes, then closes: while nobody reads yet.
    await until(() => blobGets()[0]?.fault === 'drop');
    await new Promise((r) => setTimeout(r, 100));
    const r = await read(c, 'reader');
    assert.equal(r.error, undefined);
    assert.ok(r.data.equals(bytes));
    const gets = blobGets();
    assert.deepEqual(
      gets.map((e) => e.fault ?? 'ok'),
      ['drop', 'ok'],
    );
    // Resumed after the bytes the early response had buffered (or from the start, if none were).
    const from = gets[1]!.range === undefined ? 0 : Number(/^bytes=(\d+)-$/.exec(gets[1]!.range)?.[1]);
    assert.ok(from >= 0 && from <= 1000, `resumed from ${gets[1]!.range}`);
  });

  test('an early GET still waiting for its answer does not hold the process once the client is closed', async () => {
    anonProxy.clear();
    // The registry takes 30 s to answer the early GET: a process that closed its client must not wait for it.
    anonProxy.addRule({ method: 'GET', path: /\/blobs\//, delayMs: 30_000 });
    const src = new URL('../../src/registry/index.ts', import.meta.url).href;
    const script = `
      const { RegistryClient, sendBlobRequestEarly } = await import(${JSON.stringify(src)});
      const c = new RegistryClient({ registry: ${JSON.stringify(anonProxy.host)} });
      await c.base();
      sendBlobRequestEarly(c, 'reader', ${JSON.stringify(blob().digest)});
      await new Promise((r) => setTimeout(r, 200));
      await c.close();
      console.log('closed');`;
    const t0 = Date.now();
    const r = await run(process.execPath, ['--input-type=module', '-e', script], {
      allowFail: true,
      timeoutMs: 20_000,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), /closed/);
    assert.ok(Date.now() - t0 < 15_000, `the process ended ${Date.now() - t0} ms later, not when closed`);
    assert.equal(blobGets().length, 1, 'the early GET was sent');
    anonProxy.clear();
  });

  test('a 404 sent early fails the read as the registry error, not retried', async () => {
    const c = client(anonProxy.host);
    await c.base();
    anonProxy.clear();
    const missing = sha(Buffer.from('not in the registry')) as Digest;
    sendBlobRequestEarly(c, 'reader', missing);
    const r = await read(c, 'reader', missing, 19);
    assert.ok(isLadingError(r.error) && r.error.code === 'E_NOT_FOUND', String(r.error));
    assert.equal(blobGets().length, 1);
  });

  test('nothing is sent when the skip check says the blob is at hand', async () => {
    const c = client(anonProxy.host);
    await c.base();
    anonProxy.clear();
    sendBlobRequestEarly(c, 'reader', blob().digest as Digest, { skip: async () => true });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(blobGets().length, 0);
    const r = await read(c, 'reader');
    assert.ok(r.data.equals(bytes));
    assert.equal(blobGets().length, 1);
  });
});

describe('hostile hops', () => {
  test('a 401 from a redirect target is not answered: no token fetched for it, no credentials sent', async () => {
    // The "realm" the foreign challenge names: it must see no request.
    const realm = await startFaultProxy(anon.url);
    const cdn = await startFaultProxy(origin.url);
    try {
      cdn.addRule({
        method: 'GET',
        path: /\/blobs\//,
        status: 401,
        times: 10,
        responseHeaders: { 'www-authenticate': `Bearer realm="${realm.url}/token",service="cdn"` },
      });
      tokenProxy.clear();
      tokenProxy.addRule({ method: 'GET', path: /\/blobs\//, redirectTo: cdn.url, times: 10 });
      const c = client(tokenProxy.host, {
        credentials: async () => ({ kind: 'basic', username: 'alice', password: 'wonderland-Secret-1' }),
      });
      const r = await read(c, 'private/reader');
      assert.ok(isLadingError(r.error), String(r.error));
      assert.equal(r.error.code, 'E_UNAUTHORIZED');
      assert.match(r.error.message, /reached by a redirect/);
      assert.equal(realm.log.length, 0);
      assert.ok(cdn.log.length >= 1);
      assert.ok(cdn.log.every((e) => !e.authorization));
    } finally {
      await realm.stop();
      await cdn.stop();
    }
  });

  test('a body trickled below 1 KiB per timeout window is cut (and retried) with a timeout error', async () => {
    const server = createServer((req, res) => {
      if (req.url === '/v2/') {
        res.writeHead(200, { 'content-length': '2' }).end('{}');
        return;
      }
      res.writeHead(200, { 'content-length': String(bytes.length) });
      res.write(bytes.subarray(0, 5000));
      const t = setInterval(() => res.write(bytes.subarray(5000, 5001)), 50);
      res.on('close', () => clearInterval(t));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const c = client(`127.0.0.1:${(server.address() as AddressInfo).port}`, {
        retry: { times: 1, delayMs: 1, maxDelayMs: 1 },
        timeoutMs: 300,
      });
      // The client's --timeout, here 300 ms.
      const r = await read(c, 'reader');
      assert.ok(isLadingError(r.error), String(r.error));
      assert.equal(r.error.code, 'E_NETWORK');
      assert.match(r.error.message, /sent only \d+ bytes in 300 ms \(too slow; see --timeout\)/);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

/** A server for the framings docker-registry never uses: it answers /v2/ and one blob. */
async function framingServer(
  framing: 'chunked' | 'close',
): Promise<{ server: Server; host: string; sockets: Set<unknown> }> {
  const sockets = new Set<unknown>();
  const server = createServer((req, res) => {
    if (req.url === '/v2/') {
      res.writeHead(200, { 'content-length': '2' }).end('{}');
      return;
    }
    sockets.add(req.socket);
    if (framing === 'chunked') {
      res.writeHead(200, { 'transfer-encoding': 'chunked' });
      // Uneven pieces, so chunk boundaries fall everywhere in the reads.
      for (let i = 0; i < bytes.length; ) {
        const n = 1 + ((i * 7919) % 70_000);
        res.write(bytes.subarray(i, i + n));
        i += n;
      }
      res.end();
    } else {
      res.writeHead(200, { connection: 'close' });
      res.end(bytes);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, host: `127.0.0.1:${(server.address() as AddressInfo).port}`, sockets };
}

describe('body framings', () => {
  for (const framing of ['chunked', 'close'] as const) {
    test(`${framing}: the same bytes, verified`, async () => {
      const { server, host, sockets } = await framingServer(framing);
      try {
        const c = client(host);
        const r = await read(c, 'reader');
        assert.equal(r.error, undefined, String(r.error));
        assert.ok(r.data.equals(bytes));
        // The second read works too: on the kept-alive connection after a chunked body, on a new
        // one after a body the connection's end framed.
        assert.ok((await read(c, 'reader')).data.equals(bytes));
        assert.equal(sockets.size, framing === 'chunked' ? 1 : 2);
      } finally {
        server.closeAllConnections();
        server.close();
      }
    });
  }
});
