import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { run } from '../helpers/bins.ts';
import { runCli } from '../helpers/cli.ts';
import { buildLayout, pushLayout, smallImage } from '../helpers/images.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';

let reg: TestRegistry;
before(async () => {
  reg = await startRegistry({ auth: 'none', tls: true });
  const image = await buildLayout(smallImage('tls'));
  // skopeo pushes with verification off; lading is what is under test.
  await pushLayout(image, reg, 'tls/app:1');
});
after(() => reg.stop());

test('HTTPS registries: an unknown certificate is refused clearly; --tls-verify=false or a trusted CA works', async () => {
  const env = { HOME: '/nonexistent', PATH: process.env.PATH };
  const refused = await runCli(['digest', '--retry-times', '0', `${reg.host}/tls/app:1`], { env });
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /cannot reach registry|certificate|self.signed/i);
  const insecure = await runCli(['digest', '--tls-verify=false', `${reg.host}/tls/app:1`], { env });
  assert.equal(insecure.code, 0, insecure.stderr);
  const alias = await runCli(['digest', '--insecure', `${reg.host}/tls/app:1`], { env });
  assert.equal(alias.stdout.toString(), insecure.stdout.toString());
  // With the CA trusted by Node (NODE_EXTRA_CA_CERTS), verification passes (spawned: it is read at start-up).
  const trusted = await run(
    process.execPath,
    [new URL('../../bin/lading', import.meta.url).pathname, 'digest', `${reg.host}/tls/app:1`],
    {
      env: { ...env, NODE_EXTRA_CA_CERTS: reg.certPath },
    },
  );
  assert.equal(trusted.stdout.toString(), insecure.stdout.toString());
});
