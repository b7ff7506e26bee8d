/**
 * `npm run bench`: lading against the peer tools on the same machine, in the same run, against the
 * same local registry. Prints medians and ratios (lading time / peer time; below 1 is faster).
 *
 * Each row runs the peer and lading ALTERNATELY (peer, lading[, floor], peer, lading, …) for
 * BENCH_RUNS rounds and reports the median of the per-round ratios: this VM's speed drifts by
 * ±30% within minutes, so only ratios taken side by side compare. Beside wall time it records the
 * CPU time (user + sys of the command and its children, from GNU time) and the 1-minute load
 * average before and after the row: a loaded machine shows there, not in the ratios' spread alone.
 *
 * Environment: BENCH_SIZE_MIB (default 200) total uncompressed image size, BENCH_RUNS (default 7,
 * at least 1), BENCH_FLAT=0 to skip the peak-memory check on an image three times as large,
 * BENCH_ONLY=REGEX for the rows whose names match (nothing is recorded then).
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { stripTypeScriptTypes } from 'node:module';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireBin } from '../test/helpers/bins.ts';
import { type BuiltLayout, bigImage, buildLayout, pushLayout } from '../test/helpers/images.ts';
import { nixEnv } from '../test/helpers/nix.ts';
import { startRegistry, type TestRegistry } from '../test/helpers/registry.ts';

const SIZE_MIB = Number(process.env.BENCH_SIZE_MIB ?? 200);
/** BENCH_ONLY=REGEX runs the rows whose names match (the memory check runs only without it). */
const ONLY = process.env.BENCH_ONLY ? new RegExp(process.env.BENCH_ONLY) : undefined;
const wanted = (name: string): boolean => !ONLY || ONLY.test(name);
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 7));
const root = join(import.meta.dirname, '..');
/** The CLI as it is installed (bin/lading and the bundled dist/cli.mjs, see scripts/bundle.ts). */
let lading = join(root, 'bin', 'lading');

async function installedCli(dir: string): Promise<string> {
  await mkdir(join(dir, 'bin'), { recursive: true });
  await copyFile(join(root, 'bin', 'lading'), join(dir, 'bin', 'lading'));
  await copyFile(join(root, 'package.json'), join(dir, 'package.json'));
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'bundle.ts'), join(dir, 'dist', 'cli.mjs')], {
    stdio: 'inherit',
  });
  if (r.status !== 0) throw new Error('bundling the CLI failed');
  return join(dir, 'bin', 'lading');
}

interface Timing {
  seconds: number;
  /** User + system CPU seconds of the command and everything it ran. */
  cpuSeconds: number;
  maxRssMiB: number;
}

