import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { copyImage, ErrorCode, hasCode, parsePlatform, selectImage } from '../../src/index.ts';
import { OciLayoutSink, OciLayoutSource } from '../../src/transports/index.ts';
import { requireBin, run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type BuiltLayout, buildLayout, multiArchImage, pushLayout, smallImage } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

// Issue 13.10 / 17.1: one platform policy, in the library's selector, for every entry point. An
// amd64-only image asked for as arm64 is refused everywhere; an index picks its entry; without
// an explicit platform a single image is taken as it is.

let reg: TestRegistry;
let amd64: BuiltLayout;
let multi: BuiltLayout;
let work: string;
let env: NodeJS.ProcessEnv;
const ref = () => `${reg.host}/policy/app:1`;
const cli = (args: string[]) => runCli(args, { env, cwd: work });

before(async () => {
  reg = await sharedRegistry('none');
  amd64 = await buildLayout(smallImage('policy'));
  multi = await buildLayout(multiArchImage());
  await pushLayout(amd64, reg, 'policy/app:1');
  work = await mkdtemp(join(tmpdir(), 'lading-policy-test-'));
  env = { HOME: '/nonexistent', PATH: process.env.PATH, XDG_CACHE_HOME: join(work, 'cache') };
  // What skopeo says the image is: the premise of every refusal below.
  const r = await run(requireBin('skopeo'), ['inspect', '--tls-verify=false', `docker://${ref()}`]);
  assert.equal(JSON.parse(r.stdout.toString()).Architecture, 'amd64');
});
after(() => stopSharedRegistries());

const MISMATCH = /single-platform image for linux\/amd64, not linux\/arm64/;

describe('an amd64-only image asked for as arm64 is refused by every entry point', () => {
  test('digest --platform linux/arm64', async () => {
    const r = await cli(['digest', '--platform', 'linux/arm64', ref()]);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, MISMATCH);
    assert.equal(r.stdout.toString(), '');
  });

  test('prefetch --arch arm64', async () => {
    const r = await cli(['prefetch', '--arch', 'arm64', ref()]);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, MISMATCH);
    assert.equal(r.stdout.toString(), '');
  });

  test('lock add --platform linux/arm64 writes no entry', async () => {
    const lock = join(work, 'refused.lock.json');
    const r = await cli(['lock', 'add', '--file', lock, '--platform', 'linux/arm64', ref()]);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, MISMATCH);
    assert.ok(!existsSync(lock), 'no lock file written');
  });

  test('inspect of an oci: copy, as inspect of the registry', async () => {
    const dir = join(work, 'copy');
    assert.equal((await cli(['copy', '-q', `docker://${ref()}`, `oci:${dir}:1`])).code, 0);
    for (const image of [`oci:${dir}:1`, ref()]) {
      const r = await cli(['inspect', '--platform', 'linux/arm64', image]);
      assert.equal(r.code, 4, `${image}: ${r.stderr}`);
      assert.match(r.stderr, MISMATCH);
    }
    // Asked for its own platform, both read it.
    const ok = await cli(['inspect', '--json', '--platform', 'linux/amd64', `oci:${dir}:1`]);
    assert.equal(ok.code, 0, ok.stderr);
  });

  test('library copyImage with platforms [linux/arm64]: refused, nothing written', async () => {
    const dst = join(work, 'lib-copy');
    await assert.rejects(
      copyImage(new OciLayoutSource(amd64.dir, amd64.tag), new OciLayoutSink(dst, 'x'), {
        platforms: [parsePlatform('linux/arm64')],
      }),
      (err: unknown) => hasCode(err, ErrorCode.PlatformMismatch),
    );
    assert.ok(!existsSync(join(dst, 'index.json')), 'no image written');
    // Without platforms, the single image is copied as it is.
    const r = await copyImage(new OciLayoutSource(amd64.dir, amd64.tag), new OciLayoutSink(dst, 'x'));
    assert.equal(r.digest, amd64.digest);
  });
});

describe('selectImage', () => {
  test('picks the index entry for the platform; explicit or not, an index never reads a config', async () => {
    const src = new OciLayoutSource(multi.dir, multi.tag);
    const sel = await selectImage(src, { platform: parsePlatform('linux/arm64'), explicit: true });
    assert.equal(sel.top.digest, multi.digest);
    assert.equal(sel.instance.digest, multi.images[1]!.manifestDigest);
    assert.equal(sel.platform?.architecture, 'arm64');
    assert.equal(sel.config, undefined);
    await assert.rejects(selectImage(src, { platform: parsePlatform('linux/s390x') }), (err: unknown) =>
      hasCode(err, ErrorCode.NoMatchingPlatform),
    );
  });

  test('a single image: taken as it is without explicit; checked against its config with', async () => {
    const src = new OciLayoutSource(amd64.dir, amd64.tag);
    const loose = await selectImage(src, { platform: parsePlatform('linux/arm64') });
    assert.equal(loose.instance.digest, amd64.digest);
    const strict = await selectImage(src, { platform: parsePlatform('linux/amd64'), explicit: true });
    assert.equal(strict.platform?.architecture, 'amd64');
    assert.deepEqual(strict.config?.bytes, amd64.images[0]!.config);
    await assert.rejects(
      selectImage(src, { platform: parsePlatform('linux/arm64'), explicit: true }),
      (err: unknown) => hasCode(err, ErrorCode.PlatformMismatch),
    );
  });
});
