import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isLadingError } from '../../src/errors/index.ts';
import {
  fixName,
  formatNixHash,
  fromNix32,
  makeFixedOutputPath,
  type NarNode,
  narFromPath,
  narFromTree,
  narHashOfPath,
  narHashOfTree,
  nixString,
  nixValue,
  parseNixHash,
  sha256Hash,
  toNix32,
  toSri,
} from '../../src/nix/index.ts';
import { nix, nixBytes } from '../helpers/nix.ts';

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

describe('base32 and hash formats', () => {
  test('nix32 matches nix-hash --to-base32 / --to-base16 for random hashes', async () => {
    for (let i = 0; i < 5; i++) {
      const bytes = randomBytes(32);
      const hex = bytes.toString('hex');
      assert.equal(toNix32(bytes), await nix('nix-hash', ['--type', 'sha256', '--to-base32', hex]));
      assert.equal(await nix('nix-hash', ['--type', 'sha256', '--to-base16', toNix32(bytes)]), hex);
    }
    const sha1 = randomBytes(20);
    assert.equal(
      toNix32(sha1),
      await nix('nix-hash', ['--type', 'sha1', '--to-base32', sha1.toString('hex')]),
    );
  });

  test('SRI matches nix hash to-sri', async () => {
    const h = sha256Hash('lading');
    assert.equal(toSri(h), await nix('nix', ['hash', 'to-sri', '--type', 'sha256', h.bytes.toString('hex')]));
  });

  test('property: every format round-trips through parseNixHash', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.constantFrom('sri', 'nix32', 'base16', 'base64'),
        (arr, fmt) => {
          const h = { algo: 'sha256' as const, bytes: Buffer.from(arr) };
          const s = formatNixHash(h, fmt as 'sri', { includeAlgo: true });
          assert.deepEqual(parseNixHash(s).bytes, h.bytes);
          if (fmt !== 'sri')
            assert.deepEqual(parseNixHash(formatNixHash(h, fmt as 'nix32'), 'sha256').bytes, h.bytes);
          assert.deepEqual(fromNix32(toNix32(h.bytes), 32), h.bytes);
        },
      ),
    );
  });

  test('bad hashes are errors naming the input', () => {
    for (const s of ['sha256-xyz', 'sha256:abc', 'md4:00', `${'e'.repeat(52)}`, 'sha256:' + 'e'.repeat(52)]) {
      assert.throws(
        () => parseNixHash(s, 'sha256'),
        (e: unknown) => isLadingError(e) && e.message.includes(JSON.stringify(s)),
      );
    }
    // A nix32 string whose top bits overflow.
    assert.throws(
      () => fromNix32('z'.repeat(52), 32),
      (e: unknown) => isLadingError(e),
    );
  });
});

async function sampleTree(root: string): Promise<void> {
  await mkdir(join(root, 'sub', 'deeper'), { recursive: true });
  await mkdir(join(root, 'empty'));
  await writeFile(join(root, 'empty-file'), '');
  for (let n = 0; n <= 17; n++) await writeFile(join(root, 'sub', `size-${n}`), 'x'.repeat(n));
  await writeFile(join(root, 'big'), randomBytes(1 << 20));
  await writeFile(join(root, 'run.sh'), '#!/bin/sh\n');
  await chmod(join(root, 'run.sh'), 0o755);
  for (const name of ['a', 'a-b', 'a.b', 'B', 'Ünïcode', '_x', 'a b'])
    await writeFile(join(root, 'sub', 'deeper', name), name);
  await symlink('run.sh', join(root, 'link'));
  await symlink('/absolute/dangling', join(root, 'dangling'));
  await symlink('../big', join(root, 'sub', 'up'));
}

