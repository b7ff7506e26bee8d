import { spawn } from 'node:child_process';
import { requireBin } from './bins.ts';

/**
 * Runs a program on a real pseudo-terminal (python3's `pty` module) of the given size, answering
 * `answers` (text typed once each, when the output first shows `when`). Returns everything the
 * program wrote to the terminal (stdout and stderr are both the terminal) and its exit status.
 */
const DRIVER = String.raw`
import json, os, pty, select, struct, sys, fcntl, termios, base64, time
spec = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.environ.clear()
    os.environ.update(spec["env"])
    os.execv(spec["argv"][0], spec["argv"])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", spec["rows"], spec["cols"], 0, 0))
out = b""
answers = list(spec["answers"])
status = None
while True:
    r, _, _ = select.select([fd], [], [], 0.05)
    if r:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            break
        out += chunk
    while answers and answers[0]["when"].encode() in out:
        time.sleep(answers[0].get("afterMs", 0) / 1000)
        os.write(fd, answers.pop(0)["type"].encode())
    if status is None:
        p, st = os.waitpid(pid, os.WNOHANG)
        if p:
            status = st
if status is None:
    _, status = os.waitpid(pid, 0)
sys.stdout.write(json.dumps({"code": os.waitstatus_to_exitcode(status), "out": base64.b64encode(out).decode()}))
`;

export interface PtyResult {
  code: number;
  /** Everything written to the terminal, escape sequences included. */
  output: string;
}

export async function runOnPty(
  argv: string[],
  opts: {
    cols?: number;
    rows?: number;
    env?: NodeJS.ProcessEnv;
    /** Typed once `when` shows, `afterMs` later (a user taking time to type). */
    answers?: { when: string; type: string; afterMs?: number }[];
  } = {},
): Promise<PtyResult> {
  const python = requireBin('python3', 'python3');
  const spec = {
    argv,
    cols: opts.cols ?? 80,
    rows: opts.rows ?? 24,
    env: opts.env ?? { HOME: '/nonexistent-home', PATH: process.env.PATH ?? '/usr/bin:/bin' },
    answers: opts.answers ?? [],
  };
  const child = spawn(python, ['-c', DRIVER, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => err.push(c));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) throw new Error(`pty driver failed (${code}): ${Buffer.concat(err).toString('utf8')}`);
  const r = JSON.parse(Buffer.concat(out).toString('utf8')) as { code: number; out: string };
  return { code: r.code, output: Buffer.from(r.out, 'base64').toString('utf8') };
}
