import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { copyImage, RegistryClient } from '../../src/index.ts';
import { parseReference } from '../../src/reference/index.ts';
import { OciLayoutSource, RegistrySink } from '../../src/transports/index.ts';
import { requireBin, run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.ts';
import { type BuiltLayout, buildLayout, smallImage } from '../helpers/images.ts';
import { DEFAULT_USERS, startRegistry, type TestRegistry } from '../helpers/registry.ts';

// Issue 12.1, upload half: credentials belong to the registry the user named. A registry (here a
// proxy in front of a real Basic-auth registry) answers the upload POST with a `Location` on
// another origin; lading uploads there, but never with the user's Authorization header.

const ALICE = `alice:${DEFAULT_USERS.alice}`;
let reg: TestRegistry;
let front: FaultProxy;
let foreign: FaultProxy;
let image: BuiltLayout;
let work: string;

before(async () => {
  reg = await startRegistry({ auth: 'basic', users: { alice: DEFAULT_USERS.alice } });
  foreign = await startFaultProxy(reg.url);
  front = await startFaultProxy(reg.url);
  // The foreign origin stands in for a storage backend that authorises the session by its own
  // means (here: it adds the registry's credentials itself), so the upload can complete.
  foreign.addRule({
    path: /\/blobs\/uploads\//,
    times: Number.POSITIVE_INFINITY,
    requestHeaders: { authorization: `Basic ${Buffer.from(ALICE).toString('base64')}` },
    locationTo: foreign.url,
  });
  front.addRule({
    method: 'POST',
    path: /\/blobs\/uploads\/$/,
    times: Number.POSITIVE_INFINITY,
    locationTo: foreign.url,
  });
  image = await buildLayout(smallImage('upload-location'));
  work = await mkdtemp(join(tmpdir(), 'lading-upload-location-'));
});
after(async () => {
  await front.stop();
  await foreign.stop();
  await reg.stop();
});

test('an upload Location on another origin gets the blob but never the Authorization header', async () => {
  const ref = `${front.host}/team/app:1`;
  const r = await runCli(
    ['copy', '-q', '--dest-creds', ALICE, `oci:${image.dir}:latest`, `docker://${ref}`],
    {
      env: { HOME: '/nonexistent', PATH: process.env.PATH, XDG_CACHE_HOME: join(work, 'cache') },
      cwd: work,
    },
  );
  assert.equal(r.code, 0, r.stderr);
  const uploads = foreign.log.filter((e) => e.method === 'PUT' || e.method === 'PATCH');
  assert.ok(uploads.length >= 4, `the blobs went to the other origin (${uploads.length} requests)`);
  assert.deepEqual(
    foreign.log.filter((e) => e.authorization).map((e) => `${e.method} ${e.path}`),
    [],
    'no request to the other origin carried credentials',
  );
  // The credentials were in play: the registry's own origin got them.
  assert.ok(front.log.some((e) => e.authorization));
  // The image is whole: skopeo reads it from the registry.
  const s = await run(requireBin('skopeo'), [
    'inspect',
    '--tls-verify=false',
    '--creds',
    ALICE,
    `docker://${reg.host}/team/app:1`,
  ]);
  assert.equal(JSON.parse(s.stdout.toString()).Digest, r.stdout.toString().trim());
});

test('chunked uploads (PATCH, PATCH, PUT) to another origin carry no credentials either', async () => {
  const client = new RegistryClient({
    registry: front.host,
    credentials: async () => ({ kind: 'basic', username: 'alice', password: DEFAULT_USERS.alice }),
  });
  foreign.log.length = 0;
  try {
    const ref = parseReference(`${front.host}/team/chunked:1`);
    const r = await copyImage(
      new OciLayoutSource(image.dir, image.tag),
      new RegistrySink(client, ref, { chunkSize: 16 }),
    );
    assert.equal(r.digest, image.digest);
  } finally {
    await client.close();
  }
  assert.ok(foreign.log.filter((e) => e.method === 'PATCH').length > 4, 'several chunks went there');
  assert.deepEqual(
    foreign.log.filter((e) => e.authorization).map((e) => `${e.method} ${e.path}`),
    [],
  );
  const s = await run(requireBin('skopeo'), [
    'inspect',
    '--raw',
    '--tls-verify=false',
    '--creds',
    ALICE,
    `docker://${reg.host}/team/chunked:1`,
  ]);
  assert.equal(s.code, 0, s.stderr);
});
