import { execFileSync, spawn } from 'node:child_process';

/** Absolute path of a binary the tests need; throws (never skips) when it is missing. */
export function requireBin(name: string, pkg = name): string {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`${name} not found on PATH: install the Debian package ${pkg} (bash .ci/run does)`);
  }
}

export interface RunResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs a command; rejects with its stderr on a non-zero exit unless `allowFail`. */
export function run(
  cmd: string,
  args: string[],
  opts: { input?: Buffer | string; env?: NodeJS.ProcessEnv; cwd?: string; allowFail?: boolean } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const r = { code: code ?? 1, stdout: Buffer.concat(out), stderr: err };
      if (r.code !== 0 && !opts.allowFail)
        reject(new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${err.trim()}`));
      else resolve(r);
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

const children = new Set<{ kill: () => void }>();
/** Registers a child to kill when the test process exits, even after a failure. */
export function track(child: { kill: () => void }): void {
  children.add(child);
}
export function untrack(child: { kill: () => void }): void {
  children.delete(child);
}
process.once('exit', () => {
  for (const c of children) c.kill();
});
