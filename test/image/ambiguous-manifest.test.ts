import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { isLadingError } from '../../src/errors/index.ts';
import { goFoldKey } from '../../src/image/go-fields.ts';
import { MediaType, parseConfig, parseManifest } from '../../src/image/index.ts';
import { requireBin, run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { type HostileServer, type LyingManifest, startLyingRegistry } from '../helpers/hostile-servers.ts';
import { type BuiltLayout, buildLayout } from '../helpers/images.ts';

// Issue 12 item 2 (CVE-2021-41190 class): one pinned digest must never mean two images. A document
// with both `config`/`layers` and `manifests`, a `mediaType` that contradicts the fields, or a key
// that Go tools read as another field (`Layers` next to `layers`) is refused by every command.

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
let layout: BuiltLayout;
let server: HostileServer;
const manifests = new Map<string, LyingManifest>();
const docs: Record<string, { body: Buffer; digest: string }> = {};

const desc = (m: Buffer) => ({ mediaType: MediaType.OciManifest, digest: sha(m), size: m.length });

before(async () => {
  layout = await buildLayout([
    { layers: [{ entries: [{ path: 'a.txt', content: 'image A\n' }] }] },
    { layers: [{ entries: [{ path: 'b.txt', content: 'image B\n' }] }] },
  ]);
  const [a, b] = layout.images as [BuiltLayout['images'][0], BuiltLayout['images'][0]];
  const ma = JSON.parse(a.manifest.toString('utf8'));
  const mb = JSON.parse(b.manifest.toString('utf8'));
  const index = { ...desc(b.manifest), platform: { os: 'linux', architecture: 'amd64' } };
  const variants: Record<string, unknown> = {
    // Both kinds at once, no mediaType: a reader deciding by Content-Type sees A or B.
    both: { schemaVersion: 2, config: ma.config, layers: ma.layers, manifests: [index] },
    // A mediaType that contradicts the fields.
    'index-with-layers': {
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      config: ma.config,
      layers: ma.layers,
    },
    'manifest-with-manifests': {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: ma.config,
      layers: ma.layers,
      manifests: [index],
    },
  };
  for (const [name, v] of Object.entries(variants)) {
    const body = Buffer.from(JSON.stringify(v));
    docs[name] = { body, digest: sha(body) };
  }
  // `layers` then `Layers`: JSON.parse reads A's layers, Go (skopeo) the last match, B's.
  const caseBody = Buffer.from(
    `{"schemaVersion":2,"mediaType":"${MediaType.OciManifest}","config":${JSON.stringify(mb.config)},` +
      `"layers":${JSON.stringify(ma.layers)},"Layers":${JSON.stringify(mb.layers)}}`,
  );
  docs['case-variant'] = { body: caseBody, digest: sha(caseBody) };
  for (const [name, d] of Object.entries(docs)) {
    manifests.set(`amb/${name}/${d.digest}`, { body: d.body, contentType: MediaType.OciManifest });
    manifests.set(`amb/${name}-as-index/${d.digest}`, { body: d.body, contentType: MediaType.OciIndex });
  }
  manifests.set(`amb/both-as-index/${sha(b.manifest)}`, {
    body: b.manifest,
    contentType: MediaType.OciManifest,
  });
  server = await startLyingRegistry({ manifests, blobsDir: join(layout.dir, 'blobs') });
});
after(async () => {
  await server.stop();
});

const COMMANDS: [string, (ref: string, dir: string) => string[]][] = [
  ['inspect', (ref) => ['inspect', ref]],
  ['prefetch', (ref) => ['prefetch', '--format', 'json', ref]],
  [
    'unpack',
    (ref, dir) => ['unpack', '-q', '--no-cache', '--platform', 'linux/amd64', ref, join(dir, 'rootfs')],
  ],
  [
    'copy',
    (ref, dir) => ['copy', '-q', '--platform', 'linux/amd64', `docker://${ref}`, `oci:${join(dir, 'oci')}:x`],
  ],
];

describe('an ambiguous manifest under a pinned digest is refused by every command', () => {
  for (const name of ['both', 'index-with-layers', 'manifest-with-manifests', 'case-variant']) {
    for (const served of ['', '-as-index']) {
      for (const [cmd, args] of COMMANDS) {
        test(`${name}, served as ${served ? 'an index' : 'a manifest'}: ${cmd}`, async () => {
          const dir = await mkdtemp(join(tmpdir(), 'lading-amb-'));
          const ref = `${server.host}/amb/${name}${served}@${docs[name]!.digest}`;
          const r = await runCli(args(ref, dir));
          assert.equal(r.code, 1, `${r.stderr}${r.stdout}`);
          assert.match(r.stderr, /^lading: .*ambiguous/m);
          assert.doesNotMatch(r.stderr, /\n\s+at /, 'a stack trace');
          assert.equal(existsSync(join(dir, 'rootfs')), false);
        });
      }
    }
  }

  test('skopeo (Go) reads the case variant as the last `Layers` — the content lading would have missed', async () => {
    requireBin('skopeo');
    const ref = `docker://${server.host}/amb/case-variant@${docs['case-variant']!.digest}`;
    const r = await run('skopeo', ['inspect', '--no-tags', '--tls-verify=false', ref], { allowFail: true });
    assert.equal(r.code, 0, r.stderr);
    const layers = (JSON.parse(r.stdout.toString('utf8')) as { Layers: string[] }).Layers;
    assert.deepEqual(layers, [layout.images[1]!.layers[0]!.digest]);
  });

  test('skopeo (Go) refuses the both-kinds document too', async () => {
    const ref = `docker://${server.host}/amb/both-as-index@${docs.both!.digest}`;
    const r = await run('skopeo', ['inspect', '--no-tags', '--tls-verify=false', ref], { allowFail: true });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /ambiguous/);
  });
});