/** Runs a shell command under GNU time; returns wall seconds, CPU seconds and peak RSS. */
async function timed(cmd: string, env: NodeJS.ProcessEnv = process.env): Promise<Timing> {
  const dir = await mkdtemp(join(tmpdir(), 'lading-bench-t-'));
  const tfile = join(dir, 'time');
  // Earlier runs' writes are flushed first, so no run pays for another's writeback.
  spawnSync('sync');
  const t0 = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    const p = spawn('/usr/bin/time', ['-f', '%M %U %S', '-o', tfile, 'sh', '-c', cmd], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    p.stderr.on('data', (c: Buffer) => {
      err += c.toString();
    });
    p.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} failed (${code}): ${err.slice(-2000)}`)),
    );
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const [kib, user, sys] = (await readFile(tfile, 'utf8')).trim().split('\n').pop()!.split(' ').map(Number);
  await rm(dir, { recursive: true, force: true });
  return { seconds, cpuSeconds: user! + sys!, maxRssMiB: kib! / 1024 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** A ~SIZE_MIB image in 5 layers (see bigImage). */
async function bigLayout(): Promise<BuiltLayout> {
  return buildLayout(bigImage(SIZE_MIB), '1');
}

interface Round {
  peer: Timing;
  lading: Timing;
  floor?: Timing;
}

interface Row {
  name: string;
  peerName: string;
  rounds: Round[];
  /** Medians of the per-round ratios lading / peer: wall time and CPU time. */
  ratio: number;
  cpuRatio: number;
  /** bench/floor.ts (the least single-thread program doing the same work) / peer, and lading / floor. */
  floorRatio?: number;
  ladingOverFloor?: number;
  /** Medians of each command's own figures, and the peak RSS of any round. */
  lading: Timing;
  peer: Timing;
  floor?: Timing;
  /** The 1-minute load average before and after the row. */
  load: [number, number];
  uploadsPerRebuild?: number[];
}

function summary(xs: Timing[]): Timing {
  return {
    seconds: median(xs.map((x) => x.seconds)),
    cpuSeconds: median(xs.map((x) => x.cpuSeconds)),
    maxRssMiB: Math.max(...xs.map((x) => x.maxRssMiB)),
  };
}

async function compare(
  name: string,
  peerName: string,
  ladingCmd: () => Promise<string>,
  peerCmd: () => Promise<string>,
  env?: NodeJS.ProcessEnv,
  floorCmd?: () => Promise<string>,
): Promise<Row | undefined> {
  if (!wanted(name)) return undefined;
  const load0 = loadavg()[0]!;
  const rounds: Round[] = [];
  for (let i = 0; i < RUNS; i++) {
    const peer = await timed(await peerCmd(), env);
    const lading = await timed(await ladingCmd(), env);
    const floor = floorCmd ? await timed(await floorCmd(), env) : undefined;
    rounds.push({ peer, lading, ...(floor ? { floor } : {}) });
  }
  const per = (f: (r: Round) => number): number => median(rounds.map(f));
  const row: Row = {
    name,
    peerName,
    rounds,
    ratio: per((r) => r.lading.seconds / r.peer.seconds),
    cpuRatio: per((r) => r.lading.cpuSeconds / r.peer.cpuSeconds),
    lading: summary(rounds.map((r) => r.lading)),
    peer: summary(rounds.map((r) => r.peer)),
    load: [load0, loadavg()[0]!],
  };
  if (floorCmd) {
    row.floor = summary(rounds.map((r) => r.floor!));
    row.floorRatio = per((r) => r.floor!.seconds / r.peer.seconds);
    row.ladingOverFloor = per((r) => r.lading.seconds / r.floor!.seconds);
  }
  const t = (x: Timing): string =>
    `${x.seconds.toFixed(2)}s (cpu ${x.cpuSeconds.toFixed(2)}s, ${x.maxRssMiB.toFixed(0)} MiB)`;
  console.log(
    `${name.padEnd(34)} lading ${t(row.lading)}  ${peerName} ${t(row.peer)}  ratio ${row.ratio.toFixed(2)} (cpu ${row.cpuRatio.toFixed(2)})  load ${row.load.map((l) => l.toFixed(1)).join('→')}`,
  );
  if (row.floor) {
    console.log(
      `${''.padEnd(34)} floor (bench/floor.ts) ${t(row.floor)}: ratio to ${peerName} ${row.floorRatio!.toFixed(2)}, lading / floor ${row.ladingOverFloor!.toFixed(2)}`,
    );
  }
  return row;
}

/**
 * Issue 6's scenario: an image built from ~SIZE_MIB of files in 5 store paths (one layer each) is
 * pushed once; then one file of a 50 MiB layer changes and the image is rebuilt and pushed again.
 * lading builds and pushes in one command (its layer digest cache and the destination's diff_ids
 * spare the unchanged layers). The peer is skopeo pushing the same rebuilt image from an OCI layout
 * into a registry that holds the previous version (its blob-info cache lets it skip what it knows).
 */
/** Blobs a repository links (uploaded or mounted into it), read from the registry's storage. */
async function repositoryBlobs(reg: TestRegistry, repository: string): Promise<number> {
  const dir = join(
    reg.storageDir,
    'docker',
    'registry',
    'v2',
    'repositories',
    repository,
    '_layers',
    'sha256',
  );
  return (await readdir(dir).catch(() => [])).length;
}

async function rebuildRepush(
  work: string,
  reg: TestRegistry,
  env: NodeJS.ProcessEnv,
): Promise<Row | undefined> {
  if (!wanted('rebuild+repush, 1 file changed')) return undefined;
  const registry = reg.host;
  const dir = join(work, 'build');
  const paths: string[] = [];
  for (const [i, layer] of bigImage(SIZE_MIB).layers.entries()) {
    const storePath = join(dir, 'nix/store', `${'abcdefghij'[i]!.repeat(32)}-part${i}`);
    paths.push(storePath);
    for (const e of layer.entries) {
      if (e.type && e.type !== 'file') continue;
      const p = join(storePath, e.path);
      await mkdir(join(p, '..'), { recursive: true });
      await writeFile(p, e.content ?? '', { mode: e.mode ?? 0o644 });
    }
  }
  const spec = join(dir, 'spec.json');
  await writeFile(
    spec,
    JSON.stringify({
      layers: paths.map((p) => ({ paths: [p] })),
      rewrites: [{ regex: `^${dir}`, repl: '' }],
      config: { Cmd: ['/bin/sh'] },
    }),
  );
  const changing = join(paths[3]!, 'data/l3/f1.bin');
  const cache = join(work, 'build-cache');
  const layout = join(work, 'build-oci');
  let edits = 0;
  const edit = () => `echo change ${edits++} >> ${changing}`;
  await timed(`${lading} build -q ${spec} -o docker://${registry}/bench/built:1 --cache-dir ${cache}`, env);
  await timed(`${lading} build -q ${spec} -o oci:${layout}:1 --no-cache`, env);
  await timed(
    `skopeo copy -q --dest-tls-verify=false oci:${layout}:1 docker://${registry}/bench/built-skopeo:1`,
    env,
  );
  // Counted at the registry: what each rebuild added to the repository (the changed layer and the
  // new config are all there is to upload).
  const added: number[] = [];
  let before: number | undefined;
  const row = await compare(
    'rebuild+repush, 1 file changed',
    'skopeo copy (same image)',
    async () => {
      const now = await repositoryBlobs(reg, 'bench/built');
      if (before !== undefined) added.push(now - before);
      before = now;
      return `${edit()} && ${lading} build -q ${spec} -o docker://${registry}/bench/built:1 --cache-dir ${cache} >/dev/null`;
    },
    async () => {
      // The peer pushes the image lading just built (unchanged layers uncompressed, as built).
      await timed(`${edit()} && ${lading} build -q ${spec} -o oci:${layout}:1 --no-cache >/dev/null`, env);
      return `skopeo copy -q --dest-tls-verify=false oci:${layout}:1 docker://${registry}/bench/built-skopeo:1`;
    },
    env,
  );
  if (!row) return undefined;
  if (before !== undefined) added.push((await repositoryBlobs(reg, 'bench/built')) - before);
  console.log(
    `  blobs each lading rebuild uploaded (counted in the registry's storage): ${added.join(', ')}`,
  );
  return { ...row, uploadsPerRebuild: added };
}

