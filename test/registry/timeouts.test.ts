import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Http } from '../../src/registry/http.ts';
import { runCli } from '../helpers/cli.ts';
import {
  type HostileServer,
  startHostile,
  startSilentServer,
  startTrickleServer,
} from '../helpers/hostile-servers.ts';

// Issue 12 weak spot: no time bounds. A silent server, a trickle and a hanging token endpoint must
// fail in bounded time with an error naming the host. The bounds are set small with --timeout; the
// tests assert the errors, not durations (node:test's per-test timeout only stops a hang).

const BOUND = { timeout: 30_000 };
let silent: HostileServer;
let trickleAll: HostileServer;
let trickleBody: HostileServer;
let hangingRealm: HostileServer;

before(async () => {
  silent = await startSilentServer();
  const body = Buffer.from(JSON.stringify({ pad: 'x'.repeat(8000) }));
  trickleAll = await startTrickleServer(body, 20);
  trickleBody = await startTrickleServer(body, 20, { headersAtOnce: true });
  // A registry whose token realm is the silent server.
  hangingRealm = await startHostile((_req, res) => {
    res
      .writeHead(401, {
        'content-length': '0',
        'www-authenticate': `Bearer realm="${silent.url}/token",service="s"`,
      })
      .end();
  });
});
after(async () => {
  await Promise.all([silent.stop(), trickleAll.stop(), trickleBody.stop(), hangingRealm.stop()]);
});

const inspect = (host: string, extra: string[] = []) =>
  runCli(['inspect', '--raw', '--timeout', '1s', '--retry-times', '0', ...extra, `${host}/r/app:1`]);

describe('every wait on a server is bounded by --timeout', () => {
  test('a server that accepts and never answers', BOUND, async () => {
    const r = await inspect(silent.host);
    assert.equal(r.code, 6, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`^lading: .*(no response from|could not connect to) ${silent.host} within 1 s`, 'm'),
    );
  });

  test('a server trickling its status line and headers one byte at a time', BOUND, async () => {
    const r = await inspect(trickleAll.host);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, new RegExp(`^lading: .*no response from ${trickleAll.host} within 1 s`, 'm'));
  });

  test('a server trickling a body one byte at a time', BOUND, async () => {
    const r = await inspect(trickleBody.host);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, new RegExp(`^lading: .*${trickleBody.host} sent only \\d+ bytes in 1 s`, 'm'));
  });

  test('a token endpoint that never answers', BOUND, async () => {
    const r = await inspect(hangingRealm.host, ['--creds', 'alice:pw']);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, new RegExp(`^lading: .*no response from ${silent.host} within 1 s`, 'm'));
    assert.ok(!r.stderr.includes('pw\n') && !r.stderr.includes('alice:pw'));
  });

  test('a TLS handshake that never completes is a connect timeout', BOUND, async () => {
    const http = new Http({ timeoutMs: 1000, retry: { times: 0 } });
    try {
      await assert.rejects(
        http.send(new URL(`https://${silent.host}/v2/`), { method: 'GET', retry: false }),
        new RegExp(`could not connect to ${silent.host} within 1 s`),
      );
    } finally {
      await http.close();
    }
  });

  test('--timeout must be a positive duration', async () => {
    const r = await runCli(['inspect', '--timeout', '0', `${silent.host}/r/app:1`]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--timeout must be more than 0/);
  });
});

describe('lading reading slowly is not blamed on the server', () => {
  test('a body left unread for many timeout windows is still read whole', BOUND, async () => {
    const size = 8 << 20;
    const server = await startHostile((_req, res) => {
      res.writeHead(200, { 'content-length': String(size) });
      res.end(Buffer.alloc(size, 7));
    });
    const http = new Http({ timeoutMs: 500, retry: { times: 0 } });
    try {
      const res = await http.send(new URL(`${server.url}/big`), { method: 'GET' });
      let got = 0;
      let paused = false;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        got += chunk.length;
        if (!paused) {
          paused = true;
          // Five timeout windows without reading: the buffers fill and the socket pauses.
          await new Promise((r) => setTimeout(r, 2500));
        }
      }
      assert.equal(got, size);
    } finally {
      await http.close();
      await server.stop();
    }
  });
});
