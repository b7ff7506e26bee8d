import type { Readable } from 'node:stream';
import type { Digest } from '../digest/index.ts';

/** A layer as the flattening engine takes it: compressed (or not) bytes, a fresh verified stream per call. */
export interface LayerBlob {
  digest: Digest;
  size?: number;
  mediaType?: string;
  /** The uncompressed digest the image config gives (rootfs.diff_ids): verified when given. */
  diffId?: Digest;
  open(opts?: { signal?: AbortSignal }): Promise<Readable>;
}

/** What a refused or skipped entry looks like in reports. */
export interface EntryProblem {
  /** Layer index (0 = bottom). */
  layer: number;
  /** The entry name as written in the tar. */
  entry: string;
  code: 'E_UNSAFE_PATH' | 'E_SKIPPED' | 'E_UNSUPPORTED';
  message: string;
}
