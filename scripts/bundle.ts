/**
 * `npm run build` (after tsc): bundles the CLI, with its dependencies inside, into dist/cli.mjs
 * and the chunks it imports, dist/chunks/*.mjs. An installed `lading` runs it (bin/lading).
 *
 * Start-up is most of a quick command's time, so the bundle is split: dist/cli.mjs holds only
 * what every run needs (argument parsing, the error report), and each command's module is a chunk
 * imported when that command runs (src/cli/command-loader.ts), with the library code and the
 * dependencies it needs in chunks shared between commands. Node's built-ins are loaded when first
 * used (lazyBuiltins below). A bundle (rather than ~140 separate modules) still starts ~50 ms
 * sooner than the sources would.
 *
 * Usage: node scripts/bundle.ts [OUTFILE]   (default dist/cli.mjs; the chunks go beside it)
 */
import { rm } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { build, type Plugin } from 'esbuild';

const root = join(import.meta.dirname, '..');
const outfile = process.argv[2] ?? join(root, 'dist', 'cli.mjs');
const outdir = dirname(outfile);

/**
 * Node's built-in modules that most runs do not need, loaded when first used rather than when a
 * chunk is imported; and every built-in a CommonJS dependency require()s (commander requires
 * node:child_process at its top, for subcommands that are programs: lading has none). Such an
 * import becomes an object whose properties fetch the module with process.getBuiltinModule on
 * first access. That also skips what an ESM import of a built-in costs: it evaluates every lazy
 * export (node:util's). The others stay plain imports: nearly every command needs them, and an
 * object of getters for each importing module would cost more than it saves.
 */
const LAZY = new Set(['child_process', 'crypto', 'readline', 'sqlite', 'util', 'v8', 'vm', 'zlib']);
const lazyBuiltins: Plugin = {
  name: 'lazy-builtins',
  setup(b) {
    b.onResolve({ filter: /^(node:)?[a-z_][a-z0-9_/]*$/ }, (args) =>
      isBuiltin(args.path) && (args.kind === 'require-call' || LAZY.has(args.path.replace(/^node:/, '')))
        ? { path: args.path.replace(/^node:/, ''), namespace: 'lazy-builtin' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (args) => {
      const id = JSON.stringify(`node:${args.path}`);
      const mod = process.getBuiltinModule(`node:${args.path}`) as object;
      // A module that is a function (node:events is EventEmitter, node:assert) is called or
      // extended as it is: taken as it is, at once. So is the process object, loaded already.
      if (typeof mod === 'function' || args.path === 'process')
        return { loader: 'js', contents: `module.exports = process.getBuiltinModule(${id});\n` };
      // The names the building Node's module has (build with a Node at least as new as the
      // sources need); one missing on the Node that runs the bundle reads as undefined (as a
      // feature test expects) instead of failing the whole import. Writes go through.
      const props = Object.keys(mod).map((n) => {
        const k = JSON.stringify(n);
        return `  get ${k}() { return load()[${k}]; },\n  set ${k}(v) { load()[${k}] = v; },`;
      });
      return {
        loader: 'js',
        contents: `let m;\nconst load = () => (m ??= process.getBuiltinModule(${id}));\nmodule.exports = {\n${props.join('\n')}\n};\n`,
      };
    });
  },
};

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
  // Without comments the chunks are ASCII: Node decodes them as one-byte strings (four chunks
  // had an arrow or an ellipsis in a kept comment, so were decoded and parsed as UTF-16), and
  // there is a third less to read and scan. Names stay (no minifyIdentifiers), for stack traces.
  // A warm prefetch took 0.97x the time (31 alternating pairs), `lading --version` 0.98x.
  minifyWhitespace: true,
  minifySyntax: true,
  plugins: [lazyBuiltins],
  logLevel: 'warning',
});
