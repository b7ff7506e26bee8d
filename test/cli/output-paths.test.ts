import assert from 'node:assert/strict';
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { removeAtExit, requireBin, run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.ts';
import { type BuiltLayout, buildLayout, pushLayoutRaw, smallImage } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

// The rule for paths a command writes (README, "Output paths"): missing parent directories are
// created by every command; a parent that is a file, or a destination of the other kind, is a
// clear error before anything is downloaded.

let reg: TestRegistry;
let proxy: FaultProxy;
let image: BuiltLayout;
let work: string;
let ref: string;
const env = () => ({ HOME: '/nonexistent', PATH: process.env.PATH });
const skopeo = () => requireBin('skopeo');

before(async () => {
  reg = await sharedRegistry('none');
  image = await buildLayout(smallImage('paths'), 'v1');
  await pushLayoutRaw(image, reg, 'paths/app', 'v1');
  proxy = await startFaultProxy(reg.url);
  ref = `${proxy.host}/paths/app:v1`;
  work = await mkdtemp(join(tmpdir(), 'lading-paths-'));
  removeAtExit(work);
  await writeFile(join(work, 'afile'), 'precious\n');
});
after(async () => {
  await proxy.stop();
  await stopSharedRegistries();
});

/** `--no-cache` is an option of the subcommand: put it after the command's name. */
const cmd = (name: string, ...rest: string[]) =>
  runCli([name, '-q', '--no-cache', ...rest], { env: env(), cwd: work });

test('every command creates the missing parents of what it writes', async () => {
  const checks: [string, () => Promise<void>][] = [
    [
      'export -o',
      async () => {
        const r = await cmd('export', ref, '-o', 'e1/sub/fs.tar');
        assert.equal(r.code, 0, r.stderr);
        const t = await run(requireBin('tar'), ['-tf', join(work, 'e1/sub/fs.tar')]);
        assert.match(t.stdout.toString(), /usr\/bin\/hello/);
      },
    ],
    [
      'extract -o FILE',
      async () => {
        const r = await cmd('extract', ref, '/usr/bin/hello', '-o', 'e2/sub/hello');
        assert.equal(r.code, 0, r.stderr);
        assert.equal(await readFile(join(work, 'e2/sub/hello'), 'utf8'), '#!/bin/sh\necho hello\n');
      },
    ],
    [
      'extract -o DIR (several paths)',
      async () => {
        const r = await cmd('extract', ref, '/usr/bin/hello', '/etc/os-release', '-o', 'e3/sub');
        assert.equal(r.code, 0, r.stderr);
        assert.equal(await readFile(join(work, 'e3/sub/os-release'), 'utf8'), 'ID=paths\n');
      },
    ],
    [
      'copy oci-archive:',
      async () => {
        const r = await cmd('copy', `docker://${ref}`, 'oci-archive:e4/sub/x.tar');
        assert.equal(r.code, 0, r.stderr);
        const s = await run(skopeo(), ['inspect', '--raw', `oci-archive:${join(work, 'e4/sub/x.tar')}`]);
        assert.equal(s.code, 0);
      },
    ],
    [
      'copy docker-archive:',
      async () => {
        const r = await cmd('copy', `docker://${ref}`, 'docker-archive:e5/sub/x.tar:paths/app:v1');
        assert.equal(r.code, 0, r.stderr);
        const s = await run(skopeo(), ['inspect', '--raw', `docker-archive:${join(work, 'e5/sub/x.tar')}`]);
        assert.equal(s.code, 0);
      },
    ],
    [
      'copy oci: and --digestfile',
      async () => {
        const r = await cmd('copy', '--digestfile', 'e6/d/digest', `docker://${ref}`, 'oci:e6/sub/layout:1');
        assert.equal(r.code, 0, r.stderr);
        const s = await run(skopeo(), ['inspect', '--raw', `oci:${join(work, 'e6/sub/layout')}:1`]);
        assert.equal(s.code, 0);
        assert.equal(await readFile(join(work, 'e6/d/digest'), 'utf8'), image.digest);
      },
    ],
    [
      'unpack',
      async () => {
        const r = await cmd('unpack', ref, 'e7/sub/root');
        assert.equal(r.code, 0, r.stderr);
        assert.ok((await stat(join(work, 'e7/sub/root/usr/bin/hello'))).isFile());
      },
    ],
    [
      'blob -o',
      async () => {
        const layer = image.images[0]!.layers[0]!;
        const r = await runCli(['blob', ref, layer.digest, '-o', 'e8/sub/layer.tgz'], {
          env: env(),
          cwd: work,
        });
        assert.equal(r.code, 0, r.stderr);
        assert.equal((await stat(join(work, 'e8/sub/layer.tgz'))).size, layer.size);
      },
    ],
  ];
  const failed: string[] = [];
  for (const [name, check] of checks) {
    try {
      await check();
    } catch (err) {
      failed.push(`${name}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  assert.deepEqual(failed, []);
});

test('a parent that is a file, or a destination of the other kind: exit 2 before any download', async () => {
  const afile = join(work, 'afile');
  for (const [args, message] of [
    [
      ['export', ref, '-o', 'afile/fs.tar'],
      `cannot write -o afile/fs.tar: ${afile} is a file, not a directory`,
    ],
    [['extract', ref, '/usr/bin/hello', '-o', 'afile/f'], `cannot write -o afile/f: ${afile} is a file`],
    [
      ['copy', `docker://${ref}`, 'oci-archive:afile/x.tar'],
      `cannot write oci-archive:afile/x.tar: ${afile} is a file`,
    ],
    [['export', ref, '-o', '.'], '-o . is a directory: name a file to write'],
    [
      ['extract', ref, '/usr/bin/hello', '/etc/os-release', '-o', 'afile'],
      '-o afile is a file, not a directory',
    ],
  ] as const) {
    proxy.clear();
    const [name, ...rest] = args;
    const r = await cmd(name, ...rest);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.ok(r.stderr.startsWith(`lading: error: ${message}`), `${args.join(' ')}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /internal error|ENOENT|ENOTDIR|\n {4}at /);
    assert.deepEqual(proxy.log, [], `${args.join(' ')} asked the registry before checking its output`);
    assert.equal(await readFile(afile, 'utf8'), 'precious\n', 'the file in the way is untouched');
  }
  // Where the destination itself is of the wrong kind, the writers refuse it in their own words
  // (exit 1, test/transports/destination.test.ts); here: still before any blob is downloaded.
  for (const [args, message] of [
    [['copy', `docker://${ref}`, 'oci:afile:1'], /afile is a regular file; refusing to write there/],
    [['copy', `docker://${ref}`, 'dir:afile'], /afile is a regular file; refusing/],
    [['unpack', ref, 'afile'], /afile is a regular file: unpack writes into a new or empty directory/],
    [['unpack', ref, 'afile/root'], /afile\/root is below a file that is not a directory/],
  ] as const) {
    proxy.clear();
    const [name, ...rest] = args;
    const r = await cmd(name, ...rest);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /internal error|ENOENT|ENOTDIR|\n {4}at /);
    // The writers look when they open, after the source's manifest: no blob is fetched.
    assert.deepEqual(
      proxy.log.filter((e) => /\/blobs\//.test(e.path)),
      [],
      `${args.join(' ')} downloaded before checking its output`,
    );
    assert.equal(await readFile(afile, 'utf8'), 'precious\n');
  }
});
