import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Http } from '../../src/registry/http.ts';
import { credentialsFor, headersForHop, mayAnswerChallenge } from '../../src/registry/origin-policy.ts';
import { runCli } from '../helpers/cli.ts';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.ts';
import {
  type HostileServer,
  startChallengingOrigin,
  startHostile,
  startRecordingRealm,
} from '../helpers/hostile-servers.ts';
import { type BuiltLayout, buildLayout, pushLayout } from '../helpers/images.ts';
import {
  DEFAULT_USERS,
  sharedRegistry,
  stopSharedRegistries,
  type TestRegistry,
} from '../helpers/registry.ts';

// Issue 12 item 1 (containerd CVE-2020-15157 class): a Basic-auth registry redirects a blob GET to
// another origin, which answers 401 with a Bearer challenge naming its own realm. lading must not
// send the user's password (nor anything else) to that realm or that origin.

const PASSWORD = DEFAULT_USERS.alice;
const CREDS = `alice:${PASSWORD}`;
const B64 = Buffer.from(CREDS).toString('base64');
let registry: TestRegistry;
let proxy: FaultProxy;
let realm: HostileServer;
let cdn: HostileServer;
let image: BuiltLayout;
const blobPath = /\/blobs\/sha256:/;

before(async () => {
  registry = await sharedRegistry('basic');
  image = await buildLayout({ layers: [{ entries: [{ path: 'f.bin', content: randomBytes(4096) }] }] });
  await pushLayout(image, registry, 'private/origin:1');
  proxy = await startFaultProxy(registry.url);
  realm = await startRecordingRealm();
  cdn = await startChallengingOrigin(`${realm.url}/token`);
});
after(async () => {
  await proxy.stop();
  await realm.stop();
  await cdn.stop();
  await stopSharedRegistries();
});

/** Nothing that reached `s` carried the user's credentials, in a header or in the query. */
function assertNoCredentials(s: HostileServer, name: string): void {
  for (const q of s.requests) {
    assert.equal(q.headers.authorization, undefined, `${name} got an Authorization header`);
    const all = JSON.stringify(q);
    assert.ok(!all.includes(PASSWORD) && !all.includes(B64), `${name} got the password`);
    assert.equal(q.query.account, undefined, `${name} got the account name`);
  }
}

describe('credentials stay with the registry the user named', () => {
  for (const cmd of ['blob', 'prefetch'] as const) {
    test(`${cmd}: a redirect target's foreign Bearer challenge is never answered with credentials`, async () => {
      proxy.clear();
      realm.requests.length = 0;
      cdn.requests.length = 0;
      proxy.addRule({ method: 'GET', path: blobPath, redirectTo: cdn.url, times: Infinity });
      const dir = await mkdtemp(join(tmpdir(), 'lading-origin-'));
      const layer = image.images[0]!.layers[0]!;
      const args =
        cmd === 'blob'
          ? [
              'blob',
              '--creds',
              CREDS,
              '--retry-times',
              '0',
              '--debug',
              `${proxy.host}/private/origin`,
              layer.digest,
              '-o',
              join(dir, 'b'),
            ]
          : ['prefetch', '--creds', CREDS, '--retry-times', '0', '--debug', `${proxy.host}/private/origin:1`];
      const r = await runCli(args);
      assert.notEqual(r.code, 0, 'the download cannot succeed: the CDN refuses everyone');
      assert.ok(cdn.requests.length >= 1, 'the redirect was followed');
      // skopeo never contacts the third realm; neither does lading.
      assert.equal(
        realm.requests.length,
        0,
        `the foreign realm was contacted: ${JSON.stringify(realm.requests)}`,
      );
      assertNoCredentials(realm, 'the foreign realm');
      assertNoCredentials(cdn, 'the redirect target');
      assert.match(r.stderr, /lading: .*reached by a redirect from registry .* asks for authentication/);
      assert.ok(r.stderr.includes(cdn.host), r.stderr);
      assert.ok(!r.stderr.includes(PASSWORD) && !r.stderr.includes(B64), 'credentials in the output');
      // The registry itself did get the credentials (Basic is answered where it belongs).
      assert.ok(proxy.log.some((e) => blobPath.test(e.path) && e.authorization));
    });
  }

  test("a /v2/ ping redirected to another origin does not teach lading that origin's realm", async () => {
    proxy.clear();
    realm.requests.length = 0;
    cdn.requests.length = 0;
    proxy.addRule({ method: 'GET', path: /^\/v2\/$/, redirectTo: cdn.url, times: Infinity });
    const r = await runCli([
      'inspect',
      '--raw',
      '--creds',
      CREDS,
      '--retry-times',
      '0',
      `${proxy.host}/private/origin:1`,
    ]);
    assert.equal(realm.requests.length, 0, 'the foreign realm was contacted');
    assertNoCredentials(cdn, 'the redirect target');
    // The registry's own 401 then teaches Basic, and the manifest is read with the credentials.
    assert.equal(r.code, 0, r.stderr);
  });
});

describe('redirect chains', () => {
  test('credentials dropped at a foreign hop never come back when the chain returns', async () => {
    let other: HostileServer | undefined;
    const home = await startHostile((req, res) => {
      if (req.url === '/start')
        res.writeHead(307, { location: `${other!.url}/x`, 'content-length': '0' }).end();
      else res.writeHead(200, { 'content-length': '2' }).end('ok');
    });
    other = await startHostile((_req, res) => {
      res.writeHead(307, { location: `${home.url}/end`, 'content-length': '0' }).end();
    });
    const http = new Http({ retry: { times: 0 } });
    try {
      const res = await http.send(new URL(`${home.url}/start`), {
        method: 'GET',
        headers: { authorization: `Basic ${B64}` },
      });
      assert.equal(await res.body.text(), 'ok');
      assert.deepEqual(
        home.requests.map((q) => [q.path, q.headers.authorization !== undefined]),
        [
          ['/start', true],
          ['/end', false],
        ],
      );
      assert.equal(other.requests[0]!.headers.authorization, undefined);
    } finally {
      await http.close();
      await home.stop();
      await other.stop();
    }
  });
});

describe('origin policy (pure decisions shared by every HTTP path)', () => {
  test('credentialsFor: only the exact origin (scheme, host, port)', () => {
    const o = 'https://reg.example:5000';
    assert.equal(credentialsFor(new URL('https://reg.example:5000/v2/x'), o), true);
    assert.equal(credentialsFor(new URL('http://reg.example:5000/v2/x'), o), false);
    assert.equal(credentialsFor(new URL('https://reg.example/v2/x'), o), false);
    assert.equal(credentialsFor(new URL('https://cdn.example:5000/v2/x'), o), false);
    assert.equal(mayAnswerChallenge(new URL('https://cdn.example/x'), o), false);
  });
  test('headersForHop drops every credential header, whatever its case', () => {
    const h = { Authorization: 'Basic x', cookie: 'c', 'Proxy-Authorization': 'p', accept: 'a' };
    assert.deepEqual(headersForHop(h, new URL('https://cdn.example/'), 'https://reg.example'), {
      accept: 'a',
    });
    assert.deepEqual(headersForHop(h, new URL('https://reg.example/b'), 'https://reg.example'), h);
  });
});
