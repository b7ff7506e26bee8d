import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';

// The README's library examples are code users paste: each ```ts block is type-checked against
// src/index.ts (as `lading`) and src/nix/index.ts (as `lading/nix`) under the project's settings.

const root = join(import.meta.dirname, '..', '..');

function diagnosticsOf(files: string[]): string[] {
  const cfg = ts.readConfigFile(join(root, 'tsconfig.json'), ts.sys.readFile);
  const parsed = ts.parseJsonConfigFileContent(cfg.config, ts.sys, root);
  const options = {
    ...parsed.options,
    noEmit: true,
    // The examples import src/ by absolute path (no emit happens, so no rewriting is needed).
    rewriteRelativeImportExtensions: false,
    typeRoots: [join(root, 'node_modules', '@types')],
  };
  const program = ts.createProgram(files, options);
  return ts
    .getPreEmitDiagnostics(program)
    .map((d) => `${d.file?.fileName ?? ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
}

test("the README's TypeScript examples compile against the public API", async () => {
  const readme = await readFile(join(root, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
  assert.ok(blocks.length >= 1, 'the README has a library example');
  const dir = await mkdtemp(join(tmpdir(), 'lading-readme-'));
  try {
    await writeFile(join(dir, 'package.json'), '{"type":"module"}');
    const files: string[] = [];
    for (const [i, code] of blocks.entries()) {
      const file = join(dir, `example-${i}.ts`);
      const src = code
        .replaceAll(/from 'lading\/nix'/g, `from '${join(root, 'src', 'nix', 'index.ts')}'`)
        .replaceAll(/from 'lading'/g, `from '${join(root, 'src', 'index.ts')}'`);
      // Each example is a module of its own (top-level await).
      await writeFile(file, `${src}\nexport {};\n`);
      files.push(file);
    }
    assert.deepEqual(diagnosticsOf(files), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
