/**
 * `npm run build` (after tsc): bundles the CLI into one file, dist/cli.mjs, with its dependencies
 * inside. An installed `lading` runs it (bin/lading): one module to load instead of ~140 starts
 * about 50 ms sooner, which is most of a quick command's time.
 *
 * Usage: node scripts/bundle.ts [OUTFILE]   (default dist/cli.mjs)
 */
import { join } from 'node:path';
import { build } from 'esbuild';

const root = join(import.meta.dirname, '..');
const outfile = process.argv[2] ?? join(root, 'dist', 'cli.mjs');

await build({
  entryPoints: [join(root, 'src', 'cli', 'main.ts')],
  outfile,
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
