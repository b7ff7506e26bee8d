import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { MediaType } from '../../src/image/index.ts';
import { jsonTooDeep } from '../../src/util/index.ts';
import { runCli } from '../helpers/cli.ts';
import {
  type HostileServer,
  type LyingManifest,
  startHostile,
  startLyingRegistry,
} from '../helpers/hostile-servers.ts';
import { type BuiltLayout, buildLayout } from '../helpers/images.ts';

// Issue 12 item 8: every loop a server drives is bounded — Link pagination, redirects, index
// nesting, JSON depth — and ends with a clear error instead of exhausting memory or the stack.

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
let layout: BuiltLayout;
let lying: HostileServer;
let tagPages = 0;
const manifests = new Map<string, LyingManifest>();

before(async () => {
  layout = await buildLayout({ layers: [{ entries: [{ path: 'a.txt', content: 'a\n' }] }] });
  const img = layout.images[0]!;
  const m = JSON.parse(img.manifest.toString('utf8'));
  // A manifest whose annotations hold a 200k-deep array (valid JSON, 400 KB).
  const deep = Buffer.from(
    `{"schemaVersion":2,"mediaType":"${MediaType.OciManifest}","config":${JSON.stringify(m.config)},` +
      `"layers":${JSON.stringify(m.layers)},"annotations":{"x":${'['.repeat(200_000)}${']'.repeat(200_000)}}}`,
  );
  manifests.set('deep/latest', { body: deep, contentType: MediaType.OciManifest });
  // index -> index -> image: a nesting lading does not follow.
  const inner = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [
        {
          mediaType: MediaType.OciManifest,
          digest: sha(img.manifest),
          size: img.manifest.length,
          platform: { os: 'linux', architecture: 'amd64' },
        },
      ],
    }),
  );
  const outer = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [
        {
          mediaType: MediaType.OciIndex,
          digest: sha(inner),
          size: inner.length,
          platform: { os: 'linux', architecture: 'amd64' },
        },
      ],
    }),
  );
  manifests.set('nested/latest', { body: outer, contentType: MediaType.OciIndex });
  manifests.set(`nested/${sha(inner)}`, { body: inner, contentType: MediaType.OciIndex });
  manifests.set(`nested/${sha(img.manifest)}`, { body: img.manifest, contentType: MediaType.OciManifest });
  lying = await startLyingRegistry({
    manifests,
    blobsDir: join(layout.dir, 'blobs'),
    tags: (url) => {
      tagPages++;
      const repo = url.pathname.split('/')[2];
      if (repo === 'selfloop') {
        // Every page links to itself.
        return {
          body: JSON.stringify({ name: repo, tags: ['a', 'b'] }),
          link: `<${url.pathname}${url.search}>; rel="next"`,
        };
      }
      // Distinct pages of 1 MiB each; after 100 (more than the 64 MiB budget) the chain ends, so a
      // client without a budget finishes instead of exhausting memory.
      const n = Number(url.searchParams.get('last') ?? 0) + 1;
      const tags = Array.from({ length: 20_000 }, (_, i) => `t${n}-${i}`.padEnd(48, 'x'));
      const link = n < 100 ? `</v2/${repo}/tags/list?last=${n}>; rel="next"` : undefined;
      return { body: JSON.stringify({ name: repo, tags }), link };
    },
  });
});
after(async () => {
  await lying.stop();
});

describe('server-driven loops are bounded', () => {
  test('tags: a Link to the same page ends with a clear error on the second visit', async () => {
    tagPages = 0;
    const r = await runCli(['tags', `${lying.host}/selfloop`]);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /^lading: error: tags of .*selfloop: the registry's Link header leads back to a page already read/m,
    );
    assert.equal(tagPages, 1);
    assert.equal(r.stdout.length, 0);
  });

  test('tags: distinct pages end at the byte budget (64 MiB), not at the memory limit', async () => {
    tagPages = 0;
    const r = await runCli(['tags', `${lying.host}/endless`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^lading: error: tags of .*endless: more than 67108864 bytes of pages; stopping/m);
    assert.ok(tagPages < 100, `${tagPages} pages`);
  });

  test('redirects: a server redirecting to itself ends after 10 hops', async () => {
    let hits = 0;
    const loop = await startHostile((req, res) => {
      hits++;
      if (req.url === '/v2/') return void res.writeHead(200, { 'content-length': '0' }).end();
      res.writeHead(302, { location: req.url ?? '/', 'content-length': '0' }).end();
    });
    try {
      const r = await runCli(['inspect', '--raw', '--retry-times', '0', `${loop.host}/r/loop:1`]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /^lading: .*too many redirects \(more than 10\)/m);
      assert.ok(hits <= 12, `${hits} requests`);
    } finally {
      await loop.stop();
    }
  });

  for (const [cmd, args] of [
    ['prefetch --format json', (ref: string) => ['prefetch', '--format', 'json', ref]],
    ['inspect', (ref: string) => ['inspect', ref]],
    ['inspect --raw', (ref: string) => ['inspect', '--raw', ref]],
  ] as const) {
    test(`${cmd}: a 200k-deep manifest is refused, not a stack overflow`, async () => {
      const r = await runCli([...args(`${lying.host}/deep:latest`)]);
      if (cmd === 'inspect --raw') {
        // The raw bytes are passed through unparsed: nothing recursive touches them.
        assert.equal(r.code, 0, r.stderr);
        return;
      }
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^lading: error: malformed manifest .*nested deeper than 100 levels/m);
      assert.doesNotMatch(r.stderr, /call stack|internal error/i);
    });
  }

  for (const cmd of ['prefetch', 'unpack'] as const) {
    test(`${cmd}: an index inside an index is refused, not followed`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'lading-nested-'));
      const args =
        cmd === 'prefetch'
          ? ['prefetch', '--format', 'json', `${lying.host}/nested:latest`]
          : [
              'unpack',
              '-q',
              '--no-cache',
              '--platform',
              'linux/amd64',
              `${lying.host}/nested:latest`,
              join(dir, 'r'),
            ];
      const r = await runCli(args);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /^lading: .*not an image manifest/m);
    });
  }

  test('property: jsonTooDeep finds the real nesting of any JSON value', () => {
    const depth = (v: unknown): number =>
      typeof v === 'object' && v !== null ? 1 + Math.max(0, ...Object.values(v).map(depth)) : 0;
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 12 }), fc.integer({ min: 0, max: 14 }), (v, max) => {
        const d = depth(v);
        const found = jsonTooDeep(JSON.stringify(v), max);
        assert.equal(found, d > max ? max + 1 : undefined);
      }),
    );
  });
});
