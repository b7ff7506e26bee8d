/**
 * The TLS sniff (src/registry/tls-sniff.ts): a registry that answers a TLS hello in plain HTTP is
 * pinged over HTTP at once, without an HTTPS attempt; any other answer keeps Docker's order
 * (HTTPS first). Against the real registry (plain and TLS) and servers that lie or say nothing.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { createServer as createTcpServer, type Server } from 'node:net';
import { after, before, test } from 'node:test';
import { RegistryClient } from '../../src/registry/index.ts';
import { answersTlsInPlainHttp } from '../../src/registry/tls-sniff.ts';
import { startHostile, startSilentServer } from '../helpers/hostile-servers.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';

let plain: TestRegistry;
let tls: TestRegistry;

before(async () => {
  [plain, tls] = await Promise.all([
    startRegistry({ auth: 'none' }),
    startRegistry({ auth: 'none', tls: true }),
  ]);
});
after(async () => {
  await Promise.all([plain?.stop(), tls?.stop()]);
});

const port = (host: string): number => Number(host.split(':').pop());

/** A TCP server that answers each connection's first bytes with `reply` (or closes at once). */
async function tcpServer(reply: string | undefined): Promise<{ port: number; stop: () => Promise<void> }> {
  const server: Server = createTcpServer((s) => {
    s.on('error', () => {});
    if (reply === undefined) s.destroy();
    else s.once('data', () => s.end(reply));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

test('the real registry over plain HTTP answers the hello in HTTP; over TLS it does not', async () => {
  assert.equal(await answersTlsInPlainHttp('127.0.0.1', port(plain.host), 5000), true);
  assert.equal(await answersTlsInPlainHttp('127.0.0.1', port(tls.host), 5000), false);
});

test('a Node.js HTTP server answers the hello in HTTP too (400, at once)', async () => {
  const server = await startHostile((_req, res) => void res.end('ok'));
  try {
    assert.equal(await answersTlsInPlainHttp('127.0.0.1', port(server.host), 5000), true);
    // The hello is not a request: the handler never ran.
    assert.equal(server.requests.length, 0);
  } finally {
    await server.stop();
  }
});

test('silence, a closed connection, a refused port or a TLS alert say nothing: false', async () => {
  const silent = await startSilentServer();
  const closing = await tcpServer(undefined);
  // A TLS alert record (fatal handshake_failure), as a TLS server that likes no offered suite sends.
  const alert = await tcpServer('\x15\x03\x03\x00\x02\x02\x28');
  const nearlyHttp = await tcpServer('HTTP');
  try {
    const t0 = Date.now();
    assert.equal(await answersTlsInPlainHttp('127.0.0.1', port(silent.host), 300), false);
    assert.ok(Date.now() - t0 < 3000, 'the sniff gives up on a silent server');
    assert.equal(await answersTlsInPlainHttp('127.0.0.1', closing.port, 5000), false);
    assert.equal(await answersTlsInPlainHttp('127.0.0.1', alert.port, 5000), false);
    assert.equal(await answersTlsInPlainHttp('127.0.0.1', nearlyHttp.port, 5000), false);
    const unused = await tcpServer(undefined);
    await unused.stop();
    assert.equal(await answersTlsInPlainHttp('127.0.0.1', unused.port, 5000), false);
  } finally {
    await Promise.all([silent.stop(), closing.stop(), alert.stop(), nearlyHttp.stop()]);
  }
});

test('a loopback registry over plain HTTP is pinged without an HTTPS attempt; over TLS, with HTTPS', async () => {
  const lines: string[] = [];
  const c = new RegistryClient({ registry: plain.host, onDebug: (l) => lines.push(l) });
  try {
    assert.equal((await c.base()).protocol, 'http:');
  } finally {
    await c.close();
  }
  assert.ok(
    lines.some((l) => l.includes('answers a TLS hello in plain HTTP')),
    lines.join('\n'),
  );
  assert.ok(!lines.some((l) => l.includes('GET https://')), lines.join('\n'));

  const tlsLines: string[] = [];
  const t = new RegistryClient({ registry: tls.host, tlsVerify: false, onDebug: (l) => tlsLines.push(l) });
  try {
    assert.equal((await t.base()).protocol, 'https:');
  } finally {
    await t.close();
  }
  assert.ok(!tlsLines.some((l) => l.includes('plain HTTP')), tlsLines.join('\n'));
});
