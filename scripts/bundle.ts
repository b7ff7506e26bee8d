/**
 * `npm run build` (after tsc): bundles the CLI, with its dependencies inside, into dist/cli.mjs
 * and the chunks it imports, dist/chunks/*.mjs. An installed `lading` runs it (bin/lading).
 *
 * Start-up is most of a quick command's time, so the bundle is split: dist/cli.mjs holds only
 * what every run needs (argument parsing, the error report), and each command's module is a chunk
 * imported when that command runs (src/cli/command-loader.ts), with the library code and the
 * dependencies it needs in chunks shared between commands. A bundle (rather than ~140 separate
 * modules) still starts ~50 ms sooner than the sources would.
 *
 * Usage: node scripts/bundle.ts [OUTFILE]   (default dist/cli.mjs; the chunks go beside it)
 */
import { rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { build } from 'esbuild';

const root = join(import.meta.dirname, '..');
const outfile = process.argv[2] ?? join(root, 'dist', 'cli.mjs');
const outdir = dirname(outfile);

// Chunk names carry a hash of their content: the ones of an earlier build would pile up.
await rm(join(outdir, 'chunks'), { recursive: true, force: true });
await build({
  entryPoints: [{ in: join(root, 'src', 'cli', 'main.ts'), out: basename(outfile).replace(/\.mjs$/, '') }],
  outdir,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  splitting: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  // CommonJS dependencies (commander, tar-stream) call require() for Node's built-ins.
  banner: {
    js: "import { createRequire as __ladingRequire } from 'node:module';\nconst require = __ladingRequire(import.meta.url);",
  },
  legalComments: 'eof',
  logLevel: 'warning',
});
