import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { fitLabelled, fitLine, formatBytes, Progress } from '../../src/cli/render/progress.ts';
import type { Digest } from '../../src/digest/index.ts';
import { runCli } from '../helpers/cli.ts';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;

function capture(): { out: PassThrough; text: () => string } {
  const out = new PassThrough();
  const parts: Buffer[] = [];
  out.on('data', (c: Buffer) => parts.push(c));
  return { out, text: () => Buffer.concat(parts).toString('utf8') };
}

test('without a terminal: periodic plain lines with totals, a final line, no escape codes', async () => {
  const { out, text } = capture();
  const p = new Progress({ out, tty: false, intervalMs: 20, label: 'copy' });
  p.onEvent({ type: 'blob-start', digest: d('a'), size: 2048, mediaType: 'x' });
  p.onEvent({ type: 'blob-progress', digest: d('a'), bytes: 1024 });
  p.onEvent({ type: 'blob-skip', digest: d('b'), size: 1024, reason: 'exists' });
  await new Promise((r) => setTimeout(r, 60));
  p.onEvent({ type: 'blob-done', digest: d('a'), size: 2048 });
  p.finish();
  p.finish();
  const lines = text().trim().split('\n');
  assert.ok(lines.length >= 2, text());
  assert.match(lines.at(-1)!, /^copy: 3\.0 KiB \/ 3\.0 KiB \(2\/2 blobs/);
  assert.doesNotMatch(lines.at(-2)!, /\(2\/2 blobs/, 'the final line once, however often finish() is called');
  assert.doesNotMatch(text(), /\x1b\[/);
});

test('on a terminal: blobs in transfer redrawn in place, then only the summary; quiet prints nothing', async () => {
  const tty = capture();
  const p = new Progress({ out: tty.out, tty: true, columns: () => 60, label: 'copy' });
  p.onEvent({ type: 'blob-start', digest: d('c'), size: 100, mediaType: 'x' });
  p.onEvent({ type: 'blob-progress', digest: d('c'), bytes: 50 });
  await new Promise((r) => setTimeout(r, 450));
  assert.match(tty.text(), /cccccccccccc \[=+ +\] +50%/);
  p.onEvent({ type: 'blob-done', digest: d('c'), size: 100 });
  p.finish();
  // Each redraw goes back over the lines it drew and clears what is below.
  assert.match(
    tty.text(),
    /\r\x1b\[2A\x1b\[2Kcopy: 100 B \/ 100 B \(1\/1 blobs, [\d.]+ (B|KiB)\/s, \d\.\ds\)\n\x1b\[J$/,
  );
  const q = capture();
  const quiet = new Progress({ out: q.out, tty: false, quiet: true, intervalMs: 5 });
  quiet.onEvent({ type: 'blob-start', digest: d('e'), size: 1, mediaType: 'x' });
  await new Promise((r) => setTimeout(r, 20));
  quiet.finish();
  assert.equal(q.text(), '');
});

test('sizes and rates: one decimal place at most', () => {
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(811.7073170731708), '811.7 B');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(3 * 1024 * 1024 * 1024 + 1), '3.0 GiB');
});

test('lines fit the terminal: the label gives way before the numbers', () => {
  assert.equal(fitLine('abcdef', 80), 'abcdef');
  assert.equal(fitLine('abcdefghij', 6), 'abcd…');
  const rest = '1.0 MiB of at least 5.0 MiB (1/6 blobs, 1.2 MiB/s, 0.4s)';
  const label = 'docker://127.0.0.1:5000/a/long/name:1 → oci:/tmp/a/long/layout/path:1';
  const line = fitLabelled(label, rest, 80);
  assert.equal([...line].length, 79);
  assert.ok(line.endsWith(`: ${rest}`), line);
  assert.ok(line.startsWith('docker://') && line.includes('…') && line.includes('path:1: '), line);
  assert.equal(fitLabelled('short', rest, 120), `short: ${rest}`);
});

test('every command has --help with an example', async () => {
  for (const cmd of [
    'inspect',
    'digest',
    'tags',
    'blob',
    'login',
    'logout',
    'prefetch',
    'lock',
    'copy',
    'pull',
    'unpack',
    'extract',
    'export',
    'cache',
  ]) {
    const r = await runCli([cmd, '--help']);
    assert.equal(r.code, 0, cmd);
    assert.match(r.stdout.toString(), /Examples?:/, `${cmd} --help has no example`);
  }
});
