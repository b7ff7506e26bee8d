import { Command } from 'commander';
import { openSource } from '../../copy/index.ts';
import { Limits, readAtMost } from '../../digest/index.ts';
import {
  formatPlatform,
  type ImageConfig,
  type ImageManifest,
  type IndexManifest,
  type Platform,
  parseConfig,
  parseManifest,
  selectImage,
} from '../../image/index.ts';
import type { Reference } from '../../reference/index.ts';
import { indexPlatforms, resolveImage } from '../../registry/index.ts';
import { type ImageLocation, parseLocation } from '../../transports/index.ts';
import { action, type CommandContext } from '../context.ts';
import { type CliIo, writeJson, writeLine } from '../io.ts';
import {
  type PlatformFlags,
  platformFrom,
  type RegistryFlags,
  withPlatformOptions,
  withRegistryOptions,
} from '../options.ts';

interface Flags extends PlatformFlags {
  raw?: boolean;
  config?: boolean;
  json?: boolean;
}

export function inspectCommand(io: CliIo): Command {
  const cmd = new Command('inspect')
    .description('show an image: digest, media type, platforms, layers, config summary')
    .argument(
      '<image>',
      'image reference (alpine:3.20, docker://127.0.0.1:5000/app@sha256:…) or any location (oci:DIR:TAG, docker-archive:FILE, dir:DIR)',
    )
    .option('--raw', 'print the manifest bytes exactly as the registry serves them')
    .option('--config', "print the selected platform's config bytes exactly")
    .option('--json', 'print a JSON document');
  withPlatformOptions(cmd);
  withRegistryOptions(cmd);
  cmd.addHelpText(
    'after',
    `
Examples:
  lading inspect alpine
  lading inspect --raw ghcr.io/org/app:1.4 | sha256sum
  lading inspect --platform linux/arm64 --json docker.io/library/debian:12
  lading inspect oci:./layout:1.0`,
  );
  return cmd.action(action<Flags, [string]>(io, runInspect));
}

/** What inspect shows, from a registry or from any other transport. */
interface Inspected {
  name: string;
  tag: string | null;
  digest: string;
  mediaType: string;
  index?: IndexManifest;
  image: {
    digest: string;
    mediaType: string;
    bytes: Buffer;
    manifest: ImageManifest;
    configBytes: Buffer;
    config: ImageConfig;
  };
}

/** The platform to show and whether it was asked for. */
interface Selection {
  platform: Platform;
  explicit: boolean;
}

async function runInspect(ctx: CommandContext<Flags & RegistryFlags>, image: string): Promise<void> {
  const { io, flags } = ctx;
  const sel = platformFrom(flags);
  const loc = parseLocation(image);
  const r =
    loc.transport === 'docker' ? await fromRegistry(ctx, loc.ref, sel) : await fromLocation(ctx, loc, sel);
  // --raw printed the manifest already.
  if (!r) return;
  if (flags.config) return writeBytes(io, r.image.configBytes);
  const doc = describe(r);
  if (flags.json) return writeJson(io.out, doc);
  await writeLine(io.out, renderText(doc, r.index !== undefined).join('\n'));
}

/** A registry image, resolved as the registry commands do; undefined when `--raw` printed it. */
async function fromRegistry(
  ctx: CommandContext<Flags & RegistryFlags>,
  ref: Reference,
  sel: Selection,
): Promise<Inspected | undefined> {
  const client = ctx.pool().forRef(ref);
  if (ctx.flags.raw) {
    await writeBytes(ctx.io, (await client.getManifest(ref)).bytes);
    return undefined;
  }
  const res = await resolveImage(client, ref, { platform: sel.platform, platformExplicit: sel.explicit });
  return {
    name: ref.name,
    tag: ref.tag ?? null,
    digest: res.digest,
    mediaType: res.mediaType,
    index: res.index,
    image: res.image,
  };
}

/**
 * Any other transport: the same view, read from the local layout, archive or engine; undefined
 * when `--raw` printed the top-level manifest.
 */