describe('parseManifest never decides by Content-Type', () => {
  test('the both-kinds document is refused whatever the Content-Type', () => {
    for (const ct of [undefined, MediaType.OciIndex, MediaType.OciManifest, MediaType.DockerManifest]) {
      assert.throws(
        () => parseManifest(docs.both!.body, ct),
        (e) => isLadingError(e) && e.code === 'E_MANIFEST_INVALID' && /ambiguous/.test(e.message),
      );
    }
  });

  test('`null` fields count as absent, as in Go', () => {
    const m = JSON.parse(docs['manifest-with-manifests']!.body.toString('utf8'));
    m.manifests = null;
    assert.equal(parseManifest(Buffer.from(JSON.stringify(m)), MediaType.OciIndex).kind, 'image');
  });

  test('Go folding: case and long-s variants of a field are refused', () => {
    const base = JSON.parse(docs['manifest-with-manifests']!.body.toString('utf8'));
    delete base.manifests;
    for (const key of ['Layers', 'LAYERS', 'mediatype', 'Config', 'layer\u017f', 'SCHEMAVERSION']) {
      const doc = { ...base, [key]: [] };
      assert.throws(
        () => parseManifest(Buffer.from(JSON.stringify(doc))),
        (e) => isLadingError(e) && /ambiguous/.test(e.message),
        key,
      );
    }
    // Descriptor and platform fields too.
    const d = { ...base, layers: [{ ...base.layers[0], Digest: base.config.digest }] };
    assert.throws(() => parseManifest(Buffer.from(JSON.stringify(d))), /ambiguous/);
  });

  test('configs: case variants of the fields lading reads are refused, other keys kept', () => {
    const ok = {
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['A=1'] },
      rootfs: { type: 'layers', diff_ids: [] },
    };
    assert.deepEqual(parseConfig(Buffer.from(JSON.stringify({ ...ok, custom: 1 }))).config, ok.config);
    for (const bad of [
      { ...ok, config: { Env: ['A=1'], env: ['A=2'] } },
      { ...ok, Rootfs: { type: 'layers', diff_ids: [] } },
      { ...ok, rootfs: { type: 'layers', diff_ids: [], DIFF_IDS: [] } },
      { ...ok, OS: 'windows' },
    ]) {
      assert.throws(() => parseConfig(Buffer.from(JSON.stringify(bad))), /ambiguous/, JSON.stringify(bad));
    }
  });

  test('property: goFoldKey equals ASCII-lowercasing for ASCII keys, and maps K/ſ', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme-ascii' }), (s) => {
        assert.equal(goFoldKey(s), s.toLowerCase());
        assert.equal(goFoldKey(s.replace(/k/gi, '\u212a').replace(/s/gi, '\u017f')), s.toLowerCase());
      }),
    );
  });
});
