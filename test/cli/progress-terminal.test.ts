import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { removeAtExit } from '../helpers/bins.ts';
import { LADING_BIN, runCli } from '../helpers/cli.ts';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.ts';
import { type BuiltLayout, bigImage, buildLayout, pushLayoutRaw } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';
import { runOnTerminal } from '../helpers/terminal.ts';

// What the progress display looks like on a real terminal (tmux, read back as the screen shows it)
// at 80 and 120 columns, and as plain lines in a log.

let reg: TestRegistry;
let proxy: FaultProxy;
let image: BuiltLayout;
let work: string;
const env = () => ({ HOME: '/nonexistent', PATH: process.env.PATH });

before(async () => {
  reg = await sharedRegistry('none');
  image = await buildLayout(bigImage(8), 'x');
  await pushLayoutRaw(image, reg, 'progress/a-rather-long-repository-name-for-the-label', '1');
  proxy = await startFaultProxy(reg.url);
  work = await mkdtemp(join(tmpdir(), 'lading-progress-'));
  removeAtExit(work);
});
after(async () => {
  await proxy.stop();
  await stopSharedRegistries();
});

const ref = () => `${proxy.host}/progress/a-rather-long-repository-name-for-the-label:1`;
/** Every blob download waits, so the display is redrawn many times while it runs. */
function slowBlobs(): void {
  proxy.clear();
  proxy.addRule({ method: 'GET', path: /\/blobs\//, delayMs: 700, times: 100 });
}
const summary = /\(\d+\/\d+ (blobs|layers), /;
const longRate = /\d\.\d{2,} (B|KiB|MiB|GiB)\/s/;

function checkScreens(screens: string[][], cols: number): void {
  for (const screen of screens) {
    const shown = screen.join('\n');
    // One live display: one summary line, never stale copies stacked above it.
    assert.ok(
      screen.filter((l) => summary.test(l)).length <= 1,
      `stacked lines at ${cols} columns:\n${shown}`,
    );
    assert.ok(screen.filter((l) => l.includes('a-rather-long')).length <= 1, `stale lines:\n${shown}`);
    assert.doesNotMatch(shown, longRate);
    for (const l of screen) assert.ok([...l].length < cols, `a line fills the width (${cols}): ${l}`);
    // While running, the total is what is known so far: said to be a lower bound.
    const line = screen.find((l) => summary.test(l));
    if (line && !screen.some((l) => l.startsWith('sha256:')))
      assert.match(line, /of at least|\/ [\d.]+ [KM]i?B \(\d+\/\d+/, line);
  }
}

describe('on a terminal', () => {
  for (const cols of [80, 120]) {
    test(`copy at ${cols} columns: one live display fitted to the width, one summary left`, async () => {
      slowBlobs();
      const dest = join(work, `copy-${cols}`);
      const r = await runOnTerminal(
        [
          process.execPath,
          LADING_BIN,
          'copy',
          '--jobs',
          '2',
          '--no-cache',
          `docker://${ref()}`,
          `oci:${dest}:1`,
        ],
        { cols, env: env() },
      );
      assert.equal(r.code, 0, r.final.join('\n'));
      checkScreens(r.screens, cols);
      const live = r.screens.filter((s) => s.some((l) => /\[=* *\] +\d+%/.test(l)));
      assert.ok(live.length >= 2, `the display was redrawn while copying: ${r.screens.length} screens`);
      assert.ok(
        r.screens.some((s) => s.some((l) => l.includes('of at least'))),
        'a running total says "of at least"',
      );
      // Left at the end: one summary (totals equal, every blob), then the digest on stdout.
      const rest = r.final;
      assert.equal(rest.length, 2, r.final.join('\n'));
      const total = image.images[0]!.layers.reduce((n, l) => n + l.size, 0) + image.images[0]!.config.length;
      const blobs = image.images[0]!.layers.length + 1;
      assert.match(
        rest[0]!,
        new RegExp(`\\((${blobs})/\\1 blobs, [\\d.]+ (B|KiB|MiB)/s, \\d+\\.\\ds\\)$`),
        rest[0],
      );
      assert.match(rest[0]!, /: ([\d.]+ MiB) \/ \1 \(/);
      assert.ok(rest[0]!.includes(`${(total / 1024 / 1024).toFixed(1)} MiB`), rest[0]);
      assert.equal(rest[1], image.digest);
    });
  }

  for (const what of ['unpack', 'export', 'extract'] as const) {
    test(`${what} at 80 columns shows the layers as they are read`, async () => {
      slowBlobs();
      const out = join(work, `${what}-out`);
      const args =
        what === 'unpack'
          ? [out]
          : what === 'export'
            ? ['-o', `${out}.tar`]
            : ['/data/l0/f0.bin', '-o', `${out}.bin`];
      const r = await runOnTerminal([process.execPath, LADING_BIN, what, '--no-cache', ref(), ...args], {
        cols: 80,
        env: env(),
      });
      assert.equal(r.code, 0, r.final.join('\n'));
      assert.ok(
        // Layers in transfer (bars), or a running summary redrawn as layers are read (a source that
        // reads ahead has the bytes before the layer is opened).
        r.screens.filter((s) => s.some((l) => /\[=* *\] +\d+%|of at least|\(\d+\/\d+ layers/.test(l)))
          .length >= 2,
        `no live display:\n${r.screens.map((s) => s.join('\n')).join('\n---\n')}`,
      );
      checkScreens(r.screens, 80);
      const last = r.final.filter((l) => summary.test(l));
      assert.equal(last.length, 1, r.final.join('\n'));
      assert.match(last[0]!, new RegExp(`^${what} `));
      assert.match(last[0]!, /\/5 layers, /);
    });
  }

  test('prefetch at 80 columns shows what it fetches, live, then one line', async () => {
    slowBlobs();
    const r = await runOnTerminal([process.execPath, LADING_BIN, 'prefetch', '--no-cache', ref()], {
      cols: 80,
      env: env(),
    });
    assert.equal(r.code, 0, r.final.join('\n'));
    const fetched = /^prefetch \S+: [\d.]+ (B|KiB|MiB) fetched \([\d.]+ (B|KiB|MiB)\/s, \d+\.\ds\)$/;
    const live = r.screens.filter((s) => s.some((l) => fetched.test(l)) && !s.some((l) => l.startsWith('{')));
    assert.ok(live.length >= 2, `no live display:\n${r.screens.map((s) => s.join('\n')).join('\n---\n')}`);
    for (const screen of r.screens) {
      // One progress line, fitted (prefetch's own report below it may wrap: it is not redrawn).
      const lines = screen.filter((l) => fetched.test(l));
      assert.ok(lines.length <= 1, screen.join('\n'));
      for (const l of lines) assert.ok([...l].length < 80, l);
    }
    const total = image.images[0]!.layers.reduce((n, l) => n + l.size, 0) + image.images[0]!.config.length;
    assert.equal(r.final.filter((l) => fetched.test(l)).length, 1, r.final.join('\n'));
    assert.ok(
      r.final.some((l) => l.includes(`: ${(total / 1024 / 1024).toFixed(1)} MiB fetched`)),
      r.final.join('\n'),
    );
  });
});

describe('without a terminal', () => {
  test('unpack, export and extract end with a plain summary line; -q prints nothing', async () => {
    for (const [what, args] of [
      ['unpack', [join(work, 'plain-rootfs')]],
      ['export', ['-o', join(work, 'plain.tar')]],
      ['extract', ['/usr/bin/tool', '-o', join(work, 'plain-tool')]],
    ] as const) {
      const r = await runCli(
        [what, '--no-cache', `${reg.host}/progress/a-rather-long-repository-name-for-the-label:1`, ...args],
        {
          env: env(),
        },
      );
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stderr.split('\n').filter((l) => summary.test(l));
      assert.equal(lines.length, 1, r.stderr);
      assert.match(
        lines[0]!,
        new RegExp(
          `^${what} \\S+: [\\d.]+ (B|KiB|MiB) (/|of at least) [\\d.]+ (B|KiB|MiB) \\(\\d/[15] layers, `,
        ),
      );
      assert.doesNotMatch(r.stderr, /\x1b\[/);
    }
    const q = await runCli(
      [
        '-q',
        'unpack',
        '--no-cache',
        `${reg.host}/progress/a-rather-long-repository-name-for-the-label:1`,
        join(work, 'quiet-rootfs'),
      ],
      { env: env() },
    );
    assert.equal(q.code, 0, q.stderr);
    assert.equal(q.stderr, '');
  });
});
