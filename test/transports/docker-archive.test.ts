import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import type { Digest } from '../../src/digest/index.ts';
import { isLadingError } from '../../src/errors/index.ts';
import { decompress, GO_TAR_END, goTarHeader, goTarPadding } from '../../src/layers/index.ts';
import { parseReference } from '../../src/reference/index.ts';
import {
  type DockerArchiveInput,
  dockerArchiveChunks,
  dockerArchiveHash,
  writeDockerArchive,
} from '../../src/transports/docker-archive/index.ts';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type BuiltLayout, buildLayout, type ImageSpec, prng, smallImage } from '../helpers/images.ts';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function inputFor(lay: BuiltLayout, repoTags: string[], i = 0): DockerArchiveInput {
  const im = lay.images[i]!;
  return {
    configBytes: im.config,
    layers: im.layers.map((l) => ({
      diffId: l.diffId as Digest,
      open: async () => decompress(createReadStream(join(lay.dir, 'blobs', 'sha256', l.digest.slice(7)))),
    })),
    repoTags,
  };
}

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

async function skopeoArchive(lay: BuiltLayout, nameTag?: string): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'lading-skopeo-'));
  const out = join(dir, 'a.tar');
  await run('skopeo', [
    'copy',
    '--insecure-policy',
    '-q',
    `oci:${lay.dir}:${lay.tag}`,
    `docker-archive:${out}${nameTag ? `:${nameTag}` : ''}`,
  ]);
  return readFile(out);
}

async function assertSame(ours: Buffer, theirs: Buffer, what: string): Promise<void> {
  if (ours.equals(theirs)) return;
  let i = 0;
  while (i < ours.length && ours[i] === theirs[i]) i++;
  assert.fail(
    `${what}: archives differ at byte ${i} (block ${Math.floor(i / 512)}); lengths ${ours.length} vs ${theirs.length}`,
  );
}

function repoTag(nameTag: string): string {
  const r = parseReference(nameTag);
  return `${r.name}:${r.tag}`;
}

const cases: [string, ImageSpec][] = [
  ['one layer', { layers: [{ entries: [{ path: 'a', content: 'a' }] }] }],
  ['three layers', smallImage('three')],
  [
    'the same layer twice',
    (() => {
      const s = smallImage('twice');
      s.layers.push(s.layers[0]!);
      return s;
    })(),
  ],
  [
    'a config with HTML characters, U+2028, unknown keys, odd numbers and no container_config',
    {
      layers: [{ entries: [{ path: 'x', content: 'x' }] }],
      config: { Env: ['A=<b>&c', 'L=\u2028\u2029', 'Q="quoted"'], Labels: { 'a&b': '<x>' } },
      extra: { docker_version: '24.0.7', weird: 1.5e3, nested: { z: [1, 2.5, null] } },
    },
  ],
  [
    'uncompressed layers',
    {
      layers: [
        { entries: [{ path: 'u', content: 'u'.repeat(3000) }], compression: 'none' },
        { entries: [{ path: 'v', content: 'v' }], compression: 'none' },
      ],
    },
  ],
];