async function main(): Promise<void> {
  for (const b of ['docker-registry', 'skopeo', 'umoci', 'nix-hash', 'nix-store']) requireBin(b);
  console.log(
    `lading bench: ${SIZE_MIB} MiB image, ${RUNS} alternating rounds per row, medians of per-round ratios; node ${process.version}; the installed CLI (bundled)`,
  );
  const reg = await startRegistry({ auth: 'none' });
  const work = await mkdtemp(join(tmpdir(), 'lading-bench-'));
  try {
    lading = await installedCli(join(work, 'pkg'));
    const t0 = Date.now();
    const layout = await bigLayout();
    await pushLayout(layout, reg, 'bench/big:1');
    const compressed = layout.images[0]!.layers.reduce((n, l) => n + l.size, 0);
    console.log(
      `image ready in ${((Date.now() - t0) / 1000).toFixed(1)}s: ${(compressed / 1048576).toFixed(0)} MiB compressed in ${layout.images[0]!.layers.length} layers`,
    );
    const ref = `${reg.host}/bench/big:1`;
    const digest = layout.digest;
    // Types stripped ahead: run as .ts, Node.js would load its TypeScript stripper on every
    // start (~0.2 CPU-seconds the floor's work does not need; lading runs bundled).
    const floor = join(work, 'floor.mjs');
    await writeFile(floor, stripTypeScriptTypes(await readFile(join(root, 'bench', 'floor.ts'), 'utf8')));
    const image = layout.images[0]!;
    const blobDigests = [image.configDigest, ...image.layers.map((l) => l.digest)].join(' ');
    let n = 0;
    const fresh = async (): Promise<string> => {
      const d = join(work, `run-${n++}`);
      await mkdir(d, { recursive: true });
      return d;
    };
    const rows: (Row | undefined)[] = [];
    const env = { ...nixEnv(), HOME: work };

    rows.push(
      await compare(
        'prefetch (cold cache)',
        'nix-prefetch-docker pipeline',
        async () =>
          `${lading} prefetch --quiet --cache-dir ${await fresh()} ${reg.host}/bench/big 1 >/dev/null`,
        async () => {
          const d = await fresh();
          const tar = join(d, 'docker-image-bench-big-1.tar');
          return [
            `skopeo --insecure-policy --override-os linux --override-arch amd64 inspect --tls-verify=false docker://${ref} >/dev/null`,
            `skopeo --insecure-policy --override-os linux --override-arch amd64 copy -q --src-tls-verify=false docker://${reg.host}/bench/big@${digest} docker-archive://${tar}:${reg.host}/bench/big:1`,
            `nix-hash --flat --type sha256 --base32 ${tar} >/dev/null`,
            `nix-store --add-fixed sha256 ${tar} >/dev/null`,
          ].join(' && ');
        },
        env,
        async () => `node ${floor} prefetch ${reg.host} bench/big ${blobDigests}`,
      ),
    );
    const warm = await fresh();
    await timed(`${lading} prefetch --quiet --cache-dir ${warm} ${reg.host}/bench/big 1 >/dev/null`);
    rows.push(
      await compare(
        'prefetch (repeat, warm cache)',
        'skopeo inspect',
        async () => `${lading} prefetch --quiet --cache-dir ${warm} ${reg.host}/bench/big 1 >/dev/null`,
        async () => `skopeo inspect --tls-verify=false docker://${ref} >/dev/null`,
      ),
    );
    for (const [name, ladingDst, skopeoDst] of [
      ['copy registry→oci', (d: string) => `oci:${d}/o:1`, (d: string) => `oci:${d}/o:1`],
      ['copy registry→dir', (d: string) => `dir:${d}/d`, (d: string) => `dir:${d}/d`],
      [
        'copy registry→docker-archive',
        (d: string) => `docker-archive:${d}/a.tar:bench/big:1`,
        (d: string) => `docker-archive:${d}/a.tar:bench/big:1`,
      ],
    ] as const) {
      rows.push(
        await compare(
          name,
          'skopeo copy',
          async () => `${lading} copy -q --no-cache docker://${ref} ${ladingDst(await fresh())} >/dev/null`,
          async () => `skopeo copy -q --src-tls-verify=false docker://${ref} ${skopeoDst(await fresh())}`,
          undefined,
          name === 'copy registry→oci'
            ? async () => `node ${floor} copy ${reg.host} bench/big ${await fresh()} ${blobDigests}`
            : undefined,
        ),
      );
    }
    // Each push goes to a registry of its own, so neither tool can skip or mount blobs it saw before.
    const pushTargets: TestRegistry[] = [];
    const freshRegistry = async (): Promise<TestRegistry> => {
      const r = await startRegistry({ auth: 'none' });
      pushTargets.push(r);
      return r;
    };
    rows.push(
      await compare(
        'copy oci→registry (empty registry)',
        'skopeo copy',
        async () =>
          `${lading} copy -q --no-cache oci:${layout.dir}:1 docker://${(await freshRegistry()).host}/bench/push:1 >/dev/null`,
        async () =>
          `skopeo copy -q --dest-tls-verify=false oci:${layout.dir}:1 docker://${(await freshRegistry()).host}/bench/push:1`,
      ),
    );
    rows.push(await rebuildRepush(work, await freshRegistry(), { ...process.env, HOME: work }));
    await Promise.all(pushTargets.map((r) => r.stop()));
    rows.push(
      await compare(
        'unpack',
        'umoci unpack',
        async () => `${lading} unpack -q oci:${layout.dir}:1 ${await fresh()}/rootfs >/dev/null`,
        async () => `umoci unpack --image ${layout.dir}:1 ${await fresh()}/bundle >/dev/null 2>&1`,
      ),
    );
    rows.push(
      await compare(
        'extract a top-layer file',
        'lading unpack (whole image)',
        async () => `${lading} extract -q --no-cache docker://${ref} /usr/bin/tool -o ${await fresh()}/tool`,
        async () => `${lading} unpack -q --no-cache docker://${ref} ${await fresh()}/rootfs`,
      ),
    );
    console.log(
      '\nratio = median over rounds of lading time / peer time (lower is better); cpu = the same for user+sys CPU; RSS is the peak of any run',
    );
    // Memory must not grow with the image: the same commands on an image three times as large.
    const flat: { command: string; sizeMiB: number; maxRssMiB: number }[] = [];
    if (process.env.BENCH_FLAT !== '0' && !ONLY) {
      const large = await buildLayout(bigImage(SIZE_MIB * 3), '1');
      await pushLayout(large, reg, 'bench/large:1');
      for (const [command, cmd] of [
        [
          'prefetch',
          (img: string, d: string) =>
            `${lading} prefetch --quiet --cache-dir ${d} ${reg.host}/bench/${img} 1`,
        ],
        [
          'copy registry→oci',
          (img: string, d: string) => `${lading} copy -q --no-cache ${reg.host}/bench/${img}:1 oci:${d}/o:1`,
        ],
        [
          'unpack',
          (img: string, d: string) => `${lading} unpack -q --no-cache ${reg.host}/bench/${img}:1 ${d}/rootfs`,
        ],
      ] as const) {
        for (const [img, size] of [
          ['big', SIZE_MIB],
          ['large', SIZE_MIB * 3],
        ] as const) {
          let peak = 0;
          // Peak memory hardly varies between runs: three are enough.
          for (let i = 0; i < Math.min(RUNS, 3); i++)
            peak = Math.max(peak, (await timed(`${cmd(img, await fresh())} >/dev/null`)).maxRssMiB);
          flat.push({ command, sizeMiB: size, maxRssMiB: peak });
        }
        const [a, b] = flat.slice(-2);
        console.log(
          `peak RSS ${command.padEnd(20)} ${a!.sizeMiB} MiB image: ${a!.maxRssMiB.toFixed(0)} MiB   ${b!.sizeMiB} MiB image: ${b!.maxRssMiB.toFixed(0)} MiB`,
        );
      }
    }
    if (!ONLY)
      await writeFile(
        join(root, 'bench', 'last-run.json'),
        `${JSON.stringify({ date: new Date().toISOString(), sizeMiB: SIZE_MIB, runs: RUNS, rows: rows.filter((r) => r), flat }, null, 2)}\n`,
      ).catch(() => {});
  } finally {
    await reg.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
