import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { requireBin, run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import {
  type BuiltLayout,
  buildLayout,
  MEDIA_TYPES,
  pushBlob,
  pushManifest,
  smallImage,
  uncompressedImage,
  withCompression,
} from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

// Issue 12.3: someone who can push to the destination tag puts there a config that *claims* the
// victim's diff_ids but names their own layers. A push of the victim's image must not reuse those
// layers on the strength of the claim.

let reg: TestRegistry;
let victim: BuiltLayout;
let attacker: BuiltLayout;
let work: string;

before(async () => {
  reg = await sharedRegistry('none');
  victim = await buildLayout(uncompressedImage('victim'));
  attacker = await buildLayout(withCompression(smallImage('attacker'), 'gzip'));
  work = await mkdtemp(join(tmpdir(), 'lading-substitution-test-'));
});
after(() => stopSharedRegistries());

/** Puts at REPO:latest the attacker's gzip layers under a config claiming the victim's diff_ids. */
async function plant(repo: string): Promise<string[]> {
  const im = attacker.images[0]!;
  for (const l of im.layers)
    await pushBlob(reg, repo, await readFile(join(attacker.dir, 'blobs', 'sha256', l.digest.slice(7))));
  const config = JSON.parse(im.config.toString('utf8')) as { rootfs: { diff_ids: string[] } };
  config.rootfs.diff_ids = victim.images[0]!.layers.map((l) => l.diffId);
  const forged = Buffer.from(JSON.stringify(config));
  const configDigest = await pushBlob(reg, repo, forged);
  const manifest = JSON.parse(im.manifest.toString('utf8')) as Record<string, unknown>;
  manifest.config = { ...(manifest.config as object), digest: configDigest, size: forged.length };
  await pushManifest(reg, repo, 'latest', Buffer.from(JSON.stringify(manifest)), MEDIA_TYPES.ociManifest);
  return im.layers.map((l) => l.digest);
}

for (const noCache of [false, true]) {
  test(`a destination config claiming the victim's diff_ids does not get its layers published${noCache ? ' (--no-cache)' : ''}`, async () => {
    const repo = `subst/app${noCache ? '-nocache' : ''}`;
    const planted = await plant(repo);
    const ref = `${reg.host}/${repo}:latest`;
    const r = await runCli(
      ['copy', '-q', ...(noCache ? ['--no-cache'] : []), `oci:${victim.dir}:latest`, `docker://${ref}`],
      {
        env: { HOME: '/nonexistent', PATH: process.env.PATH, XDG_CACHE_HOME: join(work, `cache-${noCache}`) },
        cwd: work,
      },
    );
    assert.equal(r.code, 0, r.stderr);
    const raw = await run(requireBin('skopeo'), [
      'inspect',
      '--tls-verify=false',
      '--raw',
      `docker://${ref}`,
    ]);
    const pushed = (JSON.parse(raw.stdout.toString()) as { layers: { digest: string }[] }).layers.map(
      (l) => l.digest,
    );
    // Layer 1 is the same in both images (same bytes, a fair reuse); 0 and 2 differ.
    for (const i of [0, 2]) assert.ok(!pushed.includes(planted[i]!), `attacker layer ${i} was published`);
    // What a user gets: umoci unpacks the victim's files.
    const out = join(work, `check-${noCache}`);
    const s = await run(requireBin('skopeo'), [
      'copy',
      '--src-tls-verify=false',
      `docker://${ref}`,
      `oci:${out}:x`,
    ]);
    assert.equal(s.code, 0, s.stderr);
    const bundle = join(work, `bundle-${noCache}`);
    const u = await run(requireBin('umoci'), ['unpack', '--rootless', '--image', `${out}:x`, bundle]);
    assert.equal(u.code, 0, u.stderr);
    assert.equal(await readFile(join(bundle, 'rootfs/etc/os-release'), 'utf8'), 'ID=victim\n');
    assert.equal(await readFile(join(bundle, 'rootfs/data-victim.txt'), 'utf8'), 'victim'.repeat(100));
  });
}
