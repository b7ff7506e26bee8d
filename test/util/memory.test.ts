import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

const memory = join(import.meta.dirname, '..', '..', 'src', 'util', 'memory.ts');

/** Runs a program with --trace-gc; returns how many collections gc() forced ("testing"). */
function forcedCollections(program: string): number {
  const r = spawnSync(process.execPath, ['--trace-gc', '--input-type=module', '-e', program], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => /Scavenge|Mark-Compact/.test(l) && /testing/.test(l)).length;
}

// 40 MiB of short-lived Buffers in one synchronous stretch: the check's timer cannot run.
const churn = (report: boolean) => `
  import { keepBufferMemoryLow, noteBufferChurn } from ${JSON.stringify(memory)};
  keepBufferMemoryLow(1 << 20, 3_600_000);
  let keep = 0;
  for (let i = 0; i < 40; i++) {
    const b = Buffer.allocUnsafe(1 << 20);
    keep += b.length;
    ${report ? 'noteBufferChurn(b.length);' : ''}
  }
  process.exit(keep === 40 << 20 ? 0 : 1);
`;

test('noteBufferChurn runs the memory check where its timer cannot', () => {
  assert.equal(forcedCollections(churn(false)), 0);
  assert.ok(forcedCollections(churn(true)) >= 5);
});

test('noteBufferChurn does nothing unless keepBufferMemoryLow was called', () => {
  const program = `
    import { noteBufferChurn } from ${JSON.stringify(memory)};
    for (let i = 0; i < 40; i++) noteBufferChurn(Buffer.allocUnsafe(1 << 20).length);
  `;
  assert.equal(forcedCollections(program), 0);
});
