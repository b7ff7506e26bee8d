import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import fc from 'fast-check';
import { readTar } from '../../src/layers/index.ts';
import { type EntrySpec, layerTar } from '../helpers/images.ts';

/** The bytes cut at the given points: the reader must not depend on where chunks end. */
function chunked(bytes: Buffer, cuts: number[]): Readable {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let prev = 0;
  for (const c of [...at, bytes.length]) {
    if (c > prev) parts.push(bytes.subarray(prev, c));
    prev = c;
  }
  return Readable.from(parts);
}

interface Read {
  name: string | undefined;
  type: string;
  uid: number;
  mtime: number;
  xattrs: Record<string, string>;
  body: string;
}

async function readAll(stream: Readable): Promise<Read[]> {
  const out: Read[] = [];
  for await (const e of readTar(stream, 'test layer')) {
    const chunks: Buffer[] = [];
    for await (const c of e.body) chunks.push(c as Buffer);
    out.push({
      name: e.name,
      type: e.type,
      uid: e.uid,
      mtime: e.mtime.getTime(),
      xattrs: Object.fromEntries(Object.entries(e.xattrs).map(([k, v]) => [k, v.toString('hex')])),
      body: Buffer.concat(chunks).toString('hex'),
    });
  }
  return out;
}

/** One PAX record, written here independently of lading's writer. */
function record(key: string, value: Buffer): Buffer {
  const rest = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let n = rest.length + 1;
  while (String(n).length + rest.length !== n) n = String(n).length + rest.length;
  return Buffer.concat([Buffer.from(String(n)), rest]);
}

/** A ustar header block of type `x` for a PAX body of `size` bytes. */
function paxHeader(size: number): Buffer {
  const b = Buffer.alloc(512);
  b.write('PaxHeaders/entry', 0);
  b.write('0000644\0', 100);
  b.write('0000000\0', 108);
  b.write('0000000\0', 116);
  b.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  b.write('00000000000\0', 136);
  b.write('x', 156);
  b.write('ustar\x0000', 257);
  b.fill(' ', 148, 156);
  const sum = b.reduce((a, x) => a + x, 0);
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return b;
}

const name = fc
  .array(fc.stringMatching(/^[a-zA-Z0-9._\u00e9\u30d5-]{1,40}$/), { minLength: 1, maxLength: 8 })
  .map((parts) => parts.join('/'))
  .filter((n) => !n.split('/').some((p) => p === '.' || p === '..' || p.startsWith('.wh.')));

test('property: entries, bodies and UTF-8 xattr values read back whatever the chunking (PAX long names, directories, links)', async () => {
  const entry: fc.Arbitrary<EntrySpec> = fc.oneof(
    fc.record({
      path: name,
      content: fc.uint8Array({ maxLength: 1500 }).map((a) => Buffer.from(a)),
      pax: fc.option(
        fc.dictionary(
          fc.stringMatching(/^user\.[a-z]{1,10}$/).map((k) => `SCHILY.xattr.${k}`),
          fc.string({ unit: 'grapheme', maxLength: 30 }),
          { minKeys: 1, maxKeys: 3 },
        ),
        { nil: undefined },
      ),
    }),
    fc.record({ path: name.map((n) => `${n}/`), type: fc.constant('directory' as const) }),
    fc.record({ path: name, type: fc.constant('symlink' as const), linkname: name }),
    fc.record({ path: name, type: fc.constant('link' as const), linkname: name }),
  );
  await fc.assert(
    fc.asyncProperty(
      fc.array(entry, { maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      async (entries, cuts) => {
        const bytes = await layerTar(entries.map((e) => (e.pax ? e : { ...e, pax: undefined })));
        const got = await readAll(chunked(bytes, cuts));
        assert.equal(got.length, entries.length);
        for (const [i, e] of entries.entries()) {
          assert.equal(got[i]!.name, e.path.replace(/\/$/, ''));
          const want = Object.fromEntries(
            Object.entries(e.pax ?? {}).map(([k, v]) => [
              k.slice('SCHILY.xattr.'.length),
              Buffer.from(v).toString('hex'),
            ]),
          );
          assert.deepEqual(got[i]!.xattrs, want);
          if ((e.type ?? 'file') === 'file')
            assert.equal(got[i]!.body, Buffer.from(e.content ?? '').toString('hex'));
        }
      },
    ),
    { numRuns: 150 },
  );
});

test('property: binary xattr values, PAX uid and sub-second mtime come out exactly, whatever the chunking', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.record({
          xattrs: fc.dictionary(
            fc.stringMatching(/^(user|security|trusted)\.[a-z]{1,12}$/),
            fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
            { maxKeys: 3 },
          ),
          uid: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
          ms: fc.integer({ min: 0, max: 4_000_000_000_000 }),
          size: fc.integer({ min: 0, max: 1200 }),
        }),
        { minLength: 1, maxLength: 6 },
      ),
      fc.array(fc.nat(), { maxLength: 20 }),
      async (specs, cuts) => {
        const parts: Buffer[] = [];
        for (const [i, s] of specs.entries()) {
          const body = Buffer.concat([
            record('uid', Buffer.from(String(s.uid))),
            record(
              'mtime',
              Buffer.from(`${Math.floor(s.ms / 1000)}.${String(s.ms % 1000).padStart(3, '0')}`),
            ),
            ...Object.entries(s.xattrs).map(([k, v]) => record(`SCHILY.xattr.${k}`, v)),
          ]);
          parts.push(paxHeader(body.length), body, Buffer.alloc((512 - (body.length % 512)) % 512));
          // The entry itself, plain ustar (tar-stream writes it; nothing of it needs PAX).
          parts.push(
            (await layerTar([{ path: `f${i}`, content: Buffer.alloc(s.size, i) }])).subarray(0, -1024),
          );
        }
        parts.push(Buffer.alloc(1024));
        const got = await readAll(chunked(Buffer.concat(parts), cuts));
        assert.deepEqual(
          got.map((g) => [g.name, g.uid, g.mtime, g.xattrs, g.body.length / 2]),
          specs.map((s, i) => [
            `f${i}`,
            s.uid,
            s.ms,
            Object.fromEntries(Object.entries(s.xattrs).map(([k, v]) => [k, v.toString('hex')])),
            s.size,
          ]),
        );
      },
    ),
    { numRuns: 150 },
  );
});
