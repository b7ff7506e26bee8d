/**
 * A layer whose tar ends inside an entry (cut short, or a size field that claims 8 GiB) is an
 * archive error naming the layer and the entry, not "cannot write …: Unexpected end of data";
 * nothing is left at the destination. The tars are GNU tar's, and GNU tar agrees they are cut.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { requireBin, run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { buildLayout } from '../helpers/images.ts';

let work: string;
const tars: Record<string, Buffer> = {};

/** A ustar header's size field set to `octal` (11 digits), with its checksum made right again. */
function withSize(tar: Buffer, octal: string): Buffer {
  const t = Buffer.from(tar);
  t.write(`${octal}\0`, 124, 'latin1');
  t.fill(' ', 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += t[i]!;
  t.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return t;
}

before(async () => {
  requireBin('tar');
  work = await mkdtemp(join(tmpdir(), 'lading-tarcut-'));
  await writeFile(join(work, 'f'), Buffer.alloc(100_000, 'lading '));
  const whole = (await run('tar', ['-C', work, '-cf', '-', 'f'])).stdout;
  tars.cut = whole.subarray(0, 20_000);
  tars['8 GiB size'] = withSize(whole, '77777777777');
  for (const [name, tar] of Object.entries(tars)) {
    const file = join(work, `${name.replace(/\W/g, '')}.tar`);
    await writeFile(file, tar);
    const r = spawnSync('tar', ['-tvf', file], { encoding: 'utf8' });
    assert.notEqual(r.status, 0, `GNU tar reads the ${name} tar as broken`);
    assert.match(r.stderr, /Unexpected EOF/, name);
  }
});

for (const name of ['cut', '8 GiB size']) {
  for (const compression of ['none', 'gzip'] as const) {
    test(`a ${name} tar (${compression}): unpack and extract fail with an archive error, nothing left`, async () => {
      const layout = await buildLayout({ layers: [{ entries: [], tar: tars[name]!, compression }] });
      const dir = await mkdtemp(join(work, 'out-'));
      const announced = name === 'cut' ? 100000 : 8589934591;
      for (const args of [
        ['unpack', `oci:${layout.dir}:latest`, join(dir, 'rootfs')],
        ['extract', `oci:${layout.dir}:latest`, '/f', '-o', join(dir, 'f')],
      ]) {
        const r = await runCli(args);
        assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
        assert.match(
          r.stderr,
          new RegExp(
            `layer 0.* ends inside "f" \\(its header announces ${announced} bytes\\): the tar is cut short`,
          ),
          args[0],
        );
        assert.doesNotMatch(r.stderr, /cannot write|Unexpected end of data|\n\s+at /, args[0]);
      }
      assert.deepEqual(await readdir(dir), []);
    });
  }
}
