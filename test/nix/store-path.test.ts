import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { hasCode } from '../../src/errors/index.ts';
import {
  checkStoreName,
  fixName,
  hashSize,
  makeFixedOutputPath,
  NIX_HASH_ALGOS,
  type NixHash,
  narHashOfPath,
  sha256Hash,
  storePathHashPart,
  toHex,
} from '../../src/nix/index.ts';
import { nix, nixTry, privateStore } from '../helpers/nix.ts';

const printFixed = (h: NixHash, name: string, recursive: boolean, env?: NodeJS.ProcessEnv) =>
  nix('nix-store', ['--print-fixed-path', ...(recursive ? ['--recursive'] : []), h.algo, toHex(h), name], {
    env,
  });

test('fixed-output paths equal nix-store --print-fixed-path for every algorithm and method', async () => {
  const cases = NIX_HASH_ALGOS.flatMap((algo) =>
    [false, true].map((recursive) => ({
      hash: { algo, bytes: randomBytes(hashSize(algo)) } as NixHash,
      recursive,
      name: `docker-image-${algo}${recursive ? '-r' : ''}.tar`,
    })),
  );
  await Promise.all(
    cases.map(async ({ hash, recursive, name }) => {
      const ours = makeFixedOutputPath({ method: recursive ? 'recursive' : 'flat', hash, name });
      assert.equal(ours, await printFixed(hash, name, recursive), `${hash.algo} recursive=${recursive}`);
      assert.equal(storePathHashPart(ours).length, 32);
    }),
  );
});

test('a different store directory changes the path as NIX_STORE_DIR does', async () => {
  const hash = sha256Hash('x');
  for (const recursive of [false, true])
    assert.equal(
      makeFixedOutputPath({
        method: recursive ? 'recursive' : 'flat',
        hash,
        name: 'n',
        storeDir: '/foo/store',
      }),
      await printFixed(hash, 'n', recursive, { NIX_STORE_DIR: '/foo/store' }),
    );
});

test('--add-fixed of real files and directories lands where makeFixedOutputPath says', async () => {
  const root = await mkdtemp(join(tmpdir(), 'lading-sp-'));
  const files = ['docker-image-x.tar', 'f.txt'].map((n) => join(root, n));
  const data = [randomBytes(1000), Buffer.from('hi\n')];
  await Promise.all(files.map((f, i) => writeFile(f, data[i]!)));
  const dir = join(root, 'docker-image-nix2container');
  await mkdir(join(dir, 'sub'), { recursive: true });
  await writeFile(join(dir, 'manifest.json'), '{}');
  await writeFile(join(dir, 'sub', 'version'), 'Directory Transport Version: 1.1\n');
  const store = await privateStore();
  // One command at a time: two Nix processes initialising the same fresh store race each other.
  const flat = await nix('nix-store', [...store, '--add-fixed', 'sha256', ...files]);
  const rec = await nix('nix-store', [...store, '--add-fixed', '--recursive', 'sha256', dir]);
  assert.deepEqual(
    flat.split('\n'),
    files.map((f, i) =>
      makeFixedOutputPath({ method: 'flat', hash: sha256Hash(data[i]!), name: f.slice(root.length + 1) }),
    ),
  );
  const { hash } = await narHashOfPath(dir);
  assert.equal(rec, makeFixedOutputPath({ method: 'recursive', hash, name: 'docker-image-nix2container' }));
});

test('store names are checked as Nix checks them', async () => {
  const names = [
    'a'.repeat(211),
    'a'.repeat(212),
    'a.',
    'a-',
    '+-._?=',
    'A-Z_09',
    'a b',
    'a:b',
    'a/b',
    'é',
    'a@b',
    'a~b',
    '',
  ];
  const hash = sha256Hash('names');
  await Promise.all(
    names.map(async (name) => {
      const theirs = await nixTry('nix-store', ['--print-fixed-path', 'sha256', toHex(hash), name]);
      let ok = true;
      try {
        checkStoreName(name);
        assert.equal(makeFixedOutputPath({ method: 'flat', hash, name }), theirs.stdout, name);
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        assert.ok(hasCode(e, 'E_BAD_ARGUMENT') && e.message.includes(JSON.stringify(name)), String(e));
        ok = false;
      }
      assert.equal(ok, theirs.code === 0, `${JSON.stringify(name)}: nix says ${theirs.stderr.trim()}`);
    }),
  );
  // Nix 2.8 accepts a leading dot, some older releases reject any, current ones reject `.`, `..`
  // and `.-…`: we reject every leading dot so a name is valid for every Nix.
  for (const name of ['.', '..', '.-a', '.hidden'])
    assert.throws(
      () => makeFixedOutputPath({ method: 'flat', hash, name }),
      (e: unknown) => hasCode(e, 'E_BAD_ARGUMENT') && /starts with a dot/.test(e.message),
    );
});

test('fixName does what dockerTools/nix2container fixName do (replaceStrings ["/" ":"] ["-" "-"])', async () => {
  const inputs = ['docker-image-ghcr.io/org/app-1:2.tar', 'localhost:5000/a/b', 'plain', 'a::b//c'];
  const expr = `map (builtins.replaceStrings [ "/" ":" ] [ "-" "-" ]) (builtins.fromJSON ${JSON.stringify(JSON.stringify(inputs))})`;
  const theirs = JSON.parse(await nix('nix-instantiate', ['--eval', '--strict', '--json', '--expr', expr]));
  assert.deepEqual(inputs.map(fixName), theirs);
  assert.equal(fixName('docker-image-ghcr.io/org/app-1:2.tar'), 'docker-image-ghcr.io-org-app-1-2.tar');
});

test('storePathHashPart rejects what is not a store path', () => {
  for (const p of [
    '/nix/store/abc',
    '/tmp/x',
    '/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x',
    '/nix/store/',
  ])
    assert.throws(
      () => storePathHashPart(p),
      (e: unknown) => hasCode(e, 'E_BAD_ARGUMENT'),
      p,
    );
});
