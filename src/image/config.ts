import type { Digest } from '../digest/index.ts';
import { parseDigest } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { jsonWhy, parseBoundedJson } from '../util/index.ts';
import { CONFIG_FIELDS, CONTAINER_CONFIG_FIELDS, ROOTFS_FIELDS, refuseGoCaseVariants } from './go-fields.ts';

/** The parts of an OCI/Docker image config lading reads. Unknown keys are kept in `raw`. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  created?: string;
  author?: string;
  config?: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    Labels?: Record<string, string> | null;
    ExposedPorts?: Record<string, unknown>;
    Volumes?: Record<string, unknown>;
    StopSignal?: string;
  };
  rootfs?: { type: string; diff_ids: Digest[] };
  history?: {
    created?: string;
    created_by?: string;
    empty_layer?: boolean;
    comment?: string;
    author?: string;
  }[];
}

/** Parses config bytes; validates the diff IDs so they can be used in paths. */
export function parseConfig(bytes: Uint8Array, where = 'image config'): ImageConfig {
  let json: unknown;
  try {
    json = parseBoundedJson(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new LadingError(ErrorCode.ManifestInvalid, `malformed ${where}: ${jsonWhy(err)}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new LadingError(ErrorCode.ManifestInvalid, `malformed ${where}: not a JSON object`);
  }
  const cfg = json as ImageConfig;
  refuseGoCaseVariants(json as Record<string, unknown>, CONFIG_FIELDS, where);
  for (const [key, fields] of [
    ['config', CONTAINER_CONFIG_FIELDS],
    ['rootfs', ROOTFS_FIELDS],
  ] as const) {
    const inner = (json as Record<string, unknown>)[key];
    if (typeof inner === 'object' && inner !== null && !Array.isArray(inner))
      refuseGoCaseVariants(inner as Record<string, unknown>, fields, `${where} (${key})`);
  }
  if (cfg.rootfs !== undefined) {
    if (!Array.isArray(cfg.rootfs.diff_ids)) {
      throw new LadingError(ErrorCode.ManifestInvalid, `malformed ${where}: rootfs.diff_ids is not an array`);
    }
    cfg.rootfs.diff_ids = cfg.rootfs.diff_ids.map((d, i) => parseDigest(String(d), `rootfs.diff_ids[${i}]`));
  }
  return cfg;
}
