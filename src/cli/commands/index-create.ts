import { Command, Option } from 'commander';
import { BlobInfoCache } from '../../cache/index.ts';
import { createIndex, openSink, openSource } from '../../copy/index.ts';
import type { ImageSource } from '../../image/index.ts';
import { formatLocation, parseLocation } from '../../transports/index.ts';
import { type CacheFlags, cacheFrom, withCacheOptions } from '../cache-options.ts';
import { action } from '../context.ts';
import { type CliIo, writeJson, writeLine } from '../io.ts';
import { withRegistryOptions } from '../options.ts';
import { prepareDestination } from '../output-path.ts';

interface Flags extends CacheFlags {
  json?: boolean;
  quiet?: boolean;
  jobs?: number;
  destCompressFormat?: 'gzip' | 'zstd' | 'none';
}

/** `lading index create DEST IMAGE…`: a multi-platform index from single-platform images. */
export function indexCommand(io: CliIo): Command {
  const create = withRegistryOptions(
    withCacheOptions(
      new Command('create')
        .description('assemble an index from single-platform images and write it to DEST')
        .argument('<destination>', 'docker://REF, oci:DIR[:TAG], dir:DIR, … or a bare reference')
        .argument('<images...>', 'one image per platform (any source location)')
        .addOption(
          new Option('--dest-compress-format <format>', 'recompress layers: gzip, zstd or none').choices([
            'gzip',
            'zstd',
            'none',
          ]),
        )
        .option('--json', 'print the result as JSON'),
    ),
  );
  create.addHelpText(
    'after',
    `
Each image's platform comes from its config (os, architecture, variant); two images of the same
platform are an error. The images and their blobs are copied into DEST (skipped when already there)
and the index is written last: a Docker manifest list when every image is Docker schema 2, else an
OCI image index.

Example:
  lading index create docker://127.0.0.1:5000/app:1.0 docker://127.0.0.1:5000/app:1.0-amd64 docker://127.0.0.1:5000/app:1.0-arm64`,
  );
  create.action(
    action<Flags, [string, string[]]>(io, async (ctx, dstArg, imageArgs) => {
      let dst = parseLocation(dstArg);
      dst = await prepareDestination(io.cwd, dst);
      const srcs = imageArgs.map((a) => parseLocation(a));
      const cache = await cacheFrom(ctx.flags, io);
      const progress = ctx.progress({ label: `index → ${formatLocation(dst)}` });
      const sources: ImageSource[] = srcs.map((s) =>
        openSource(s, { pool: ctx.pool(), cache, stdin: io.stdin, env: io.env }),
      );
      const sink = openSink(dst, { pool: ctx.pool(), cache, source: srcs[0], stdout: io.out, env: io.env });
      try {
        const r = await createIndex(sources, sink, {
          jobs: ctx.flags.jobs,
          compress: ctx.flags.destCompressFormat,
          blobInfo: cache ? new BlobInfoCache(cache.root) : undefined,
          onEvent: progress.onEvent,
        });
        progress.finish();
        if (ctx.flags.json) await writeJson(io.out, { destination: formatLocation(dst), ...r });
        else await writeLine(io.out, r.digest);
      } finally {
        for (const s of sources) await s.close();
      }
    }),
  );
  return new Command('index').description('create multi-platform indexes').addCommand(create);
}
