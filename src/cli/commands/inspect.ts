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
import { indexPlatforms, resolveImage } from '../../registry/index.ts';
import { parseLocation } from '../../transports/index.ts';
import { action } from '../context.ts';
import { type CliIo, writeJson, writeLine } from '../io.ts';
import { type PlatformFlags, platformFrom, withPlatformOptions, withRegistryOptions } from '../options.ts';

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
  return cmd.action(
    action<Flags, [string]>(io, async (ctx, image) => {
      const { platform, explicit } = platformFrom(ctx.flags);
      const loc = parseLocation(image);
      let r: Inspected;
      if (loc.transport === 'docker') {
        const ref = loc.ref;
        const client = ctx.pool().forRef(ref);
        if (ctx.flags.raw) {
          await writeBytes(io, (await client.getManifest(ref)).bytes);
          return;
        }
        const res = await resolveImage(client, ref, { platform, platformExplicit: explicit });
        r = {
          name: ref.name,
          tag: ref.tag ?? null,
          digest: res.digest,
          mediaType: res.mediaType,
          index: res.index,
          image: res.image,
        };
      } else {
        // Any other transport: the same view, read from the local layout, archive or engine.
        const source = openSource(loc, { pool: ctx.pool(), stdin: io.stdin, env: io.env });
        try {
          if (ctx.flags.raw) {
            await writeBytes(io, (await source.topManifest()).bytes);
            return;
          }
          const sel = await selectImage(source, { platform, explicit });
          const configBytes =
            sel.config?.bytes ??
            (await readAtMost(
              await source.blob(sel.manifest.config),
              Limits.config,
              `config of ${source.name}`,
            ));
          const top = parseManifest(sel.top.bytes, sel.top.mediaType, source.name);
          r = {
            name: source.name,
            tag: null,
            digest: sel.top.digest,
            mediaType: sel.top.mediaType,
            index: top.kind === 'index' ? top : undefined,
            image: {
              digest: sel.instance.digest,
              mediaType: sel.instance.mediaType,
              bytes: sel.instance.bytes,
              manifest: sel.manifest,
              configBytes,
              config: parseConfig(configBytes, `config ${sel.manifest.config.digest} of ${source.name}`),
            },
          };
        } finally {
          await source.close();
        }
      }
      if (ctx.flags.config) {
        await writeBytes(io, r.image.configBytes);
        return;
      }
      const cfg = r.image.config;
      const p: Platform = { os: cfg.os ?? 'unknown', architecture: cfg.architecture ?? 'unknown' };
      if (cfg.variant) p.variant = cfg.variant;
      const layers = r.image.manifest.layers.map((l) => ({
        digest: l.digest,
        size: l.size,
        mediaType: l.mediaType,
      }));
      const doc = {
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
      if (ctx.flags.json) {
        await writeJson(io.out, doc);
        return;
      }
      const lines = [
        `Name:          ${doc.name}${doc.tag ? `:${doc.tag}` : ''}`,
        `Digest:        ${doc.digest}`,
        `MediaType:     ${doc.mediaType}`,
      ];
      if (r.index) {
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
      lines.push(`Layers:        ${layers.length} (${doc.totalSize} bytes compressed)`);
      for (const l of layers) lines.push(`  ${l.digest}  ${String(l.size).padStart(12)}  ${l.mediaType}`);
      await writeLine(io.out, lines.join('\n'));
    }),
  );
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

function writeBytes(io: CliIo, bytes: Buffer): Promise<void> {
  return new Promise<void>((resolve, reject) => io.out.write(bytes, (e) => (e ? reject(e) : resolve())));
}
