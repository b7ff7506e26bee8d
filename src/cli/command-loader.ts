import type { Command } from 'commander';
import { ErrorCode, LadingError } from '../errors/index.ts';
import type { CliIo } from './io.ts';

/**
 * Every subcommand, in the order `lading --help` lists them, with the import of its module. A
 * command's module (and the library code under it: the registry client, zlib, crypto, the
 * cache's SQLite, …) is loaded only when that command runs: `lading --version` loads none, a
 * command loads its own (the bundle splits them into chunks, see scripts/bundle.ts).
 */
type Build = (io: CliIo) => Command;

const COMMANDS: readonly { name: string; hidden?: boolean; load: () => Promise<Build> }[] = [
  { name: 'inspect', load: async () => (await import('./commands/inspect.ts')).inspectCommand },
  { name: 'digest', load: async () => (await import('./commands/digest.ts')).digestCommand },
  { name: 'tags', load: async () => (await import('./commands/tags.ts')).tagsCommand },
  { name: 'blob', load: async () => (await import('./commands/blob.ts')).blobCommand },
  { name: 'login', load: async () => (await import('./commands/login.ts')).loginCommand },
  { name: 'logout', load: async () => (await import('./commands/login.ts')).logoutCommand },
  { name: 'prefetch', load: async () => (await import('./commands/prefetch.ts')).prefetchCommand },
  { name: 'lock', load: async () => (await import('./commands/lock.ts')).lockCommand },
  {
    name: 'copy',
    load: async () => {
      const { copyCommand } = await import('./commands/copy.ts');
      return (io) => copyCommand(io, 'copy');
    },
  },
  {
    name: 'pull',
    load: async () => {
      const { copyCommand } = await import('./commands/copy.ts');
      return (io) => copyCommand(io, 'pull');
    },
  },
  { name: 'build', load: async () => (await import('./commands/build.ts')).buildCommand },
  { name: 'index', load: async () => (await import('./commands/index-create.ts')).indexCommand },
  { name: 'unpack', load: async () => (await import('./commands/unpack.ts')).unpackCommand },
  { name: 'extract', load: async () => (await import('./commands/extract.ts')).extractCommand },
  { name: 'export', load: async () => (await import('./commands/export.ts')).exportCommand },
  { name: 'cache', load: async () => (await import('./commands/cache.ts')).cacheCommand },
  // The build steps of nix/lib.nix: run by Nix, not by people.
  {
    name: 'nix-builder',
    hidden: true,
    load: async () => (await import('./commands/nix-builder.ts')).nixBuilderCommand,
  },
];

/** The options of `lading` itself, before the command: flags without a value. */
const GLOBAL_FLAGS = new Set(['-q', '--quiet']);
const VERSION_FLAGS = new Set(['-V', '--version']);

/**
 * The names of the commands `argv` needs, read the way commander reads it: the first operand
 * before any option `lading` itself does not know names the command. None when the version is
 * asked for first (commander prints it as soon as it meets the flag); every command when no
 * known command is named (the help lists them all; an unknown name is told the nearest).
 */
export function commandsNeeded(argv: readonly string[]): string[] {
  const all = COMMANDS.map((c) => c.name);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return neededFor(argv[i + 1], all);
    if (a.length > 1 && a.startsWith('-')) {
      if (VERSION_FLAGS.has(a) || /^-q*V/.test(a)) return [];
      if (GLOBAL_FLAGS.has(a) || /^-q+$/.test(a)) continue;
      return all;
    }
    return neededFor(a, all);
  }
  return all;
}

function neededFor(name: string | undefined, all: string[]): string[] {
  return name !== undefined && all.includes(name) ? [name] : all;
}

/**
 * Imports and builds the named commands, in the help's order. An import that fails (an
 * installation with a file missing or damaged) is a clear error naming the command, not a stack
 * trace.
 */
export async function loadCommands(
  io: CliIo,
  names: readonly string[],
): Promise<{ command: Command; hidden: boolean }[]> {
  const wanted = COMMANDS.filter((c) => names.includes(c.name));
  const builders = await Promise.all(
    wanted.map((c) =>
      c.load().catch((err: unknown) => {
        throw new LadingError(
          ErrorCode.Internal,
          `the ${c.name} command could not be loaded, the installation may be incomplete (reinstall lading): ${(err as Error)?.message ?? err}`,
          {},
          { cause: err },
        );
      }),
    ),
  );
  return wanted.map((c, i) => ({ command: builders[i]!(io), hidden: c.hidden === true }));
}
