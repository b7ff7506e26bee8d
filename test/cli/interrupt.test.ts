import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { track, untrack } from '../helpers/bins.ts';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.ts';
import { type BuiltLayout, buildLayout, pushLayout, smallImage } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'lading');
let reg: TestRegistry;
let proxy: FaultProxy;
let layout: BuiltLayout;
let work: string;

before(async () => {
  reg = await sharedRegistry('none');
  layout = await buildLayout(smallImage('interrupt'));
  await pushLayout(layout, reg, 'interrupt/app:1');
  proxy = await startFaultProxy(reg.url);
  work = await mkdtemp(join(tmpdir(), 'lading-interrupt-'));
});
after(async () => {
  await proxy.stop();
  await stopSharedRegistries();
});

/**
 * Runs the real `lading` process with the top layer's download held back, interrupts it once the
 * lower layers are through (SIGINT, as Ctrl-C does), and returns its exit status. With `strace`
 * (its arguments), lading runs under it and the signal goes to lading itself.
 */
async function interrupted(
  args: string[],
  signal: NodeJS.Signals = 'SIGINT',
  strace?: string[],
): Promise<number | null> {
  proxy.clear();
  const top = layout.images[0]!.layers.at(-1)!.digest;
  proxy.addRule({ method: 'GET', path: new RegExp(`/blobs/${top}`), delayMs: 5000 });
  const cmd = [process.execPath, bin, ...args];
  const child = spawn(strace ? 'strace' : cmd[0]!, strace ? [...strace, ...cmd] : cmd.slice(1), {
    env: { PATH: process.env.PATH, HOME: '/nonexistent' },
    stdio: 'ignore',
  });
  track(child);
  // Wait until the held request has arrived: the command is then mid-way.
  for (let i = 0; i < 600 && !proxy.log.some((e) => e.path.includes(top)); i++)
    await new Promise((r) => setTimeout(r, 50));
  assert.ok(
    proxy.log.some((e) => e.path.includes(top)),
    'the top layer was requested',
  );
  await new Promise((r) => setTimeout(r, 200));
  if (strace) {
    const tracee = (await readFile(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8')).trim();
    process.kill(Number(tracee), signal);
  } else child.kill(signal);
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  untrack(child);
  return code;
}

test('Ctrl-C during unpack, export, copy and prefetch leaves no temp file, staging directory or half layout', async () => {
  const src = `${proxy.host}/interrupt/app:1`;
  const cases: [string, (dir: string) => string[]][] = [
    ['unpack', (d) => ['unpack', '-q', '--no-cache', src, join(d, 'rootfs')]],
    ['export', (d) => ['export', '-q', '--no-cache', src, '-o', join(d, 'rootfs.tar')]],
    ['copy to oci:', (d) => ['copy', '-q', '--no-cache', src, `oci:${join(d, 'layout')}:1`]],
    ['copy to dir:', (d) => ['copy', '-q', '--no-cache', src, `dir:${join(d, 'd')}`]],
    [
      'copy to docker-archive:',
      (d) => ['copy', '-q', '--no-cache', src, `docker-archive:${join(d, 'a.tar')}`],
    ],
    [
      'prefetch -o',
      (d) => ['prefetch', '-q', '--no-cache', '-o', join(d, 'a.tar'), `${proxy.host}/interrupt/app`, '1'],
    ],
  ];
  for (const [i, [what, args]] of cases.entries()) {
    const dir = join(work, `case-${i}`);
    await mkdir(dir);
    assert.equal(await interrupted(args(dir)), 130, `${what}: exit status`);
    assert.deepEqual(await readdir(dir), [], `${what}: nothing left behind`);
  }
});

test('SIGTERM cleans up the same way', async () => {
  const dir = join(work, 'term');
  await mkdir(dir);
  const code = await interrupted(
    ['unpack', '-q', '--no-cache', `${proxy.host}/interrupt/app:1`, join(dir, 'rootfs')],
    'SIGTERM',
  );
  assert.equal(code, 143);
  assert.deepEqual(await readdir(dir), []);
});

test('Ctrl-C while a dir: copy is making its staging directory leaves nothing behind', async () => {
  // Every mkdir is held 2 s at its start (strace), so when the signal lands the lower layers'
  // `mkdir -p` of the staging directory is still in the thread pool. It used to run after the
  // handler's removal (process.exit drains the pool before the process ends) and make
  // `.d.lading-*.tmp` again: the flake seen on a loaded machine, made certain.
  const strace = ['-f', '-qq', '-o', '/dev/null', '-e', 'trace=mkdir,mkdirat'];
  strace.push('-e', 'inject=mkdir,mkdirat:delay_enter=2000000');
  const dir = join(work, 'mkdir-in-flight');
  await mkdir(dir);
  const args = ['copy', '-q', '--no-cache', `${proxy.host}/interrupt/app:1`, `dir:${join(dir, 'd')}`];
  assert.equal(await interrupted(args, 'SIGINT', strace), 130);
  assert.deepEqual(await readdir(dir), []);
});