describe('NAR', () => {
  test('narFromPath is byte-identical to nix-store --dump and its hash equals nix-hash', async () => {
    const root = await mkdtemp(join(tmpdir(), 'lading-nar-'));
    await sampleTree(root);
    const ours = await collect(narFromPath(root));
    assert.ok(ours.equals(await nixBytes('nix-store', ['--dump', root])));
    const { hash } = await narHashOfPath(root);
    assert.equal(toNix32(hash.bytes), await nix('nix-hash', ['--type', 'sha256', '--base32', root]));
    // A single file too.
    const f = join(root, 'run.sh');
    assert.ok((await collect(narFromPath(f))).equals(await nixBytes('nix-store', ['--dump', f])));
  });

  test('narFromTree equals the NAR of the same tree on disk, streaming contents', async () => {
    const root = await mkdtemp(join(tmpdir(), 'lading-nar-'));
    const big = randomBytes(300_001);
    const tree: NarNode = {
      type: 'directory',
      entries: {
        version: { type: 'regular', size: 6, contents: Buffer.from('v 1.1\n') },
        'manifest.json': { type: 'regular', size: 2, contents: Buffer.from('{}') },
        ab12: {
          type: 'regular',
          size: big.length,
          contents: async () => [big.subarray(0, 1000), big.subarray(1000)],
        },
        bin: {
          type: 'directory',
          entries: {
            tool: { type: 'regular', executable: true, size: 3, contents: Buffer.from('abc') },
            l: { type: 'symlink', target: '../ab12' },
          },
        },
      },
    };
    await writeFile(join(root, 'version'), 'v 1.1\n');
    await writeFile(join(root, 'manifest.json'), '{}');
    await writeFile(join(root, 'ab12'), big);
    await mkdir(join(root, 'bin'));
    await writeFile(join(root, 'bin', 'tool'), 'abc');
    await chmod(join(root, 'bin', 'tool'), 0o755);
    await symlink('../ab12', join(root, 'bin', 'l'));
    assert.ok((await collect(narFromTree(tree))).equals(await nixBytes('nix-store', ['--dump', root])));
    assert.equal(
      toNix32((await narHashOfTree(tree)).hash.bytes),
      await nix('nix-hash', ['--type', 'sha256', '--base32', root]),
    );
  });

  test('a file stream shorter or longer than its declared size fails', async () => {
    const short: NarNode = { type: 'regular', size: 10, contents: async () => [Buffer.from('abc')] };
    await assert.rejects(
      collect(narFromTree(short)),
      (e: unknown) => isLadingError(e) && /declared 10 bytes/.test(e.message),
    );
    const long: NarNode = { type: 'regular', size: 2, contents: async () => [Buffer.from('abc')] };
    await assert.rejects(collect(narFromTree(long)), (e: unknown) => isLadingError(e));
  });

  test('property: random small trees hash like nix-hash', async () => {
    const name = fc.stringMatching(/^[a-zA-Z0-9._-]{1,8}$/).filter((n) => n !== '.' && n !== '..');
    const tree = fc.letrec<{ node: NarNode }>((tie) => ({
      node: fc.oneof(
        { depthSize: 'small' },
        fc
          .record({
            type: fc.constant('regular' as const),
            executable: fc.boolean(),
            contents: fc.uint8Array({ maxLength: 40 }),
          })
          .map((r) => ({
            type: 'regular' as const,
            executable: r.executable,
            size: r.contents.length,
            contents: Buffer.from(r.contents),
          })),
        fc.record({ type: fc.constant('symlink' as const), target: name }),
        fc
          .dictionary(name, tie('node'), { maxKeys: 4 })
          .map((entries) => ({ type: 'directory' as const, entries })),
      ),
    }));
    await fc.assert(
      fc.asyncProperty(fc.dictionary(name, tree.node, { maxKeys: 5 }), async (entries) => {
        const root = await mkdtemp(join(tmpdir(), 'lading-narp-'));
        const write = async (dir: string, es: Record<string, NarNode>): Promise<void> => {
          for (const [n, node] of Object.entries(es)) {
            const p = join(dir, n);
            if (node.type === 'directory') {
              await mkdir(p);
              await write(p, node.entries);
            } else if (node.type === 'symlink') await symlink(node.target, p);
            else {
              await writeFile(p, node.contents as Buffer);
              await chmod(p, node.executable ? 0o755 : 0o644);
            }
          }
        };
        const t = join(root, 't');
        await mkdir(t);
        await write(t, entries);
        const ours = await collect(narFromTree({ type: 'directory', entries }));
        assert.ok(ours.equals(await nixBytes('nix-store', ['--dump', t])));
      }),
      { numRuns: 15 },
    );
  });
});

