import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.ts';
import { type BuiltLayout, buildLayout, multiArchImage, pushLayout, smallImage } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
let reg: TestRegistry;
let small: BuiltLayout;
let multi: BuiltLayout;
let work: string;
const env = () => ({ HOME: '/nonexistent', PATH: process.env.PATH, XDG_CACHE_HOME: join(work, 'cache') });
const cli = (args: string[]) => runCli(args, { env: env() });

async function skopeoDigest(loc: string): Promise<string> {
  const j = JSON.parse((await run('skopeo', ['inspect', '--tls-verify=false', loc])).stdout.toString());
  return j.Digest as string;
}

before(async () => {
  reg = await sharedRegistry('none');
  small = await buildLayout(smallImage('conf'));
  multi = await buildLayout(multiArchImage());
  await Promise.all([pushLayout(small, reg, 'conf/small:1'), pushLayout(multi, reg, 'conf/multi:1')]);
  work = await mkdtemp(join(tmpdir(), 'lading-conf-'));
});
after(stopSharedRegistries);

describe('round trips keep every digest (skopeo and umoci read the results)', () => {
  test('registry → oci → dir → oci-archive → registry', async () => {
    const oci = join(work, 'rt-oci');
    const dir = join(work, 'rt-dir');
    const arch = join(work, 'rt.tar');
    for (const [src, dst] of [
      [`docker://${reg.host}/conf/small:1`, `oci:${oci}:v1`],
      [`oci:${oci}:v1`, `dir:${dir}`],
      [`dir:${dir}`, `oci-archive:${arch}:v1`],
      [`oci-archive:${arch}:v1`, `docker://${reg.host}/conf/roundtrip:1`],
    ]) {
      const r = await cli(['copy', '-q', src!, dst!]);
      assert.equal(r.code, 0, `${src} → ${dst}: ${r.stderr}`);
      assert.equal(r.stdout.toString().trim(), small.digest);
    }
    assert.equal(await skopeoDigest(`oci:${oci}:v1`), small.digest);
    assert.equal(await skopeoDigest(`dir:${dir}`), small.digest);
    assert.equal(await skopeoDigest(`oci-archive:${arch}:v1`), small.digest);
    assert.equal(await skopeoDigest(`docker://${reg.host}/conf/roundtrip:1`), small.digest);
    // umoci reads lading's layout.
    const bundle = join(work, 'rt-bundle');
    await run('umoci', ['unpack', '--image', `${oci}:v1`, bundle]);
    assert.ok(existsSync(join(bundle, 'rootfs', 'usr', 'bin', 'hello')));
  });

  test('--format converts OCI and Docker schema2 manifests exactly as skopeo does (same digests)', async () => {
    for (const [fmt, all] of [
      ['v2s2', false],
      ['v2s2', true],
      ['oci', false],
    ] as const) {
      const src =
        fmt === 'oci'
          ? `dir:${join(work, 'fmt-src')}`
          : `docker://${reg.host}/conf/${all ? 'multi' : 'small'}:1`;
      if (fmt === 'oci')
        assert.equal(
          (await cli(['copy', '-q', '--format', 'v2s2', `${reg.host}/conf/small:1`, src])).code,
          0,
        );
      const ours = await cli([
        'copy',
        '-q',
        '--format',
        fmt,
        ...(all ? ['--all'] : []),
        src,
        `dir:${join(work, `fmt-${fmt}-${all}`)}`,
      ]);
      assert.equal(ours.code, 0, ours.stderr);
      const theirs = join(work, `fmt-skopeo-${fmt}-${all}`);
      await run('skopeo', [
        'copy',
        '-q',
        '--src-tls-verify=false',
        '--format',
        fmt,
        ...(all ? ['--all'] : []),
        src,
        `dir:${theirs}`,
      ]);
      assert.equal(ours.stdout.toString().trim(), await skopeoDigest(`dir:${theirs}`), `${fmt} all=${all}`);
      await run('diff', ['-r', join(work, `fmt-${fmt}-${all}`), theirs]);
    }
  });

  test('--all keeps the index digest; several --platform values keep only those', async () => {
    const oci = join(work, 'all-oci');
    const r = await cli(['copy', '-q', '--all', `${reg.host}/conf/multi:1`, `oci:${oci}:1`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString().trim(), multi.digest);
    const back = await cli(['copy', '-q', '--all', `oci:${oci}:1`, `docker://${reg.host}/conf/multi-copy:1`]);
    assert.equal(back.stdout.toString().trim(), multi.digest);
    const two = await cli([
      'copy',
      '-q',
      '--json',
      '--platform',
      'linux/amd64,linux/arm64',
      `${reg.host}/conf/multi:1`,
      `oci:${join(work, 'two')}:1`,
    ]);
    const j = JSON.parse(two.stdout.toString());
    assert.equal(j.images.length, 2);
    const index = JSON.parse(await readFile(join(work, 'two', 'blobs', 'sha256', j.digest.slice(7)), 'utf8'));
    assert.deepEqual(
      index.manifests.map((m: { platform: { architecture: string } }) => m.platform.architecture),
      ['amd64', 'arm64'],
    );
    // --platform given twice is the same as the comma-separated list (the help says so).
    const repeated = await cli([
      'copy',
      '-q',
      '--json',
      '--platform',
      'linux/amd64',
      '--platform',
      'linux/arm64',
      `${reg.host}/conf/multi:1`,
      `oci:${join(work, 'two-repeated')}:1`,
    ]);
    assert.equal(repeated.code, 0, repeated.stderr);
    assert.equal(JSON.parse(repeated.stdout.toString()).digest, j.digest);
    const one = await cli([
      'copy',
      '-q',
      '--platform',
      'linux/arm/v7',
      `${reg.host}/conf/multi:1`,
      `dir:${join(work, 'one')}`,
    ]);
    assert.equal(one.stdout.toString().trim(), multi.images[2]!.manifestDigest);
  });

  test('--digestfile holds the digest skopeo reads from the destination, as skopeo writes it', async () => {
    const file = join(work, 'digest.txt');
    const dst = `oci:${join(work, 'digestfile')}:1`;
    const r = await cli(['copy', '-q', '--digestfile', file, `${reg.host}/conf/small:1`, dst]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await readFile(file, 'utf8'), await skopeoDigest(dst));
  });

  test('--platform of another platform than a single-platform image has: exit 4, nothing written', async () => {
    // smallImage is linux/amd64 (its config says so).
    const dst = join(work, 'wrong-platform');
    const r = await cli([
      'copy',
      '-q',
      '--platform',
      'linux/arm64',
      `${reg.host}/conf/small:1`,
      `oci:${dst}:1`,
    ]);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /single-platform image for linux\/amd64, not linux\/arm64/);
    assert.equal(existsSync(dst), false);
    const ov = await cli([
      'copy',
      '-q',
      '--override-arch',
      'arm64',
      `${reg.host}/conf/small:1`,
      `dir:${dst}`,
    ]);
    assert.equal(ov.code, 4, ov.stderr);
    assert.equal(existsSync(dst), false);
    const ok = await cli([
      'copy',
      '-q',
      '--platform',
      'linux/amd64',
      `${reg.host}/conf/small:1`,
      `oci:${dst}:1`,
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(await skopeoDigest(`oci:${dst}:1`), small.digest);
  });

  test("docker-archive output is byte-identical to skopeo's, reads back, and loads with podman", async () => {
    const ours = join(work, 'ours.tar');
    const theirs = join(work, 'theirs.tar');
    const r = await cli(['copy', '-q', `${reg.host}/conf/small:1`, `docker-archive:${ours}:conf/small:1`]);
    assert.equal(r.code, 0, r.stderr);
    await run('skopeo', [
      'copy',
      '-q',
      '--src-tls-verify=false',
      `docker://${reg.host}/conf/small:1`,
      `docker-archive:${theirs}:conf/small:1`,
    ]);
    assert.ok((await readFile(ours)).equals(await readFile(theirs)));
    // Read it back (as containers/image would) into a dir: and compare with skopeo's reading.
    const a = join(work, 'from-archive-ours');
    const b = join(work, 'from-archive-skopeo');
    assert.equal((await cli(['copy', '-q', `docker-archive:${ours}`, `dir:${a}`])).code, 0);
    await run('skopeo', ['copy', '-q', `docker-archive:${theirs}`, `dir:${b}`]);
    // The same config and layer contents; skopeo's dir: keeps the plain tar under the gzip label
    // the archive gives, lading compresses it as the label says (issue 13.5).
    const ma = JSON.parse(await readFile(join(a, 'manifest.json'), 'utf8'));
    const mb = JSON.parse(await readFile(join(b, 'manifest.json'), 'utf8'));
    assert.deepEqual(ma.config, mb.config);
    assert.equal(ma.layers.length, mb.layers.length);
    for (const [i, l] of ma.layers.entries()) {
      assert.equal(l.mediaType, mb.layers[i].mediaType);
      const plain = gunzipSync(await readFile(join(a, l.digest.slice(7))));
      assert.ok(plain.equals(await readFile(join(b, mb.layers[i].digest.slice(7)))));
    }
    const load = await run('podman', ['load', '-i', ours], { allowFail: true });
    assert.equal(load.code, 0, load.stderr);
    assert.match(load.stdout.toString() + load.stderr, /conf\/small/);
  });

  test('a cached blob is not fetched again; the cache lists and prunes', async () => {
    const before = await cli(['copy', '-q', `${reg.host}/conf/small:1`, `oci:${join(work, 'c1')}:1`]);
    assert.equal(before.code, 0);
    const proxy: FaultProxy = await startFaultProxy(reg.url);
    try {
      await cli(['copy', '-q', `${proxy.host}/conf/small:1`, `oci:${join(work, 'c2')}:1`]);
      proxy.clear();
      await cli(['copy', '-q', `${proxy.host}/conf/small:1`, `oci:${join(work, 'c3')}:1`]);
      assert.deepEqual(
        proxy.log.filter((e) => e.path !== '/v2/').map((e) => e.method),
        ['HEAD'],
      );
    } finally {
      await proxy.stop();
    }
    const ls = await cli(['cache', 'ls', '--json']);
    assert.ok(JSON.parse(ls.stdout.toString()).length >= 4);
    assert.equal((await cli(['cache', 'prune'])).code, 0);
    assert.deepEqual(JSON.parse((await cli(['cache', 'ls', '--json'])).stdout.toString()), []);
  });
});

describe('bad input', () => {
  test('unknown transport, malformed reference, existing destinations, non-archives: clear errors, nothing written', async () => {
    const bogus = await cli(['copy', 'bogus:/x', `dir:${join(work, 'never')}`]);
    assert.equal(bogus.code, 2);
    assert.match(bogus.stderr, /unknown transport "bogus"/);
    assert.equal((await cli(['copy', 'Bad//Ref', `dir:${join(work, 'never')}`])).code, 2);
    const full = join(work, 'full');
    await mkdir(full);
    await writeFile(join(full, 'keep.txt'), 'precious');
    const exists = await cli(['copy', `${reg.host}/conf/small:1`, `dir:${full}`]);
    assert.notEqual(exists.code, 0);
    assert.match(exists.stderr, /not empty/);
    assert.deepEqual(await readdir(full), ['keep.txt']);
    const notOci = await cli(['copy', `${reg.host}/conf/small:1`, `oci:${full}:1`]);
    assert.match(notOci.stderr, /not an OCI layout/);
    const junk = join(work, 'junk.tar');
    await writeFile(junk, randomBytes(4096));
    const bad = await cli(['copy', `docker-archive:${junk}`, `dir:${join(work, 'never2')}`]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /not a tar archive|not a docker-archive/);
    assert.equal(existsSync(join(work, 'never')), false);
    assert.equal(existsSync(join(work, 'never2')), false);
    const archive = join(work, 'exists.tar');
    await writeFile(archive, 'x');
    assert.notEqual((await cli(['copy', `${reg.host}/conf/small:1`, `docker-archive:${archive}`])).code, 0);
    assert.equal(await readFile(archive, 'utf8'), 'x');
  });
});

describe('crash safety', () => {
  test('SIGKILL during a copy, then the same command again: identical result, no corrupt cache entry', async () => {
    const big = await buildLayout({
      layers: [0, 1, 2].map((i) => ({
        entries: [{ path: `f${i}`, content: randomBytes(6 << 20) }],
        compression: 'none' as const,
      })),
    });
    await pushLayout(big, reg, 'conf/big:1');
    const proxy = await startFaultProxy(reg.url);
    const bin = join(import.meta.dirname, '..', '..', 'bin', 'lading');
    const cache = join(work, 'kill-cache');
    try {
      for (const delay of [150, 400, 800]) {
        const out = join(work, `kill-${delay}`);
        // Slow blob transfers so the kill lands mid-copy.
        proxy.clear();
        for (let i = 0; i < 3; i++) proxy.addRule({ method: 'GET', path: /\/blobs\//, delayMs: 300 });
        const child = spawn(
          process.execPath,
          [bin, 'copy', '-q', '--cache-dir', cache, `${proxy.host}/conf/big:1`, `oci:${out}:1`],
          { stdio: 'ignore' },
        );
        const exited = new Promise((r) => child.once('exit', r));
        await new Promise((r) => setTimeout(r, delay));
        child.kill('SIGKILL');
        await exited;
        const again = await runCli(
          ['copy', '-q', '--cache-dir', cache, `${proxy.host}/conf/big:1`, `oci:${out}:1`],
          { env: env() },
        );
        assert.equal(again.code, 0, again.stderr);
        assert.equal(again.stdout.toString().trim(), big.digest);
        assert.equal(await skopeoDigest(`oci:${out}:1`), big.digest);
        for (const l of big.images[0]!.layers) {
          assert.equal(sha(await readFile(join(out, 'blobs', 'sha256', l.digest.slice(7)))), l.digest);
        }
      }
      // Every cache entry is whole and correct; no temp files are left over as entries.
      const entries = JSON.parse(
        (await runCli(['cache', 'ls', '--json', '--cache-dir', cache], { env: env() })).stdout.toString(),
      );
      for (const e of entries as { digest: string }[]) {
        const hex = e.digest.slice(7);
        assert.equal(
          sha(await readFile(join(cache, 'v1', 'blobs', 'sha256', hex.slice(0, 2), hex))),
          e.digest,
        );
      }
    } finally {
      await proxy.stop();
    }
  });
});
