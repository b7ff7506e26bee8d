import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { BlobCache } from '../../cache/index.ts';
import { copyImage, imageLayers, withDiffIds } from '../../copy/index.ts';
import { type Digest, digestHex, parseDigest } from '../../digest/index.ts';
import { ErrorCode, LadingError } from '../../errors/index.ts';
import { type ImageSource, type Platform, parseManifest, selectImage } from '../../image/index.ts';
import { assertComplete, extractPaths, type LayerBlob, unpackRootfs } from '../../layers/index.ts';
import { prefetch } from '../../pin/index.ts';
import { parseReference } from '../../reference/index.ts';
import {
  DirSource,
  DockerArchiveSink,
  DockerArchiveSource,
  OciLayoutSource,
} from '../../transports/index.ts';
import type { NixBuildEnv } from './nix-builder.ts';

/** `dockerTools.pullImage`'s output: skopeo's docker-archive, byte for byte. */
async function pullImage(b: NixBuildEnv): Promise<void> {
  await prefetch({
    pool: await b.pool(),
    imageName: b.need('imageName'),
    digest: parseDigest(b.need('imageDigest'), 'imageDigest'),
    platform: b.platform(),
    finalImageName: b.need('finalImageName'),
    finalImageTag: b.need('finalImageTag'),
    cache: new BlobCache(join(b.tmp, 'lading-cache')),
    archivePath: b.out,
    want: { dockerTools: true, nix2container: false },
  });
}

/** `nix2container.pullImage`'s output: skopeo's `dir:` layout of the platform's image. */
async function pullDir(b: NixBuildEnv): Promise<void> {
  await prefetch({
    pool: await b.pool(),
    imageName: b.need('imageName'),
    digest: parseDigest(b.need('imageDigest'), 'imageDigest'),
    platform: b.platform(),
    cache: new BlobCache(join(b.tmp, 'lading-cache')),
    dirPath: b.out,
    want: { dockerTools: false, nix2container: false },
  });
}

/** One blob, verified against its digest while it streams (Nix checks it again: the FOD's hash). */
async function blob(b: NixBuildEnv): Promise<void> {
  const ref = parseReference(b.need('imageName'));
  const digest = parseDigest(b.need('digest'), 'digest');
  const size = b.opt('size');
  const pool = await b.pool();
  const stream = await pool.forRef(ref).openBlob(ref.repository, digest, {
    size: size === undefined ? undefined : Number(size),
  });
  await pipeline(stream, createWriteStream(b.out, { flags: 'wx' }));
}

interface BlobInput {
  digest: Digest;
  path: string;
}

function blobInputs(b: NixBuildEnv, name: string): BlobInput[] {
  const raw = b.need(name);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new LadingError(ErrorCode.BadArgument, `the derivation attribute ${name} is not JSON`);
  }
  if (!Array.isArray(parsed))
    throw new LadingError(ErrorCode.BadArgument, `the derivation attribute ${name} is not a list`);
  return parsed.map((x: { digest?: string; path?: string }, i) => {
    if (typeof x?.path !== 'string' || typeof x.digest !== 'string')
      throw new LadingError(ErrorCode.BadArgument, `${name}[${i}] needs digest and path`);
    return { digest: parseDigest(x.digest, `${name}[${i}].digest`), path: x.path };
  });
}

