import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { isLadingError } from '../../src/errors/index.ts';
import { MediaType, manifestDigest, parseConfig, parseManifest } from '../../src/image/index.ts';

const d = (c: string) => `sha256:${c.repeat(64)}`;
const enc = (v: unknown) => Buffer.from(JSON.stringify(v));

test('parses OCI and Docker manifests and indexes', () => {
  const oci = parseManifest(
    enc({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: d('a'), size: 10 },
      layers: [{ mediaType: MediaType.OciLayerGzip, digest: d('b'), size: 20 }],
    }),
  );
  assert.equal(oci.kind, 'image');
  assert.equal(oci.kind === 'image' && oci.layers[0]?.size, 20);

  // No mediaType field: Content-Type decides, then the shape.
  const docker = parseManifest(
    enc({
      schemaVersion: 2,
      config: { mediaType: MediaType.DockerConfig, digest: d('a'), size: 1 },
      layers: [],
    }),
    `${MediaType.DockerManifest}; charset=utf-8`,
  );
  assert.equal(docker.mediaType, MediaType.DockerManifest);
  const idx = parseManifest(
    enc({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: MediaType.OciManifest,
          digest: d('c'),
          size: 3,
          platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
        },
      ],
    }),
  );
  assert.equal(idx.kind, 'index');
  assert.equal(idx.kind === 'index' && idx.manifests[0]?.platform?.variant, 'v8');
});

test('schema1 is read with layers bottom first and its signed digest covers the payload', () => {
  const payload = JSON.stringify(
    {
      schemaVersion: 1,
      name: 'x',
      tag: 'y',
      architecture: 'amd64',
      fsLayers: [{ blobSum: d('1') }, { blobSum: d('2') }],
      history: [{ v1Compatibility: '{}' }, { v1Compatibility: '{}' }],
    },
    null,
    3,
  );
  // A JWS-signed form: the payload up to the closing brace + signatures + the tail.
  const formatLength = payload.length - 2;
  const tail = payload.slice(formatLength);
  const signed = `${payload.slice(0, formatLength)},\n   "signatures": [{"protected": "${Buffer.from(
    JSON.stringify({ formatLength, formatTail: Buffer.from(tail).toString('base64url') }),
  ).toString('base64url')}"}]${tail}`;
  const m = parseManifest(Buffer.from(signed), MediaType.DockerSchema1Signed);
  assert.equal(m.kind, 'schema1');
  assert.deepEqual(m.kind === 'schema1' && m.layers, [d('2'), d('1')]);
  assert.equal(
    manifestDigest(Buffer.from(signed)),
    `sha256:${createHash('sha256').update(payload).digest('hex')}`,
  );
});

test('malformed manifests are errors naming what is wrong', () => {
  const cases: [unknown, RegExp][] = [
    [null, /not a JSON object/],
    [{ schemaVersion: 2, mediaType: MediaType.OciManifest, layers: [] }, /config: not an object/],
    [
      {
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: { mediaType: 'x', digest: 'sha256:../etc', size: 1 },
        layers: [],
      },
      /config/,
    ],
    [
      {
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: { mediaType: 'x', digest: d('a'), size: -1 },
        layers: [],
      },
      /size/,
    ],
    [{ schemaVersion: 3, mediaType: MediaType.OciIndex, manifests: [] }, /schemaVersion/],
  ];
  for (const [v, re] of cases) {
    assert.throws(
      () => parseManifest(enc(v)),
      (e: unknown) => isLadingError(e) && e.code === 'E_MANIFEST_INVALID' && re.test(e.message),
    );
  }
  assert.throws(
    () => parseManifest(Buffer.from('{')),
    (e: unknown) => isLadingError(e) && /not JSON/.test(e.message),
  );
  assert.throws(
    () => parseManifest(enc({ schemaVersion: 2, mediaType: 'application/x-foo' })),
    (e: unknown) => isLadingError(e) && e.code === 'E_MANIFEST_UNSUPPORTED',
  );
});

test('property: arbitrary JSON never crashes the manifest parser (LadingError or a manifest)', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.jsonValue(),
        fc.record(
          {
            schemaVersion: fc.constantFrom(1, 2),
            manifests: fc.jsonValue(),
            config: fc.jsonValue(),
            layers: fc.jsonValue(),
            mediaType: fc.constantFrom(
              MediaType.OciIndex,
              MediaType.OciManifest,
              MediaType.DockerManifestList,
              MediaType.DockerManifest,
            ),
          },
          { requiredKeys: [] },
        ),
      ),
      (v) => {
        try {
          const m = parseManifest(enc(v));
          // Whatever parsed has only validated digests.
          const ds =
            m.kind === 'index'
              ? m.manifests.map((x) => x.digest)
              : m.kind === 'image'
                ? [m.config.digest, ...m.layers.map((l) => l.digest)]
                : m.layers;
          for (const x of ds) assert.match(x, /^sha(256|512):[0-9a-f]+$/);
        } catch (err) {
          assert.ok(isLadingError(err), String(err));
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('property: generated valid manifests round-trip', () => {
  const desc = fc.record({
    mediaType: fc.constantFrom(MediaType.OciLayerGzip, MediaType.OciLayerZstd, MediaType.DockerLayerGzip),
    digest: fc.stringMatching(/^[0-9a-f]{64}$/).map((h) => `sha256:${h}`),
    size: fc.nat(),
  });
  fc.assert(
    fc.property(desc, fc.array(desc, { maxLength: 5 }), (config, layers) => {
      const v = { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers };
      const m = parseManifest(enc(v));
      assert.equal(m.kind, 'image');
      if (m.kind === 'image') assert.deepEqual(m.layers, JSON.parse(JSON.stringify(layers)));
    }),
  );
});

test('config diff_ids are validated', () => {
  assert.deepEqual(parseConfig(enc({ rootfs: { type: 'layers', diff_ids: [d('a')] } })).rootfs?.diff_ids, [
    d('a'),
  ]);
  assert.throws(
    () => parseConfig(enc({ rootfs: { type: 'layers', diff_ids: ['sha256:/etc/passwd'] } })),
    (e: unknown) => isLadingError(e),
  );
});
