import type { Command } from 'commander';
import { parseReference, type Reference } from '../reference/index.ts';
import type { RegistryPool } from '../registry/index.ts';
import { escapeTerminal } from '../util/index.ts';
import type { CliIo } from './io.ts';
import { type RegistryFlags, registryPool, type Side, type SideRegistryFlags, sideFlags } from './options.ts';
import { Progress } from './render/progress.ts';

/** What a command's action gets: its I/O, parsed flags, a registry pool, and a warning sink. */
export interface CommandContext<F> {
  io: CliIo;
  flags: F;
  warn: (msg: string) => void;
  /**
   * Created on first use, closed after the command. `copy` asks for one per side: its `--src-*`
   * and `--dest-*` options (credentials, TLS, certificates) override the general ones there.
   */
  pool: (side?: Side) => RegistryPool;
  ref: (input: string) => Reference;
  /**
   * The command's progress display on stderr (live on a terminal, periodic lines otherwise,
   * nothing with -q); warnings are written above it while it runs.
   */
  progress: (opts: { label: string; total?: number; unit?: string; plainFinal?: boolean }) => Progress;
}

/** Wraps a command action: builds the context, and closes the registry pool afterwards. */
export function action<F extends object, A extends unknown[]>(
  io: CliIo,
  run: (ctx: CommandContext<F & RegistryFlags>, ...args: A) => Promise<void>,
): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const flags = cmd.optsWithGlobals() as F & RegistryFlags & { creds?: string | false; quiet?: boolean };
    if (flags.creds === false) {
      flags.noCreds = true;
      flags.creds = undefined;
    }
    const warned = new Set<string>();
    let shown: Progress | undefined;
    const warn = (msg: string): void => {
      // Once each: a missing credential helper is looked up for every repository.
      if (flags.quiet || warned.has(msg)) return;
      warned.add(msg);
      const line = `lading: warning: ${escapeTerminal(msg)}\n`;
      if (shown) shown.print(line);
      else io.err.write(line);
    };
    // A password prompt must not be drawn over: the display leaves the screen while it is asked.
    const holdProgress = async <T>(fn: () => Promise<T>): Promise<T> => {
      const held = shown;
      held?.pause();
      try {
        return await fn();
      } finally {
        held?.resume();
      }
    };
    const pools = new Map<Side | undefined, RegistryPool>();
    const ctx: CommandContext<F & RegistryFlags> = {
      io,
      flags,
      warn,
      pool: (side) => {
        let pool = pools.get(side);
        if (!pool) {
          pool = registryPool(
            sideFlags(flags as F & RegistryFlags & SideRegistryFlags, side),
            { ...io, holdProgress },
            warn,
          );
          pools.set(side, pool);
        }
        return pool;
      },
      // `docker://REF` is what skopeo users type; the registry commands take it too.
      progress: (opts) => {
        shown?.finish();
        shown = new Progress({
          ...opts,
          label: escapeTerminal(opts.label),
          out: io.err,
          tty: io.errIsTty,
          quiet: flags.quiet,
          columns: io.errColumns,
        });
        return shown;
      },
      ref: (input) => parseReference(input.startsWith('docker://') ? input.slice('docker://'.length) : input),
    };
    try {
      await run(ctx, ...(args.slice(0, cmd.registeredArguments.length) as A));
    } catch (err) {
      shown?.abandon();
      throw err;
    } finally {
      shown?.finish();
      await Promise.all([...pools.values()].map((p) => p.close()));
    }
  };
}
