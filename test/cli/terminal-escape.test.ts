import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.ts';
import { type BuiltLayout, buildLayout, pushLayout } from '../helpers/images.ts';
import { sharedRegistry, stopSharedRegistries, type TestRegistry } from '../helpers/registry.ts';

// Issue 12.6: what images and registries say reaches the terminal escaped. An image must not be
// able to clear the screen, retitle the window, rewrite a line (CR) or print a fake line.
const CLEAR = '\u001b[2J\u001b[H';
const TITLE = '\u001b]0;pwned\u0007';
const FAKE = `${CLEAR}\rALL GOOD\u0000\u009b31m\u202e`;

/** Every character a terminal acts on (newline and tab aside), as found in the bytes. */
function controls(bytes: Buffer | string): string[] {
  const text = typeof bytes === 'string' ? bytes : bytes.toString('utf8');
  return [...text.matchAll(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g)].map(
    (m) => `U+${m[0].charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

let work: string;
let layout: BuiltLayout;
before(async () => {
  work = await mkdtemp(join(tmpdir(), 'lading-escape-'));
  layout = await buildLayout({
    config: { Env: ['PATH=/bin', `GREETING=${FAKE}`], Labels: { [`x${TITLE}`]: FAKE }, Cmd: [FAKE] },
    layers: [
      {
        entries: [
          { path: 'bin/', type: 'directory' },
          { path: `bin/${TITLE}real`, content: 'payload\n', mode: 0o755 },
          { path: 'bin/tool', type: 'symlink', linkname: `${TITLE}real` },
          { path: `../${CLEAR}evil`, content: 'x' },
        ],
      },
    ],
  });
});
after(async () => {
  await stopSharedRegistries();
  await rm(work, { recursive: true, force: true });
});

describe('a hostile image', () => {
  test('inspect prints Env, Cmd and labels escaped', async () => {
    const r = await runCli(['inspect', `oci:${layout.dir}:latest`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(controls(r.stdout), []);
    assert.match(
      r.stdout.toString(),
      /GREETING=\\u001b\[2J\\u001b\[H\\u000dALL GOOD\\u0000\\u009b31m\\u202e/,
    );
  });

  test('inspect --json stays valid JSON that decodes to the config values', async () => {
    const r = await runCli(['inspect', '--json', `oci:${layout.dir}:latest`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(controls(r.stdout), []);
    const doc = JSON.parse(r.stdout.toString());
    assert.deepEqual(doc.config.env, ['PATH=/bin', `GREETING=${FAKE}`]);
    assert.equal(doc.config.labels[`x${TITLE}`], FAKE);
  });

  test('unpack names a refused entry escaped', async () => {
    const r = await runCli(['unpack', `oci:${layout.dir}:latest`, join(work, 'rootfs')]);
    assert.equal(r.code, 7, r.stderr);
    assert.deepEqual(controls(r.stderr), []);
    assert.match(r.stderr, /lading: warning: entry "\.\.\/\\u001b\[2J\\u001b\[Hevil" in layer 0/);
  });

  test('extract prints the resolved name escaped', async () => {
    const r = await runCli(['extract', `oci:${layout.dir}:latest`, '/bin/tool', '-o', join(work, 'tool')]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(controls(r.stderr), []);
    assert.match(r.stderr, /\(-> \/bin\/\\u001b\]0;pwned\\u0007real\)/);
  });
});

describe('a lying registry', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  before(async () => {
    reg = await sharedRegistry('none');
    await pushLayout(layout, reg, 'escape/app:1');
    proxy = await startFaultProxy(reg.url);
  });
  after(() => proxy.stop());

  test('its error message is printed escaped, on one line', async () => {
    proxy.clear();
    proxy.addRule({
      method: 'GET',
      path: /\/manifests\//,
      status: 404,
      times: 10,
      body: JSON.stringify({
        errors: [{ code: 'MANIFEST_UNKNOWN', message: `${FAKE}\nlading: all verified` }],
      }),
    });
    const r = await runCli(['inspect', `${proxy.host}/escape/app:1`]);
    assert.equal(r.code, 4, r.stderr);
    assert.deepEqual(controls(r.stderr), []);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /\\u001b\[2J.*ALL GOOD.*\\u000alading: all verified/);
  });

  test('a header value (Docker-Content-Digest) is printed escaped', async () => {
    proxy.clear();
    proxy.addRule({
      method: 'GET',
      path: /\/manifests\//,
      times: 10,
      // Node sends these bytes as they are (latin1); the client reads U+009B, a one-byte CSI.
      responseHeaders: { 'docker-content-digest': 'sha256:\u009b2J\u009bHALL GOOD' },
    });
    const r = await runCli(['inspect', `${proxy.host}/escape/app:1`]);
    assert.notEqual(r.code, 0);
    assert.deepEqual(controls(r.stderr), []);
    assert.match(r.stderr, /sha256:\\u009b2J\\u009bHALL GOOD/);
  });
});
