import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { redactAuthValues } from '../../src/util/index.ts';
import { runCli } from '../helpers/cli.ts';
import { type HostileServer, startHostile } from '../helpers/hostile-servers.ts';

// Issue 12 weak spot: a server that echoes the request's Authorization value (base64 of
// user:password) in an error body, a header or a redirect path must not get it printed, even
// with --debug.

const PASSWORD = 'echo-Secret-5a1b';
const B64 = Buffer.from(`alice:${PASSWORD}`).toString('base64');
let echo: HostileServer;

before(async () => {
  echo = await startHostile((req, res, url) => {
    const auth = req.headers.authorization ?? '';
    if (url.pathname === '/v2/' && !auth) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="echo"', 'content-length': '0' }).end();
      return;
    }
    const body = JSON.stringify({
      errors: [{ code: 'UNAUTHORIZED', message: `rejected Authorization: ${auth}` }],
    });
    if (url.pathname.includes('/redirect/')) {
      res
        .writeHead(302, {
          location: `/v2/r/echoed/${encodeURIComponent(auth)}/manifests/1`,
          'content-length': '0',
        })
        .end();
      return;
    }
    if (url.pathname === '/v2/') return void res.writeHead(200, { 'content-length': '0' }).end();
    const status = url.pathname.includes('/fail500/') ? 500 : 401;
    res
      .writeHead(status, {
        'content-type': 'application/json',
        'x-echo': auth,
        'content-length': String(Buffer.byteLength(body)),
      })
      .end(body);
  });
});
after(() => echo.stop());

describe('credentials echoed by a server are redacted', () => {
  for (const repo of ['r/unauth', 'r/fail500', 'r/redirect']) {
    test(`${repo}: neither the password nor its base64 reaches the output (--debug)`, async () => {
      const r = await runCli([
        'inspect',
        '--raw',
        '--debug',
        '--retry-times',
        '0',
        '--creds',
        `alice:${PASSWORD}`,
        `${echo.host}/${repo}:1`,
      ]);
      assert.notEqual(r.code, 0);
      assert.ok(
        echo.requests.some((q) => q.headers.authorization === `Basic ${B64}`),
        'the server got the credentials',
      );
      assert.ok(!r.stderr.includes(B64), `base64 credentials printed:\n${r.stderr}`);
      assert.ok(!r.stderr.includes(encodeURIComponent(B64)), `encoded credentials printed:\n${r.stderr}`);
      assert.ok(!r.stderr.includes(PASSWORD), 'password printed');
      assert.match(r.stderr, /<redacted>/);
    });
  }

  test('redactAuthValues', () => {
    assert.equal(redactAuthValues(`x Basic ${B64} y`), 'x Basic <redacted> y');
    assert.equal(redactAuthValues('authorization: bearer abc.def-ghi'), 'authorization: bearer <redacted>');
    assert.equal(
      redactAuthValues(`/p/Basic%20${encodeURIComponent(B64)}/m`).includes(B64.slice(0, 8)),
      false,
    );
    assert.equal(redactAuthValues('Basic realm="x"'), 'Basic realm="x"');
  });
});