describe('store paths', () => {
  test('flat and recursive fixed-output paths equal nix-store --print-fixed-path and --add-fixed', async () => {
    const root = await mkdtemp(join(tmpdir(), 'lading-sp-'));
    const file = join(root, 'docker-image-x.tar');
    const data = randomBytes(1000);
    await writeFile(file, data);
    const flat = sha256Hash(data);
    const name = 'docker-image-x.tar';
    const ours = makeFixedOutputPath({ method: 'flat', hash: flat, name });
    assert.equal(
      ours,
      await nix('nix-store', ['--print-fixed-path', 'sha256', flat.bytes.toString('hex'), name]),
    );
    assert.equal(ours, await nix('nix-store', ['--add-fixed', 'sha256', file]));
    const dir = join(root, 'dirpath');
    await mkdir(dir);
    await writeFile(join(dir, 'f'), 'content');
    const { hash } = await narHashOfPath(dir);
    const rec = makeFixedOutputPath({ method: 'recursive', hash, name: 'dirpath' });
    assert.equal(
      rec,
      await nix('nix-store', [
        '--print-fixed-path',
        '--recursive',
        'sha256',
        hash.bytes.toString('hex'),
        'dirpath',
      ]),
    );
    assert.equal(rec, await nix('nix-store', ['--add-fixed', '--recursive', 'sha256', dir]));
    // sha1 flat uses the output:out form too.
    const s1 = { algo: 'sha1' as const, bytes: randomBytes(20) };
    assert.equal(
      makeFixedOutputPath({ method: 'flat', hash: s1, name: 'n' }),
      await nix('nix-store', ['--print-fixed-path', 'sha1', s1.bytes.toString('hex'), 'n']),
    );
  });

  test('fixName and store-name rules', () => {
    assert.equal(fixName('docker-image-ghcr.io/org/app-1:2.tar'), 'docker-image-ghcr.io-org-app-1-2.tar');
    assert.throws(
      () => makeFixedOutputPath({ method: 'flat', hash: sha256Hash(''), name: 'a:b' }),
      (e: unknown) => isLadingError(e),
    );
    assert.throws(
      () => makeFixedOutputPath({ method: 'flat', hash: sha256Hash(''), name: '.hidden' }),
      (e: unknown) => isLadingError(e),
    );
  });
});

describe('Nix expressions', () => {
  test('nixString round-trips through nix-instantiate --eval for awkward strings', async () => {
    const samples = [
      'plain',
      'quote " and \\ backslash',
      '${interp} and $x and $${y}',
      'line\nbreak\ttab\rcr',
      'ünï ☃',
      "''",
      '$',
      '\\${',
    ];
    const expr = `[ ${samples.map(nixString).join(' ')} ]`;
    const out = await nix('nix-instantiate', ['--eval', '--strict', '--json', '--expr', expr]);
    assert.deepEqual(JSON.parse(out), samples);
  });

  test('property: random strings survive nix-instantiate (batched)', async () => {
    const strings = fc.sample(
      fc.string({ unit: 'binary', maxLength: 20 }).filter((s) => !s.includes('\0')),
      60,
    );
    const out = await nix('nix-instantiate', [
      '--eval',
      '--strict',
      '--json',
      '--expr',
      `[ ${strings.map(nixString).join(' ')} ]`,
    ]);
    assert.deepEqual(JSON.parse(out), strings);
  });

  test('nixValue prints attrsets Nix parses back', async () => {
    const v = {
      imageName: 'a"b',
      'odd-key': 1,
      'with space': true,
      list: ['x', null],
      nested: { in: 'rec' },
    };
    const out = await nix('nix-instantiate', ['--eval', '--strict', '--json', '--expr', nixValue(v)]);
    assert.deepEqual(JSON.parse(out), v);
  });
});
