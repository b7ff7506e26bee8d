import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { layerTar } from '../helpers/images.ts';

// Issue 13.4, sampled: random Docker configs (Go field names in other cases, repeated and unknown
// keys, nulls, empty lists and maps, times with offsets and long fractions, HTML characters)
// converted to OCI by skopeo 1.9 and by lading give the same config bytes, or both refuse.

let work: string;
let layer: Buffer;
let diffId: string;
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'lading-convert-sample-'));
  const tar = await layerTar([{ path: 'f', content: 'x' }]);
  diffId = sha(tar);
  layer = gzipSync(tar);
});

/** A `dir:` image (skopeo's layout) whose config is exactly `config`. */
async function dirImage(dir: string, config: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const cfg = Buffer.from(config);
  await writeFile(join(dir, sha(layer).slice(7)), layer);
  await writeFile(join(dir, sha(cfg).slice(7)), cfg);
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: {
      mediaType: 'application/vnd.docker.container.image.v1+json',
      size: cfg.length,
      digest: sha(cfg),
    },
    layers: [
      {
        mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
        size: layer.length,
        digest: sha(layer),
      },
    ],
  };
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
  await writeFile(join(dir, 'version'), 'Directory Transport Version: 1.1\n');
}

async function configOf(layout: string): Promise<string> {
  const blob = (d: string) => readFile(join(layout, 'blobs', 'sha256', d.slice(7)), 'utf8');
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8'));
  return blob(JSON.parse(await blob(index.manifests[0].digest)).config.digest);
}

const text = fc.oneof(
  fc.constantFrom('', 'a', '<&>', '\u2028é', 'SIGTERM', '80/tcp'),
  fc.string({ maxLength: 6 }),
);
const time = fc.constantFrom(
  '2024-01-02T03:04:05Z',
  '2024-01-02T03:04:05.120000000+00:00',
  '1960-02-29T23:59:59.5-05:30',
  '2300-01-01T00:00:00.1234567891Z',
);
const caseOf = (k: string) => fc.constantFrom(k, k.toUpperCase(), k[0]!.toUpperCase() + k.slice(1));
const strings = fc.oneof(fc.constant(null), fc.array(text, { maxLength: 3 }));
const set = fc.oneof(
  fc.constant(null),
  fc.dictionary(text, fc.constantFrom({}, null, { x: 1 }), { maxKeys: 3 }),
);
const field = <T>(k: string, v: fc.Arbitrary<T>) => fc.tuple(caseOf(k), v);
const object = (fields: fc.Arbitrary<[string, unknown]>[]) =>
  fc
    .array(fc.oneof(...fields, fc.tuple(fc.constantFrom('Hostname', 'extra', 'id'), fc.jsonValue())), {
      maxLength: 8,
    })
    .map((kv) => `{${kv.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
const imageConfig = object([
  field('User', text),
  field('ExposedPorts', set),
  field('Env', strings),
  field('Entrypoint', strings),
  field('Cmd', strings),
  field('Volumes', set),
  field('WorkingDir', text),
  field('Labels', fc.oneof(fc.constant(null), fc.dictionary(text, text, { maxKeys: 3 }))),
  field('StopSignal', text),
  field('ArgsEscaped', fc.boolean()),
]);
const history = object([
  field('created', time),
  field('created_by', text),
  field('author', text),
  field('comment', text),
  field('empty_layer', fc.boolean()),
]);
const config = fc
  .tuple(
    fc.array(
      fc.oneof(
        field('created', time),
        field('author', text),
        field('variant', text),
        field('os.version', text),
        field('os.features', strings),
        fc.tuple(caseOf('config'), imageConfig),
        fc.tuple(
          fc.constant('history'),
          fc.array(history, { maxLength: 2 }).map((h) => `[${h.join(',')}]`),
        ),
        fc.tuple(
          fc.constantFrom('container_config', 'docker_version', 'zzz'),
          fc.jsonValue().map((v) => JSON.stringify(v)),
        ),
      ),
      { maxLength: 7 },
    ),
    fc.constantFrom('', '\n', '\n\n  '),
  )
  .map(([kv, tail]) => {
    const raw = kv.map(
      ([k, v]) => `${JSON.stringify(k)}:${typeof v === 'string' && /^[[{]/.test(v) ? v : JSON.stringify(v)}`,
    );
    return `{"architecture":"amd64","os":"linux",${raw.map((r) => `${r},`).join('')}"rootfs":{"type":"layers","diff_ids":["${diffId}"]}}${tail}`;
  });

test('random Docker configs: lading converts each to the bytes skopeo writes (or both refuse)', async () => {
  const samples = fc.sample(config, { numRuns: 16, seed: 1304 });
  let converted = 0;
  for (const [i, c] of samples.entries()) {
    const src = join(work, `s${i}`);
    await dirImage(src, c);
    const theirs = join(work, `t${i}`);
    const mine = join(work, `m${i}`);
    const s = await run('skopeo', ['copy', '-q', '--format', 'oci', `dir:${src}`, `oci:${theirs}:1`], {
      allowFail: true,
    });
    const r = await runCli(['copy', '-q', `dir:${src}`, `oci:${mine}:1`]);
    assert.equal(r.code === 0, s.code === 0, `sample ${i}: ${c}\nskopeo: ${s.stderr}\nlading: ${r.stderr}`);
    if (s.code !== 0) continue;
    converted++;
    assert.equal(await configOf(mine), await configOf(theirs), `sample ${i}: ${c}`);
  }
  // Most samples are valid: the comparison is not only of refusals.
  assert.ok(converted >= 8, `only ${converted} of ${samples.length} converted`);
});