async function fromLocation(
  ctx: CommandContext<Flags & RegistryFlags>,
  loc: ImageLocation,
  sel: Selection,
): Promise<Inspected | undefined> {
  const source = openSource(loc, { pool: ctx.pool(), stdin: ctx.io.stdin, env: ctx.io.env });
  try {
    if (ctx.flags.raw) {
      await writeBytes(ctx.io, (await source.topManifest()).bytes);
      return undefined;
    }
    const s = await selectImage(source, sel);
    const configBytes =
      s.config?.bytes ??
      (await readAtMost(await source.blob(s.manifest.config), Limits.config, `config of ${source.name}`));
    const top = parseManifest(s.top.bytes, s.top.mediaType, source.name);
    return {
      name: source.name,
      tag: null,
      digest: s.top.digest,
      mediaType: s.top.mediaType,
      index: top.kind === 'index' ? top : undefined,
      image: {
        digest: s.instance.digest,
        mediaType: s.instance.mediaType,
        bytes: s.instance.bytes,
        manifest: s.manifest,
        configBytes,
        config: parseConfig(configBytes, `config ${s.manifest.config.digest} of ${source.name}`),
      },
    };
  } finally {
    await source.close();
  }
}

/** The document `--json` prints and the text view shows. */
function describe(r: Inspected) {
  const cfg = r.image.config;
  const p: Platform = { os: cfg.os ?? 'unknown', architecture: cfg.architecture ?? 'unknown' };
  if (cfg.variant) p.variant = cfg.variant;
  const layers = r.image.manifest.layers.map((l) => ({
    digest: l.digest,
    size: l.size,
    mediaType: l.mediaType,
  }));
  return {
    name: r.name,
    tag: r.tag,
    digest: r.digest,
    mediaType: r.mediaType,
    platforms: r.index ? indexPlatforms(r.index) : [formatPlatform(p)],
    instance: {
      digest: r.image.digest,
      mediaType: r.image.mediaType,
      platform: formatPlatform(p),
      size: r.image.bytes.length,
    },
    created: cfg.created ?? null,
    config: {
      digest: r.image.manifest.config.digest,
      size: r.image.manifest.config.size,
      user: cfg.config?.User ?? null,
      env: cfg.config?.Env ?? [],
      entrypoint: cfg.config?.Entrypoint ?? null,
      cmd: cfg.config?.Cmd ?? null,
      workingDir: cfg.config?.WorkingDir ?? null,
      labels: cfg.config?.Labels ?? {},
    },
    layers,
    totalSize: layers.reduce((n, l) => n + l.size, 0),
  };
}

function renderText(doc: ReturnType<typeof describe>, hasIndex: boolean): string[] {
  const lines = [
    `Name:          ${doc.name}${doc.tag ? `:${doc.tag}` : ''}`,
    `Digest:        ${doc.digest}`,
    `MediaType:     ${doc.mediaType}`,
  ];
  if (hasIndex) {
    lines.push(`Platforms:     ${doc.platforms.join(', ')}`);
    lines.push(`Instance:      ${doc.instance.digest} (${doc.instance.platform})`);
    lines.push(`InstanceType:  ${doc.instance.mediaType}`);
  } else {
    lines.push(`Platform:      ${doc.instance.platform}`);
  }
  if (doc.created) lines.push(`Created:       ${doc.created}`);
  lines.push(`Config:        ${doc.config.digest}`);
  if (doc.config.entrypoint) lines.push(`Entrypoint:    ${JSON.stringify(doc.config.entrypoint)}`);
  if (doc.config.cmd) lines.push(`Cmd:           ${JSON.stringify(doc.config.cmd)}`);
  for (const e of doc.config.env) lines.push(`Env:           ${e}`);
  lines.push(`Layers:        ${doc.layers.length} (${doc.totalSize} bytes compressed)`);
  for (const l of doc.layers) lines.push(`  ${l.digest}  ${String(l.size).padStart(12)}  ${l.mediaType}`);
  return lines;
}

function writeBytes(io: CliIo, bytes: Buffer): Promise<void> {
  return new Promise<void>((resolve, reject) => io.out.write(bytes, (e) => (e ? reject(e) : resolve())));
}
