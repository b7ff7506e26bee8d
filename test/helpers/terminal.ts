import { execFileSync } from 'node:child_process';
import { onExit, requireBin, run } from './bins.ts';

/**
 * Runs a program in a real terminal emulator (a detached tmux pane of `cols` × `rows`) and reads
 * what the screen shows, as a user would see it: escape sequences applied, long lines wrapped by
 * the terminal. `screens` holds every distinct screen seen while it ran (polled), `final` the
 * screen after it ended; `code` is its exit status. Trailing blank lines and spaces are dropped.
 */
export interface TerminalResult {
  code: number;
  screens: string[][];
  final: string[];
}

let sessions = 0;

export async function runOnTerminal(
  argv: string[],
  opts: { cols: number; rows?: number; env?: NodeJS.ProcessEnv; pollMs?: number; timeoutMs?: number },
): Promise<TerminalResult> {
  const tmux = requireBin('tmux', 'tmux');
  const socket = `lading-test-${process.pid}-${sessions++}`;
  const env = { ...(opts.env ?? { HOME: '/nonexistent-home', PATH: process.env.PATH }), TERM: 'xterm' };
  const kill = () => {
    try {
      execFileSync(tmux, ['-L', socket, 'kill-server'], { stdio: 'ignore' });
    } catch {
      // Already gone.
    }
  };
  const forget = onExit(kill);
  // The pane stays after the program ends (remain-on-exit), so its last screen can be read.
  await run(
    tmux,
    [
      '-L',
      socket,
      '-f',
      '/dev/null',
      'new-session',
      '-d',
      '-x',
      String(opts.cols),
      '-y',
      String(opts.rows ?? 30),
      '-s',
      't',
      'sh',
      '-c',
      'stty -echo; "$@"; echo "[exit $?]"; exec sleep 600',
      'sh',
      ...argv,
    ],
    { env },
  );
  const capture = async (): Promise<string[]> => {
    const r = await run(tmux, ['-L', socket, 'capture-pane', '-p', '-t', 't'], { env });
    const lines = r.stdout
      .toString('utf8')
      .split('\n')
      .map((l) => l.trimEnd());
    while (lines.length && lines.at(-1) === '') lines.pop();
    return lines;
  };
  const screens: string[][] = [];
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  try {
    for (;;) {
      const screen = await capture();
      const last = screens.at(-1);
      if (!last || last.join('\n') !== screen.join('\n')) screens.push(screen);
      const exit = screen.map((l) => /^\[exit (\d+)\]$/.exec(l)).find(Boolean);
      if (exit) {
        const final = screen.slice(
          0,
          screen.findIndex((l) => l.startsWith('[exit ')),
        );
        return { code: Number(exit[1]), screens, final };
      }
      if (Date.now() > deadline) throw new Error(`timed out; last screen:\n${screen.join('\n')}`);
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 50));
    }
  } finally {
    kill();
    forget();
  }
}
