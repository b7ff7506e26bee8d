/**
 * The synchronous inflater on gzip as other tools make and read it: GNU gzip's files (a stored
 * name, two members, --rsyncable), every optional header field, members split anywhere, and every
 * error zlib's gunzip gives. The trailer's CRC-32 and length are checked, as skopeo (Go's gzip
 * reader) checks them: a layer lading pins must be one that dockerTools.pullImage can fetch.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { crc32, deflateRawSync, gunzipSync, gzipSync } from 'node:zlib';
import { isLadingError } from '../../src/errors/index.ts';
import { SyncInflater } from '../../src/layers/inflate-sync.ts';

/** Inflates `data` fed in pieces of `size()` bytes; `pauseEvery` blocks the consumer asks to pause. */
function inflate(data: Buffer, size: () => number, pauseEvery = 0): Buffer {
  const inf = new SyncInflater('gzip', 'the test layer');
  const out: Buffer[] = [];
  let blocks = 0;
  const onOut = (b: Buffer): boolean => {
    out.push(Buffer.from(b));
    blocks++;
    return pauseEvery === 0 || blocks % pauseEvery !== 0;
  };
  for (let off = 0; off < data.length; ) {
    const len = Math.max(1, Math.min(data.length - off, size()));
    let piece: Uint8Array | undefined = data.subarray(off, off + len);
    off += len;
    // A paused write gives back what it did not take: fed again, as the layer stream does.
    while (piece?.length) piece = inf.write(piece, onOut);
  }
  inf.end((b) => void out.push(Buffer.from(b)));
  return Buffer.concat(out);
}

const splits: [string, () => number][] = [
  ['1-7 bytes', () => 1 + Math.floor(Math.random() * 7)],
  ['up to 64 KiB', () => 1 + Math.floor(Math.random() * 65536)],
  ['1 MiB', () => 1 << 20],
];

function errorOf(f: () => unknown): string {
  try {
    f();
    return 'no error';
  } catch (err) {
    return (err as Error).message;
  }
}

test('GNU gzip files (a stored name, two members, --rsyncable) inflate as gzip -d reads them', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lading-gzip-'));
  try {
    const a = Buffer.concat([randomBytes(200_000), Buffer.alloc(700_000, 'lading layer ')]);
    const b = Buffer.alloc(300_000, 'second member ');
    writeFileSync(join(dir, 'a.tar'), a);
    writeFileSync(join(dir, 'b.tar'), b);
    // gzip keeps the file's name in the header (FNAME) unless told -n.
    execFileSync('gzip', ['-k', '-9', join(dir, 'a.tar')]);
    execFileSync('gzip', ['-k', '--rsyncable', join(dir, 'b.tar')]);
    const one = readFileSync(join(dir, 'a.tar.gz'));
    assert.equal(one[3]! & 8, 8, 'gzip stored the name');
    const two = Buffer.concat([one, readFileSync(join(dir, 'b.tar.gz'))]);
    writeFileSync(join(dir, 'two.gz'), two);
    const want = execFileSync('gzip', ['-dc', join(dir, 'two.gz')], { maxBuffer: 1 << 24 });
    assert.equal(want.length, a.length + b.length);
    for (const [name, size] of splits) {
      assert.ok(inflate(one, size).equals(a), `one member, pieces of ${name}`);
      assert.ok(inflate(two, size).equals(want), `two members, pieces of ${name}`);
      assert.ok(inflate(two, size, 2).equals(want), `two members, pieces of ${name}, paused`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every optional header field (extra, name, comment, header CRC) is read as zlib reads it', () => {
  const data = Buffer.alloc(100_000, 'fields ');
  const extra = Buffer.concat([Buffer.from([5, 0]), Buffer.from('ab\0cd')]);
  const header = Buffer.concat([
    Buffer.from([0x1f, 0x8b, 8, 2 | 4 | 8 | 16, 0, 0, 0, 0, 0, 3]),
    extra,
    Buffer.from('name.tar\0a comment\0'),
  ]);
  const hcrc = Buffer.alloc(2);
  hcrc.writeUInt16LE(crc32(header) & 0xffff);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc32(data), 0);
  trailer.writeUInt32LE(data.length, 4);
  const member = Buffer.concat([header, hcrc, deflateRawSync(data), trailer]);
  assert.ok(gunzipSync(member).equals(data), 'zlib reads the hand-made member');
  for (const [name, size] of splits) assert.ok(inflate(member, size).equals(data), `pieces of ${name}`);
});

test('random members at every compression level, split anywhere, match zlib', () => {
  for (let i = 0; i < 40; i++) {
    const members = Array.from({ length: 1 + (i % 4) }, (_, m) => {
      const size = [0, 1, 100, 5000, 300_000][(i + m) % 5]!;
      return (i + m) % 3 === 0 ? randomBytes(size) : Buffer.alloc(size, `x${i}y${m}`);
    });
    const gz = Buffer.concat(members.map((d, m) => gzipSync(d, { level: (i + m) % 10 })));
    const want = gunzipSync(gz);
    for (const [name, size] of splits)
      assert.ok(inflate(gz, size, i % 3).equals(want), `case ${i}, pieces of ${name}`);
  }
});

test('cut, damaged or followed by garbage: the error zlib gives, as E_ARCHIVE', () => {
  const g = gzipSync(Buffer.alloc(100_000, 'abc'));
  const cases: [string, Buffer][] = [
    ['cut in the deflate data', g.subarray(0, 40)],
    ['cut in the trailer', g.subarray(0, g.length - 3)],
    ['cut in the header', g.subarray(0, 5)],
    ['garbage after the member', Buffer.concat([g, Buffer.from('garbage')])],
    ['reserved header flags', Buffer.concat([g.subarray(0, 3), Buffer.from([0x80]), g.subarray(4)])],
    ['not deflate', Buffer.concat([g.subarray(0, 2), Buffer.from([7]), g.subarray(3)])],
  ];
  for (const [name, bad] of cases) {
    const zlibSays = errorOf(() => gunzipSync(bad));
    assert.notEqual(zlibSays, 'no error', name);
    try {
      inflate(bad, () => 1000);
      assert.fail(`${name}: no error`);
    } catch (err) {
      assert.ok(isLadingError(err) && err.code === 'E_ARCHIVE', `${name}: ${err}`);
      assert.match(err.message, new RegExp(`: ${zlibSays} \\(damaged, or not gzip\\)$`), name);
    }
  }
  // Zeros after the last member are ignored, as zlib's gunzip ignores them.
  const padded = Buffer.concat([g, Buffer.alloc(512)]);
  assert.ok(inflate(padded, () => 1000).equals(gunzipSync(padded)));
});

test("a wrong CRC-32 or length in the trailer is refused, as skopeo (Go's gzip reader) refuses it", () => {
  const data = Buffer.alloc(50_000, 'crc ');
  const crc = gzipSync(data);
  crc.writeUInt32LE((crc.readUInt32LE(crc.length - 8) ^ 1) >>> 0, crc.length - 8);
  const size = gzipSync(data);
  size.writeUInt32LE(data.length + 1, size.length - 4);
  for (const [name, bad] of [
    ['CRC-32', crc],
    ['length', size],
  ] as const) {
    const zlibSays = errorOf(() => gunzipSync(bad));
    assert.notEqual(zlibSays, 'no error', name);
    assert.match(
      errorOf(() => inflate(bad, () => 4096)),
      new RegExp(`: ${zlibSays} \\(damaged, or not gzip\\)$`),
      name,
    );
  }
});
