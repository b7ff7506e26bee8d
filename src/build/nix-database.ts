import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { type TarPath, tarDestination } from '../layers/index.ts';
import { type NarHashResult, narHashOfPath } from '../nix/index.ts';
import { makeTempDir } from '../util/index.ts';
import type { GraphEntry } from './popularity.ts';
import type { HistorySpec } from './spec.ts';

/** One store path the image holds: where it lands, where its files are read, what it refers to. */
export interface RegisteredPath {
  /** The store path in the image (`/nix/store/<hash>-<name>`). */
  path: string;
  /** The directory or file the layer reads it from. */
  source: string;
  /** Store paths it refers to (only those the image holds are registered). */
  references: string[];
}

// Nix's local store schema (src/libstore/schema.sql, schema version 10), which every Nix since
// 2.0 reads (newer ones upgrade it on first use).
const SCHEMA = `
create table if not exists ValidPaths (
    id               integer primary key autoincrement not null,
    path             text unique not null,
    hash             text not null,
    registrationTime integer not null,
    deriver          text,
    narSize          integer,
    ultimate         integer,
    sigs             text,
    ca               text
);
create table if not exists Refs (
    referrer  integer not null,
    reference integer not null,
    primary key (referrer, reference),
    foreign key (referrer) references ValidPaths(id) on delete cascade,
    foreign key (reference) references ValidPaths(id) on delete restrict
);
create index if not exists IndexReferrer on Refs(referrer);
create index if not exists IndexReference on Refs(reference);
create trigger if not exists DeleteSelfRefs before delete on ValidPaths
  begin
    delete from Refs where referrer = old.id and reference = old.id;
  end;
create table if not exists DerivationOutputs (
    drv  integer not null,
    id   text not null,
    path text not null,
    primary key (drv, id),
    foreign key (drv) references ValidPaths(id) on delete cascade
);
create index if not exists IndexDerivationOutputs on DerivationOutputs(path);
`;

const STORE_PATH = /^\/nix\/store\/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+$/;

/**
 * Writes what nix2container's `initializeNixDatabase` puts at `/`: `nix/var/nix/db` (schema 10,
 * every path registered with its NAR hash and size, its references, registration time 0, as
 * `nix-store --load-db` then nix2container's `UPDATE ValidPaths SET registrationTime = 0` leave
 * it), `nix/var/nix/gcroots/docker/<name>` links to every path, and an empty `nix/store/.links`.
 * Paths are registered in byte order, so the same paths give the same database (for one SQLite
 * version: the file header names the version that wrote it).
 */
export async function writeNixDatabase(dir: string, paths: RegisteredPath[]): Promise<void> {
  const sorted = [...paths].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  for (const p of sorted)
    if (!STORE_PATH.test(p.path))
      throw new LadingError(
        ErrorCode.BadArgument,
        `initializeNixDatabase: ${JSON.stringify(p.path)} is not a store path (/nix/store/<32-character hash>-<name>)`,
      );
  const db = join(dir, 'nix/var/nix/db');
  await mkdir(db, { recursive: true });
  await mkdir(join(dir, 'nix/var/nix/gcroots/docker'), { recursive: true });
  await mkdir(join(dir, 'nix/store/.links'), { recursive: true });
  await writeFile(join(db, 'schema'), '10');
  const hashes: NarHashResult[] = [];
  for (const p of sorted) hashes.push(await narHashOfPath(p.source));
  const sqlite = new DatabaseSync(join(db, 'db.sqlite'));
  try {
    sqlite.exec('pragma page_size = 4096; pragma journal_mode = delete;');
    sqlite.exec(SCHEMA);
    sqlite.exec('begin');
    const insert = sqlite.prepare(
      'insert into ValidPaths (path, hash, registrationTime, narSize) values (?, ?, 0, ?)',
    );
    const ids = new Map<string, number | bigint>();
    sorted.forEach((p, i) => {
      const h = hashes[i]!;
      const r = insert.run(p.path, `sha256:${h.hash.bytes.toString('hex')}`, h.size);
      ids.set(p.path, r.lastInsertRowid);
    });
    const ref = sqlite.prepare('insert or ignore into Refs (referrer, reference) values (?, ?)');
    for (const p of sorted)
      for (const r of [...p.references].sort()) {
        const to = ids.get(r);
        if (to !== undefined) ref.run(ids.get(p.path)!, to);
      }
    sqlite.exec('commit');
  } finally {
    sqlite.close();
  }
  for (const p of sorted)
    await symlink(p.path, join(dir, 'nix/var/nix/gcroots/docker', p.path.slice('/nix/store/'.length)));
}

/** A planned layer, as `planLayers` gives it. */
export interface PlannedLayer {
  paths: TarPath[];
  history: HistorySpec;
  at: string;
}

/**
 * nix2container's `initializeNixDatabase`: registers every store path the planned layers place at
 * its store path (copyToRoot contents, placed at `/`, are not store paths in the image) and adds
 * the database to the copyToRoot layer (a layer of its own without one), every file of it mode
 * 0755 and owned by `uid`/`gid` (`nixUid`/`nixGid`), so a non-root Nix in the container can use
 * `/nix`. The database lives in a temporary directory until the process ends (the layer is
 * re-created from it when written).
 */
export async function addNixDatabase(
  planned: PlannedLayer[],
  graph: GraphEntry[] | undefined,
  owner: { uid: number; gid: number },
  history: HistorySpec,
): Promise<void> {
  const dest = new Map<string, string>();
  for (const l of planned) for (const p of l.paths) dest.set(p.path, tarDestination(p));
  const refs = new Map<string, string[]>();
  for (const e of graph ?? []) refs.set(e.path, [...(refs.get(e.path) ?? []), ...e.references]);
  const registered: RegisteredPath[] = [];
  const seen = new Set<string>();
  for (const [source, path] of dest) {
    if (!/^\/nix\/store\/[^/]+$/.test(path) || seen.has(path)) continue;
    seen.add(path);
    const references = (refs.get(source) ?? []).map((r) => dest.get(r)).filter((r) => r !== undefined);
    registered.push({ path, source, references });
  }
  const dir = await makeTempDir(tmpdir(), 'nix-db');
  await writeNixDatabase(dir, registered);
  const input: TarPath = {
    path: dir,
    where: 'initializeNixDatabase',
    options: {
      rewrite: { regex: `^${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`, repl: '' },
      perms: [{ regex: '.*', mode: 0o755, uid: owner.uid, gid: owner.gid, where: 'initializeNixDatabase' }],
      permsStyle: 'nix2container',
    },
  };
  const last = planned[planned.length - 1];
  if (last?.at === 'copyToRoot') last.paths.push(input);
  else planned.push({ paths: [input], history, at: 'initializeNixDatabase' });
}
