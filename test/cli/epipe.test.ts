import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BlobCache } from '../../src/cache/index.ts';
import { sha256 } from '../../src/digest/index.ts';
import { removeAtExit } from '../helpers/bins.ts';
import { runCliProcess } from '../helpers/cli.ts';
import { buildLayout, pushLayoutRaw, smallImage } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

// `lading … | head -1`: the reader closes the pipe early. The process must end quietly (status 0,
// nothing on stderr), never with Node's "Unhandled 'error' event" stack trace.

let reg: TestRegistry;
let cacheDir: string;
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

before(async () => {
  reg = await sharedRegistry('none');
  const layout = await buildLayout(smallImage('epipe'), 'a');
  await pushLayoutRaw(layout, reg, 'epipe/app', 'a');
  await pushLayoutRaw(layout, reg, 'epipe/app', 'b');
  cacheDir = await mkdtemp(join(tmpdir(), 'lading-epipe-'));
  removeAtExit(cacheDir);
  const cache = new BlobCache(cacheDir);
  for (let i = 0; i < 50; i++) {
    const data = Buffer.from(`blob ${i}`);
    await cache.write(sha256(data), [data], data.length);
  }
});
after(() => stopSharedRegistries());

for (const [what, args] of [
  ['--help', ['--help']],
  ['a subcommand --help', ['cache', '--help']],
  ['cache ls', () => ['cache', 'ls', '--cache-dir', cacheDir]],
  ['lock ls', ['lock', 'ls', '--file', join(repoRoot, 'lading.lock.json')]],
  ['tags', () => ['tags', '--tls-verify=false', `${reg.host}/epipe/app`]],
] as const) {
  test(`${what} into a closed pipe ends quietly`, async () => {
    const argv = typeof args === 'function' ? args() : [...args];
    // The same command with a reader, so the test knows it has something to write.
    const full = await runCliProcess(argv);
    assert.equal(full.code, 0, full.stderr);
    assert.ok(full.stdout.length > 0, `${what} printed nothing`);
    const r = await runCliProcess(argv, { closeStdout: true });
    assert.equal(r.stderr, '', `${what}: stderr says ${r.stderr}`);
    assert.equal(r.code, 0);
  });
}
