import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCredentialHelper } from '../../src/auth/index.ts';

const SECRET = 'helper-Secret-9f8e7d';

describe('runCredentialHelper', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const helper = async (name: string, body: string) => {
    const p = join(dir, `docker-credential-${name}`);
    await writeFile(p, `#!/bin/sh\n${body}\n`);
    await chmod(p, 0o755);
  };
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lading-helper-'));
    env = { PATH: `${dir}:/usr/bin:/bin` };
    // Echoes what it was asked on stdin into a file, answers with a user and secret.
    await helper(
      'test',
      `[ "$1" = get ] || exit 3\nurl=$(cat)\nprintf '%s' "$url" > "${dir}/asked"\nprintf '{"ServerURL":"%s","Username":"alice","Secret":"${SECRET}"}\\n' "$url"`,
    );
    await helper(
      'token',
      `cat >/dev/null\necho '{"ServerURL":"x","Username":"<token>","Secret":"${SECRET}"}'`,
    );
    await helper('notfound', 'cat >/dev/null\necho "credentials not found in native keychain"\nexit 1');
    await helper('broken', `cat >/dev/null\necho "gpg failed, secret was ${SECRET}" >&2\nexit 2`);
    await helper('garbage', `cat >/dev/null\necho "not json ${SECRET}"`);
    await helper('empty', 'cat >/dev/null\necho \'{"ServerURL":"x","Username":"","Secret":""}\'');
    await helper('slow', 'sleep 5');
    // Starts a grandchild that ignores SIGTERM and outlives it unless its process group is killed.
    await helper(
      'forks',
      `cat >/dev/null\n(trap '' TERM HUP; exec sleep 600) &\necho $! > "${dir}/grandchild"\nwait`,
    );
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('sends the server URL on stdin and reads Username/Secret', async () => {
    const r = await runCredentialHelper('test', 'ghcr.io', { env });
    assert.equal(r.warning, undefined);
    assert.ok(r.credential?.kind === 'basic');
    assert.equal(r.credential.username, 'alice');
    assert.equal(r.credential.password, SECRET);
    assert.equal(r.credential.source, 'docker-credential-test');
    assert.equal(await readFile(join(dir, 'asked'), 'utf8'), 'ghcr.io');
  });

  it('Username "<token>" means an identity token', async () => {
    const r = await runCredentialHelper('token', 'https://index.docker.io/v1/', { env });
    assert.ok(r.credential?.kind === 'identity-token');
    assert.equal(r.credential.token, SECRET);
  });

  it('"credentials not found" and an empty secret are no credential, no warning', async () => {
    assert.deepEqual(await runCredentialHelper('notfound', 'ghcr.io', { env }), {});
    assert.deepEqual(await runCredentialHelper('empty', 'ghcr.io', { env }), {});
  });

  it('a missing helper is a warning', async () => {
    const r = await runCredentialHelper('absent', 'ghcr.io', { env });
    assert.equal(r.credential, undefined);
    assert.match(r.warning ?? '', /docker-credential-absent not found on PATH/);
  });

  it('failures and garbage are warnings that never echo the output', async () => {
    for (const name of ['broken', 'garbage']) {
      const r = await runCredentialHelper(name, 'ghcr.io', { env });
      assert.equal(r.credential, undefined);
      assert.ok(r.warning?.includes(`docker-credential-${name}`), r.warning);
      assert.ok(!r.warning?.includes(SECRET));
    }
  });

  it('times out', async () => {
    const t0 = Date.now();
    const r = await runCredentialHelper('slow', 'ghcr.io', { env, timeoutMs: 200 });
    assert.match(r.warning ?? '', /did not answer within 200 ms/);
    assert.ok(Date.now() - t0 < 3000);
  });

  it('refuses helper names that could be paths', async () => {
    const r = await runCredentialHelper('../../bin/sh', 'ghcr.io', { env });
    assert.match(r.warning ?? '', /invalid name/);
  });

  it("kills the helper's whole process group at its timeout", async () => {
    const r = await runCredentialHelper('forks', 'ghcr.io', { env, timeoutMs: 300 });
    assert.match(r.warning ?? '', /did not answer within 300 ms/);
    const pid = Number((await readFile(join(dir, 'grandchild'), 'utf8')).trim());
    assert.ok(pid > 0);
    // SIGKILL is delivered asynchronously: wait until the grandchild is gone (or a zombie).
    let alive = true;
    for (let i = 0; i < 100 && alive; i++) {
      alive = isRunning(pid);
      if (alive) await new Promise((res) => setTimeout(res, 50));
    }
    if (alive) process.kill(pid, 'SIGKILL');
    assert.equal(alive, false, `grandchild ${pid} survived the helper's timeout`);
  });
});

/** Whether `pid` exists and is not a zombie. */
function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