describe('docker-archive byte-identical to skopeo', () => {
  test('lading copy to docker-archive: a damaged layer read ahead fails cleanly and leaves no file', async () => {
    const lay = await buildLayout(smallImage('damaged-ahead'));
    const broken = join(await mkdtemp(join(tmpdir(), 'lading-damaged-')), 'layout');
    await cp(lay.dir, broken, { recursive: true });
    // The second layer is decompressed while the first is written: its failure comes early.
    const layer = lay.images[0]!.layers[1]!;
    const path = join(broken, 'blobs', 'sha256', layer.digest.slice(7));
    const bytes = await readFile(path);
    bytes[bytes.length - 20]! ^= 0xff;
    await writeFile(path, bytes);
    const out = join(broken, '..', 'a.tar');
    const r = await runCli(['copy', '-q', `oci:${broken}:${lay.tag}`, `docker-archive:${out}:x:1`]);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /^lading: error: (digest mismatch|cannot decompress layer sha256:[0-9a-f]{64}: .*damaged)/m,
    );
    assert.equal(existsSync(out), false, 'no archive left');
  });

  for (const [what, compression] of [
    ['gzip layers (sizes from their trailers)', 'gzip'],
    ['a gzip layer in two members (its trailer understates the size: measured instead)', 'gzip-2'],
    ['uncompressed layers (sizes from the descriptors)', 'none'],
  ] as const) {
    test(`lading copy to docker-archive: ${what}`, async () => {
      const lay = await buildLayout({
        layers: [
          { entries: [{ path: 'big', content: prng(`copy-${compression}`, 200_000) }], compression },
          { entries: [{ path: 'small', content: 'small' }], compression },
        ],
      });
      const theirs = await skopeoArchive(lay, 'copied:1');
      const out = join(await mkdtemp(join(tmpdir(), 'lading-copy-archive-')), 'a.tar');
      const r = await runCli([
        'copy',
        '-q',
        '--no-cache',
        `oci:${lay.dir}:${lay.tag}`,
        `docker-archive:${out}:copied:1`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      await assertSame(await readFile(out), theirs, what);
    });
  }
  for (const [what, spec] of cases) {
    test(what, async () => {
      const lay = await buildLayout(spec);
      const theirs = await skopeoArchive(lay, 'alpine:latest');
      const ours = await collect(dockerArchiveChunks(inputFor(lay, [repoTag('alpine:latest')])));
      await assertSame(ours, theirs, what);
      assert.deepEqual(await dockerArchiveHash(inputFor(lay, [repoTag('alpine:latest')])), {
        sha256: sha(theirs),
        size: theirs.length,
      });
    });
  }

  test('name forms: host:port paths, docker.io names, and no name at all', async () => {
    const lay = await buildLayout(smallImage('names'));
    for (const nameTag of [
      'localhost:5000/foo/bar:v1',
      'docker.io/library/x:1',
      'user/app:2.0',
      `127.0.0.1:5000/${'long-name/'.repeat(12)}app:tag`,
    ]) {
      const theirs = await skopeoArchive(lay, nameTag);
      await assertSame(
        await collect(dockerArchiveChunks(inputFor(lay, [repoTag(nameTag)]))),
        theirs,
        nameTag,
      );
    }
    await assertSame(
      await collect(dockerArchiveChunks(inputFor(lay, []))),
      await skopeoArchive(lay),
      'no name',
    );
  });

  test('zstd layers give the same archive as their gzip twin (layers are stored uncompressed)', async () => {
    const base = smallImage('zstd');
    const gz = await buildLayout(base);
    const zs = await buildLayout({
      ...base,
      layers: base.layers.map((l) => ({ ...l, compression: 'zstd' as const })),
    });
    const theirs = await skopeoArchive(gz, 'z:1');
    await assertSame(await collect(dockerArchiveChunks(inputFor(zs, [repoTag('z:1')]))), theirs, 'zstd');
  });

  test('a layer that does not match its diffID fails before the archive ends, and leaves no file', async () => {
    const lay = await buildLayout(smallImage('tamper'));
    const input = inputFor(lay, []);
    const good = input.layers[1]!;
    input.layers[1] = {
      diffId: good.diffId,
      size: 62,
      open: async () => Readable.from([Buffer.alloc(62, 1)]),
    };
    const dir = await mkdtemp(join(tmpdir(), 'lading-arch-'));
    const path = join(dir, 'out.tar');
    await assert.rejects(
      writeDockerArchive(input, path),
      (e: unknown) => isLadingError(e) && e.code === 'E_DIGEST_MISMATCH' && e.message.includes(good.diffId),
    );
    assert.equal(existsSync(path), false);
    // An existing file is never overwritten.
    const ok = join(dir, 'ok.tar');
    await writeDockerArchive(inputFor(lay, []), ok);
    await assert.rejects(
      writeDockerArchive(inputFor(lay, []), ok),
      (e: unknown) => isLadingError(e) && e.code === 'E_EXISTS',
    );
  });
});

describe('Go tar headers', () => {
  test("nix2container's upstream test vector (tar of a small tree) hashes to 1ea63d00…, 4096 bytes", () => {
    const h = (name: string, typeflag: '0' | '2' | '5', mode: number, size = 0, linkname?: string) =>
      goTarHeader({ name, typeflag, mode, size, uname: 'root', gname: 'root', mtime: 1, linkname });
    const content = Buffer.from('content file1');
    const tar = Buffer.concat([
      h('..', '5', 0o755),
      h('../data', '5', 0o755),
      h('../data/tar-directory', '5', 0o755),
      h('../data/tar-directory/file1', '0', 0o644, content.length),
      content,
      goTarPadding(content.length),
      h('../data/tar-directory/symlink', '2', 0o777, 0, 'file1'),
      GO_TAR_END,
    ]);
    assert.equal(tar.length, 4096);
    assert.equal(sha(tar), 'sha256:1ea63d00b937dc24c711265b80444cc9e7e63751fb7f349b160be61d31381983');
  });

  test('long names use USTAR prefix splitting, then PAX; GNU tar reads them back', async () => {
    const names = [
      `${'d'.repeat(60)}/${'e'.repeat(60)}/file.txt`,
      `${'x'.repeat(120)}/${'y'.repeat(120)}`,
      'ünï/ćode.txt',
    ];
    const parts: Buffer[] = [];
    for (const n of names)
      parts.push(
        goTarHeader({ name: n, typeflag: '0', mode: 0o644, size: 1 }),
        Buffer.from('z'),
        goTarPadding(1),
      );
    parts.push(GO_TAR_END);
    const dir = await mkdtemp(join(tmpdir(), 'lading-gotar-'));
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(dir, 't.tar'), Buffer.concat(parts));
    const listed = (await run('tar', ['-tf', join(dir, 't.tar')])).stdout.toString().trim().split('\n');
    assert.deepEqual(listed, names);
  });
});
