import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';

// Imports only go down these levels (CONTRIBUTING.md); errors sits below everything.

const LEVEL: Record<string, number> = {
  errors: 0,
  digest: 0.5,
  util: 0.5,
  reference: 1,
  image: 1,
  cache: 1,
  nix: 1,
  auth: 2,
  layers: 2,
  registry: 3,
  transports: 4,
  build: 4,
  copy: 5,
  pin: 6,
  cli: 7,
};
// Pure modules that must not pull in the network stack.
const NO_NETWORK = new Set([
  'errors',
  'digest',
  'util',
  'reference',
  'image',
  'cache',
  'nix',
  'auth',
  'layers',
]);

const src = join(import.meta.dirname, '..', 'src');

function* files(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* files(p);
    else if (p.endsWith('.ts')) yield p;
  }
}

test('every src folder has a level', () => {
  for (const name of readdirSync(src)) {
    if (statSync(join(src, name)).isDirectory())
      assert.ok(name in LEVEL, `src/${name} has no level in the boundary test`);
  }
});

test('imports only go down the levels', () => {
  const violations: string[] = [];
  for (const file of files(src)) {
    const rel = relative(src, file);
    const folder = rel.split('/')[0]!;
    if (!(folder in LEVEL)) continue;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
      const spec = m[1]!;
      if (/^(node:)?(https?|http2|net|tls|dgram)$/.test(spec) && NO_NETWORK.has(folder))
        violations.push(`${rel} imports ${spec}`);
      if (!spec.startsWith('.')) continue;
      const target = relative(src, join(file, '..', spec)).split('/')[0]!;
      if (target === folder || !(target in LEVEL)) continue;
      if (LEVEL[target]! >= LEVEL[folder]!)
        violations.push(`${rel} (level ${LEVEL[folder]}) imports ${target} (level ${LEVEL[target]})`);
    }
  }
  assert.deepEqual(violations, []);
});

test('folders that must not touch the network do not load it through getBuiltinModule either', () => {
  const violations: string[] = [];
  for (const file of files(src)) {
    const rel = relative(src, file);
    if (!NO_NETWORK.has(rel.split('/')[0]!)) continue;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/getBuiltinModule\s*\(\s*['"`]([^'"`]+)['"`]/g))
      if (/^(node:)?(https?|http2|net|tls|dgram)$/.test(m[1]!)) violations.push(`${rel} loads ${m[1]}`);
    if (/getBuiltinModule\s*\(\s*[^'"`\s]/.test(text)) violations.push(`${rel} loads a computed builtin`);
  }
  assert.deepEqual(violations, []);
});

test("imports from another folder go through that folder's index", () => {
  const violations: string[] = [];
  for (const file of files(src)) {
    const rel = relative(src, file);
    const folder = rel.split('/')[0]!;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
      const spec = m[1]!;
      if (!spec.startsWith('.')) continue;
      const target = relative(src, join(file, '..', spec));
      if (target.split('/')[0] === folder || !target.includes('/')) continue;
      // A folder's index (or a sub-folder's, such as transports/docker-archive/index.ts).
      if (!target.endsWith('/index.ts')) violations.push(`${rel} imports ${target}`);
    }
  }
  assert.deepEqual(violations, []);
});
