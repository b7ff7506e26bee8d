import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { type LockEntry, type LockFile, renderLockNixLading } from '../../src/pin/index.ts';
import { runCli } from '../helpers/cli.ts';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.ts';
import { buildLayout, type ImageSpec, pushLayout, whiteout } from '../helpers/images.ts';
import { nix } from '../helpers/nix.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

let anon: TestRegistry;
let proxy: FaultProxy;
let work: string;

function image(version: string): ImageSpec {
  return {
    layers: [
      { entries: [{ path: 'opt/tool', content: `tool ${version}`, mode: 0o755 }] },
      { entries: [{ path: 'usr/bin/tool', type: 'symlink', linkname: '/opt/tool' }] },
      { entries: [{ path: 'etc/version', content: version }, whiteout('opt/old')] },
    ],
  };
}

before(async () => {
  anon = await sharedRegistry('none');
  proxy = await startFaultProxy(anon.url);
  work = await mkdtemp(join(tmpdir(), 'lading-lock-lading-'));
});
after(async () => {
  await proxy.stop();
  await stopSharedRegistries();
});

const cli = (args: string[]) =>
  runCli(args, {
    env: { HOME: '/nonexistent', PATH: process.env.PATH, XDG_CACHE_HOME: join(work, 'cache') },
  });

test('lock add --no-hash fetches no blob; --extract reads layers from the top only; update keeps both', async () => {
  const v1 = await buildLayout(image('1'));
  await pushLayout(v1, anon, 'lockl/tool:1');
  const file = join(work, 'a.lock.json');
  const before = proxy.log.length;
  const add = await cli([
    'lock',
    'add',
    '-f',
    file,
    '--no-hash',
    '--name',
    't',
    `${proxy.host}/lockl/tool:1`,
  ]);
  assert.equal(add.code, 0, add.stderr);
  assert.match(add.stdout.toString(), /\(no hash\)/);
  const blobGets = (from: number) =>
    proxy.log.slice(from).filter((l) => l.method === 'GET' && l.path.includes('/blobs/'));
  assert.deepEqual(blobGets(before), []);
  const total = v1.images[0]!.layers.reduce((n, l) => n + l.size, 0) + v1.images[0]!.config.length;
  assert.match(add.stderr, new RegExp(`--no-hash: ${total} bytes`));
  let e = JSON.parse(await readFile(file, 'utf8')).images.t as LockEntry;
  assert.equal(e.dockerTools, undefined);
  assert.equal(e.nix2container, undefined);

  // /etc/version is decided by the top layer alone: no other blob is fetched.
  const mark = proxy.log.length;
  const ex = await cli([
    'lock',
    'add',
    '-f',
    file,
    '--no-hash',
    '--extract',
    '/etc/version',
    '--name',
    'v',
    `${proxy.host}/lockl/tool:1`,
  ]);
  assert.equal(ex.code, 0, ex.stderr);
  const layers = v1.images[0]!.layers;
  assert.deepEqual(
    blobGets(mark).map((l) => l.path.slice(l.path.lastIndexOf('/') + 1)),
    [layers[2]!.digest],
  );
  e = JSON.parse(await readFile(file, 'utf8')).images.v;
  assert.deepEqual(e.extract, { '/etc/version': { layer: 2, digest: layers[2]!.digest } });

  // /usr/bin/tool is a link (layer 1) to /opt/tool (layer 0): every layer down to 0 decides it.
  const both = await cli([
    'lock',
    'add',
    '-f',
    file,
    '--no-hash',
    '--extract',
    '/usr/bin/tool',
    '--extract',
    '/etc/version',
    '--name',
    'w',
    `${anon.host}/lockl/tool:1`,
  ]);
  assert.equal(both.code, 0, both.stderr);
  e = JSON.parse(await readFile(file, 'utf8')).images.w;
  assert.deepEqual(e.extract, {
    '/usr/bin/tool': { layer: 0, digest: layers[0]!.digest },
    '/etc/version': { layer: 2, digest: layers[2]!.digest },
  });

  // A whited-out or missing path cannot be recorded.
  const missing = await cli([
    'lock',
    'add',
    '-f',
    file,
    '--no-hash',
    '--extract',
    '/opt/old',
    `${anon.host}/lockl/tool:1`,
  ]);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /lading: error: \/opt\/old is not in the image/);

  // The tag moves: update re-pins without hashes and records the paths again.
  const v2 = await buildLayout(image('2'));
  await pushLayout(v2, anon, 'lockl/tool:1');
  const up = await cli(['lock', 'update', '-f', file, 'w']);
  assert.equal(up.code, 0, up.stderr);
  e = JSON.parse(await readFile(file, 'utf8')).images.w;
  assert.equal(e.dockerTools, undefined);
  assert.equal(e.imageDigest, v2.digest);
  assert.deepEqual(e.extract?.['/etc/version'], { layer: 2, digest: v2.images[0]!.layers[2]!.digest });
});

test('lock nix --target lading: Nix reads back every manifest byte for byte (property)', async () => {
  const text = fc.string({ unit: 'binary', maxLength: 40 });
  const lock: LockFile = { version: 1, images: {} };
  const tricky: [string, string, string][] = [
    [`{"a":"$${'{'}builtins.abort "x"}"}`, '\\', `/a b/$${'{'}x}`],
    ["\r\n\t\"''", "''${", '/é/ü'],
  ];
  const samples = [...tricky, ...fc.sample(fc.tuple(text, text, text), { numRuns: 40, seed: 16 })];
  for (const [i, [manifest, name, path]] of samples.entries()) {
    // Nix strings cannot hold NUL.
    const clean = (s: string) => s.replaceAll('\0', '');
    lock.images[`i${i}`] = {
      imageName: clean(name) || 'x',
      imageDigest: 'sha256:0',
      instanceDigest: 'sha256:1',
      manifest: clean(manifest),
      finalImageName: clean(name),
      finalImageTag: 't',
      extract: { [clean(path) || '/p']: { layer: i, digest: 'sha256:2' } },
      ...(i % 2 ? {} : { tlsVerify: false }),
    } as unknown as LockEntry;
  }
  const file = join(work, 'prop.nix');
  await writeFile(file, renderLockNixLading(lock));
  const json = await nix('nix-instantiate', [
    '--eval',
    '--strict',
    '--json',
    '-E',
    `builtins.mapAttrs (n: v: { h = builtins.hashString "sha256" v.manifest; inherit (v) imageName extract authFile tlsVerify; })
      (import ${file} { lading.fetchImageByDigest = x: x; authFile = "/a"; })`,
  ]);
  const got = JSON.parse(json) as Record<
    string,
    { h: string; imageName: string; extract: unknown; authFile: string; tlsVerify: boolean }
  >;
  for (const [k, e] of Object.entries(lock.images)) {
    assert.equal(got[k]!.h, createHash('sha256').update(e.manifest, 'utf8').digest('hex'), k);
    assert.equal(got[k]!.imageName, e.imageName, k);
    assert.deepEqual(got[k]!.extract, e.extract, k);
    assert.equal(got[k]!.authFile, '/a');
    // Pinned over plain HTTP: false whatever the file is given; else the file's argument (true).
    assert.equal(got[k]!.tlsVerify, e.tlsVerify !== false, k);
  }
});
