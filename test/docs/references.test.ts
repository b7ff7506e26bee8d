import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Every Markdown file a reader of the repository meets. */
function docs(): string[] {
  const out = ['README.md', 'CONTRIBUTING.md', 'test/helpers/README.md'];
  for (const f of readdirSync(join(root, 'docs'))) if (f.endsWith('.md')) out.push(`docs/${f}`);
  return out;
}

test('every document a doc cites by name (x.md) is in the repository', () => {
  const missing: string[] = [];
  for (const doc of docs()) {
    const text = readFileSync(join(root, doc), 'utf8');
    for (const m of text.matchAll(/[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md\b/g)) {
      const name = m[0].replace(/^\.\//, '');
      const candidates = [join(root, dirname(doc), name), join(root, name), join(root, 'docs', name)];
      if (!candidates.some((c) => existsSync(c))) missing.push(`${doc}: ${name}`);
    }
  }
  assert.deepEqual(missing, []);
});