/** An OCI layout of one image: the manifest from the lock, each blob a link to its own store path. */
async function ociLayout(b: NixBuildEnv): Promise<void> {
  const manifest = Buffer.from(b.need('manifest'), 'utf8');
  const digest = `sha256:${createHash('sha256').update(manifest).digest('hex')}` as Digest;
  const expected = b.opt('manifestDigest');
  if (expected && expected !== digest)
    throw new LadingError(
      ErrorCode.DigestMismatch,
      `the manifest given has digest ${digest}, not ${expected}`,
      { expected, found: digest },
    );
  const parsed = parseManifest(manifest, undefined, 'the manifest given');
  if (parsed.kind !== 'image')
    throw new LadingError(ErrorCode.ManifestUnsupported, 'the manifest given is not an image manifest');
  const blobs = blobInputs(b, 'blobs');
  const dir = join(b.out, 'blobs', 'sha256');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, digestHex(digest)), manifest);
  for (const x of blobs) {
    const at = join(dir, digestHex(x.digest));
    if (
      await lstat(at).then(
        () => true,
        () => false,
      )
    )
      continue;
    await symlink(x.path, at);
  }
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      {
        mediaType: parsed.mediaType,
        digest,
        size: manifest.length,
        annotations: { 'org.opencontainers.image.ref.name': b.opt('refName') ?? 'latest' },
      },
    ],
  };
  await writeFile(join(b.out, 'index.json'), JSON.stringify(index));
  await writeFile(join(b.out, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
}

/** An image store path as a source: a docker-archive file, an OCI layout, or a `dir:` layout. */
async function imageSource(path: string): Promise<ImageSource> {
  const s = await stat(path).catch(() => undefined);
  if (!s) throw new LadingError(ErrorCode.NotFound, `the image ${path} does not exist`, { path });
  if (s.isFile()) return new DockerArchiveSource(path);
  const names = await readdir(path);
  if (names.includes('oci-layout')) return new OciLayoutSource(path);
  if (names.includes('version') && names.includes('manifest.json')) return new DirSource(path);
  throw new LadingError(
    ErrorCode.Transport,
    `${path} is neither a docker-archive, an OCI layout nor a dir: layout`,
    { path },
  );
}

/** What pullImage gives, from an OCI layout (fetchImage's `.dockerArchive`). */
async function dockerArchive(b: NixBuildEnv): Promise<void> {
  const source = await imageSource(b.need('image'));
  try {
    await copyImage(source, new DockerArchiveSink(b.out, parseReference(b.need('destNameTag'))));
  } finally {
    await source.close();
  }
}

/**
 * The layers of fetchImage's lock-guided extraction: only those from the deciding one up are
 * inputs of the derivation; a lower one asked for means the lock's record was wrong.
 */
function lockedLayers(b: NixBuildEnv): LayerBlob[] {
  const count = Number(b.need('layerCount'));
  const given = blobInputs(b, 'layers');
  const from = count - given.length;
  return Array.from({ length: count }, (_, i): LayerBlob => {
    const g = given[i - from];
    if (!g)
      return {
        digest: 'sha256:unknown' as Digest,
        open: async () => {
          throw new LadingError(
            ErrorCode.NotFound,
            `${b.need('path')} is not decided by layers ${from}..${count - 1}, the ones the lock names (run lading lock add --extract again)`,
          );
        },
      };
    return { digest: g.digest, open: async () => createReadStream(g.path) };
  });
}

/** The platform's image of `source` with its layers, each layer's diff_id checked as it is read. */
async function layersOf(source: ImageSource, platform: Platform) {
  return withDiffIds(source, imageLayers(source, await selectImage(source, { platform })));
}

/** One file out of an image, symlinks followed, whiteouts respected; executable when it was. */
async function extractFile(b: NixBuildEnv): Promise<void> {
  const path = b.need('path');
  const dest = join(b.tmp, 'extracted');
  let layers: LayerBlob[];
  let source: ImageSource | undefined;
  if (b.opt('layers') !== undefined) layers = lockedLayers(b);
  else {
    source = await imageSource(b.need('image'));
    layers = (await layersOf(source, b.platform())).layers;
  }
  try {
    const r = await extractPaths(layers, [path], { dest });
    const x = r.results[0]!;
    if (x.type !== 'file')
      throw new LadingError(ErrorCode.BadArgument, `${path} is a directory: use unpackImage for directories`);
    const modeArg = b.opt('mode');
    const mode = modeArg === undefined ? x.mode : Number.parseInt(modeArg, 8);
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777)
      throw new LadingError(ErrorCode.BadArgument, `mode ${JSON.stringify(modeArg)} is not an octal mode`);
    await copyFile(dest, b.out);
    await chmod(b.out, mode & 0o777);
    b.log(
      `lading: ${path}${x.resolvedPath !== path.replace(/^\/+/, '') ? ` (-> /${x.resolvedPath})` : ''}: ${x.size} bytes, mode ${(mode & 0o7777).toString(8)}; read ${r.layersOpened} of ${r.layerCount} layers`,
    );
  } finally {
    await source?.close();
  }
}

/** The flattened root filesystem, less what a store path cannot hold (named in the log). */
async function unpack(b: NixBuildEnv): Promise<void> {
  const source = await imageSource(b.need('image'));
  try {
    const sel = await layersOf(source, b.platform());
    const r = await unpackRootfs(sel.layers, b.out, {
      applyOwners: false,
      onProblem: (p) => b.log(`lading: layer ${p.layer}: ${p.message}`),
    });
    assertComplete(r, b.out);
    const dropped = await dropUnstorable(b.out, '');
    for (const d of dropped)
      b.log(`lading: /${d}: a device, FIFO or socket, which a Nix store path cannot hold; left out`);
    const owned = Object.keys(r.owners).length;
    if (owned)
      b.log(`lading: ${owned} entries belong to other users than root; the Nix store keeps no owners`);
  } finally {
    await source.close();
  }
}

/** Removes device nodes, FIFOs and sockets (a NAR holds files, directories and symlinks only). */
async function dropUnstorable(root: string, rel: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(root, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await dropUnstorable(root, p)));
    else if (!e.isFile() && !e.isSymbolicLink()) {
      await rm(join(root, p), { force: true });
      out.push(p);
    }
  }
  return out;
}

/** The builders, by the name `lading nix-builder NAME` takes. */
export const NIX_BUILDERS: Record<string, (b: NixBuildEnv) => Promise<void>> = {
  'pull-image': pullImage,
  'pull-dir': pullDir,
  blob,
  'oci-layout': ociLayout,
  'docker-archive': dockerArchive,
  'extract-file': extractFile,
  unpack,
};
