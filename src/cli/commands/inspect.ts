import { Command } from 'commander';
import { formatPlatform, type Platform } from '../../image/index.ts';
import { indexPlatforms, resolveImage } from '../../registry/index.ts';
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
    .argument('<image>', 'image reference, e.g. alpine:3.20 or 127.0.0.1:5000/app@sha256:…')
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
  lading inspect --platform linux/arm64 --json docker.io/library/debian:12`,
  );
  return cmd.action(
    action<Flags, [string]>(io, async (ctx, image) => {
      const ref = ctx.ref(image);
      const client = ctx.pool().forRef(ref);
      const { platform, explicit } = platformFrom(ctx.flags);
      if (ctx.flags.raw) {
        const m = await client.getManifest(ref);
        await new Promise<void>((resolve, reject) =>
          io.out.write(m.bytes, (e) => (e ? reject(e) : resolve())),
        );
        return;
      }
      const r = await resolveImage(client, ref, { platform, platformExplicit: explicit });
      if (ctx.flags.config) {
        await new Promise<void>((resolve, reject) =>
          io.out.write(r.image.configBytes, (e) => (e ? reject(e) : resolve())),
        );
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
        name: ref.name,
        tag: ref.tag ?? null,
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
