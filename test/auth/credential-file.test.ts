import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { parseCredentialFile, readCredentialFile } from '../../src/auth/index.ts';
import { hasCode } from '../../src/errors/index.ts';

const SECRET = 'pa=ss:word-0xC0FFEE';

describe('parseCredentialFile', () => {
  it('reads USERNAME/PASSWORD in either order, splitting at the first =', () => {
    for (const text of [`USERNAME=bob\nPASSWORD=${SECRET}\n`, `PASSWORD=${SECRET}\r\n\r\nUSERNAME=bob`]) {
      const c = parseCredentialFile(text, '/creds');
      assert.ok(c.kind === 'basic');
      assert.equal(c.username, 'bob');
      assert.equal(c.password, SECRET);
      assert.equal(c.source, '/creds');
    }
  });

  it('reads one BEARER_TOKEN line', () => {
    const c = parseCredentialFile(`BEARER_TOKEN=${SECRET}\n`, '/creds');
    assert.ok(c.kind === 'bearer' && c.token === SECRET);
  });

  const bad: [string, RegExp][] = [
    [
      `USERNAME=bob\nPASSWORD=${SECRET}\nPASSWD=${SECRET}`,
      /line 3 is not USERNAME=, PASSWORD= or BEARER_TOKEN=/,
    ],
    [`${SECRET}`, /line 1 is not/],
    [`USERNAME=bob\nUSERNAME=${SECRET}`, /line 2 repeats USERNAME/],
    [`USERNAME=bob\nPASSWORD=x\nBEARER_TOKEN=${SECRET}`, /not both/],
    [`PASSWORD=${SECRET}`, /PASSWORD but no USERNAME/],
    ['USERNAME=bob', /USERNAME but no PASSWORD/],
    ['BEARER_TOKEN=', /BEARER_TOKEN is empty/],
    ['\n\n', /needs USERNAME and PASSWORD lines/],
  ];
  for (const [text, re] of bad) {
    it(`rejects ${JSON.stringify(text.replaceAll(SECRET, 'SECRET'))} naming file and line, not the value`, () => {
      assert.throws(
        () => parseCredentialFile(text, '/etc/hocker.creds'),
        (e: Error) =>
          hasCode(e, 'E_AUTH_FILE') &&
          re.test(e.message) &&
          e.message.includes('/etc/hocker.creds') &&
          !e.message.includes(SECRET) &&
          !JSON.stringify(e).includes(SECRET),
      );
    });
  }

  it('keeps any value after the first = (property)', () => {
    const value = fc.string().filter((s) => !/[\r\n]/.test(s));
    fc.assert(
      fc.property(value, value, (u, p) => {
        const c = parseCredentialFile(`USERNAME=${u}\nPASSWORD=${p}\n`, '/f');
        assert.ok(c.kind === 'basic' && c.username === u && c.password === p);
      }),
    );
  });
});

describe('readCredentialFile', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lading-credfile-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('reads a real file', async () => {
    const p = join(dir, 'creds');
    await writeFile(p, `BEARER_TOKEN=${SECRET}\n`);
    const c = await readCredentialFile(p);
    assert.ok(c.kind === 'bearer' && c.token === SECRET && c.source === p);
  });
  it('a missing file names the file', async () => {
    const p = join(dir, 'absent');
    await assert.rejects(
      readCredentialFile(p),
      (e: Error) => hasCode(e, 'E_AUTH_FILE') && e.message.includes(p),
    );
  });
});
