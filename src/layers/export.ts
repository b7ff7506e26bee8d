import { createReadStream } from 'node:fs';
import { lstat, mkdtemp, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { type UnpackResult, unpackRootfs } from './rootfs.ts';
import type { LayerBlob } from './types.ts';

export interface ExportOptions {
  signal?: AbortSignal;
  /** Where the flattened tree is staged (default: the system temp dir). */
  tmpDir?: string;
  onProblem?: (p: UnpackResult['problems'][number]) => void;
}

/**
 * The flattened root filesystem as one deterministic tar (what `crane export` and undocker give,
 * with whiteouts and opaque directories applied correctly). The layers are applied once into a
 * staging directory with the same engine as `unpack`, then packed in byte order of names with
 * modes, owners (as recorded in the layers), link targets verbatim and hardlinks kept as links;
 * mtimes come from the layers. The staging directory is removed afterwards.
 */
export async function exportRootfs(
  layers: LayerBlob[],
  opts: ExportOptions = {},
): Promise<{ stream: Readable; done: Promise<UnpackResult> }> {
  const stage = await mkdtemp(join(opts.tmpDir ?? tmpdir(), 'lading-export-'));
  const root = join(stage, 'rootfs');
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  const done = (async () => {
    try {
      const r = await unpackRootfs(layers, root, {
        signal: opts.signal,
        onProblem: opts.onProblem,
        applyOwners: false,
      });
      const pack = tar.pack();
      const packed = pipeline(pack, out);
      const inodes = new Map<number, string>();
      const walk = async (dir: string, rel: string): Promise<void> => {
        const names = (await readdir(dir)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
        for (const name of names) {
          const abs = join(dir, name);
          const path = rel ? `${rel}/${name}` : name;
          const st = await lstat(abs);
          const [uid, gid] = (r.owners[path] ?? '0:0').split(':').map(Number) as [number, number];
          const base = { name: path, mode: st.mode & 0o7777, uid, gid, mtime: st.mtime };
          if (st.isDirectory()) {
            await entry(pack, { ...base, name: `${path}/`, type: 'directory' });
            await walk(abs, path);
          } else if (st.isSymbolicLink()) {
            await entry(pack, { ...base, type: 'symlink', linkname: await readlink(abs) });
          } else if (st.isFile()) {
            const first = st.nlink > 1 ? inodes.get(st.ino) : undefined;
            if (first) {
              await entry(pack, { ...base, type: 'link', linkname: first });
              continue;
            }
            if (st.nlink > 1) inodes.set(st.ino, path);
            const e = pack.entry({ ...base, type: 'file', size: st.size });
            await pipeline(createReadStream(abs), e);
          }
        }
      };
      await walk(root, '');
      pack.finalize();
      await packed;
      return r;
    } catch (err) {
      out.destroy(err as Error);
      throw err;
    } finally {
      await rm(stage, { recursive: true, force: true });
    }
  })();
  done.catch(() => {});
  return { stream: out, done };
}

function entry(pack: tar.Pack, header: Parameters<tar.Pack['entry']>[0]): Promise<void> {
  return new Promise((resolve, reject) => pack.entry(header, (err) => (err ? reject(err) : resolve())));
}
