/**
 * Dead-export check (issue 17.8): every value a folder's index.ts exports must be used outside
 * that folder — by another folder of src/, the public API (src/index.ts, and `lading/nix`), or a
 * test or benchmark (a unit test of a parser is a user).
 * Today's dead exports are listed in scripts/dead-exports.baseline.txt: the check fails on a new
 * one, and on a baseline entry that is no longer dead (remove it), so the list only shrinks.
 *
 * Usage: node scripts/dead-exports.ts   (exit 1 with the differences)
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

const root = join(import.meta.dirname, '..');
const src = join(root, 'src');
const baselineFile = join(import.meta.dirname, 'dead-exports.baseline.txt');

function* tsFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* tsFiles(p);
    else if (p.endsWith('.ts')) yield p;
  }
}

const files = [...tsFiles(src)];
const users = [...files, ...tsFiles(join(root, 'test')), ...tsFiles(join(root, 'bench'))];
const program = ts.createProgram(files, {
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  allowImportingTsExtensions: true,
  noEmit: true,
  skipLibCheck: true,
  types: [],
});
const checker = program.getTypeChecker();
const folderOf = (file: string): string => relative(src, file).split('/')[0]!;
/** Public entry points: whatever they export is used. */
const PUBLIC = new Set([join(src, 'index.ts'), join(src, 'nix', 'index.ts')]);

/** Value exports of each folder index: `folder/path/index.ts name`. */
const exported = new Map<string, { file: string; name: string }>();
for (const file of files) {
  if (!file.endsWith('/index.ts') || PUBLIC.has(file) || dirname(file) === src) continue;
  const sf = program.getSourceFile(file)!;
  const mod = checker.getSymbolAtLocation(sf);
  if (!mod) continue;
  for (const sym of checker.getExportsOfModule(mod)) {
    const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
    if (!(target.flags & ts.SymbolFlags.Value)) continue;
    exported.set(`${relative(src, file)} ${sym.name}`, { file, name: sym.name });
  }
}

/** Names imported or re-exported from each index by files outside its folder. */
const used = new Set<string>();
for (const file of users) {
  const sf =
    program.getSourceFile(file) ??
    ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ESNext, false);
  for (const st of sf.statements) {
    if (!(ts.isImportDeclaration(st) || ts.isExportDeclaration(st)) || !st.moduleSpecifier) continue;
    const spec = (st.moduleSpecifier as ts.StringLiteral).text;
    if (!spec.startsWith('.')) continue;
    const target = resolve(dirname(file), spec);
    const inside = file.startsWith(src) && folderOf(target) === folderOf(file) && !PUBLIC.has(file);
    if (!target.endsWith('/index.ts') || !target.startsWith(src) || inside) continue;
    const key = relative(src, target);
    const names: string[] = [];
    if (ts.isImportDeclaration(st)) {
      const b = st.importClause?.namedBindings;
      if (b && ts.isNamedImports(b)) for (const e of b.elements) names.push((e.propertyName ?? e.name).text);
      else if (b) names.push('*');
    } else if (st.exportClause && ts.isNamedExports(st.exportClause)) {
      for (const e of st.exportClause.elements) names.push((e.propertyName ?? e.name).text);
    } else names.push('*');
    for (const n of names) used.add(`${key} ${n}`);
  }
}

const dead = [...exported.keys()].filter((k) => !used.has(k) && !used.has(`${k.split(' ')[0]} *`)).sort();
const baseline = readFileSync(baselineFile, 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const added = dead.filter((d) => !baseline.includes(d));
const gone = baseline.filter((b) => !dead.includes(b));
if (process.argv.includes('--print')) console.log(dead.join('\n'));
else if (added.length || gone.length) {
  if (added.length)
    console.error(`lading: exports used by nothing outside their folder:\n  ${added.join('\n  ')}`);
  if (gone.length)
    console.error(
      `lading: no longer dead, remove from ${relative(root, baselineFile)}:\n  ${gone.join('\n  ')}`,
    );
  process.exit(1);
} else console.log(`dead exports: ${dead.length} (the baseline), none new`);
