import { Command } from 'commander';
import { formatPlatform, isIndexMediaType, parseManifest, selectImage } from '../../image/index.ts';
import { RegistrySource } from '../../transports/index.ts';
import { action } from '../context.ts';
import { type CliIo, writeJson, writeLine } from '../io.ts';
import { type PlatformFlags, platformFrom, withPlatformOptions, withRegistryOptions } from '../options.ts';

interface Flags extends PlatformFlags {
  json?: boolean;
}

export function digestCommand(io: CliIo): Command {
  const cmd = new Command('digest')
    .description("print an image's manifest digest (with --platform also the platform's instance digest)")
    .argument('<image>', 'image reference')
    .option('--json', 'print {digest, mediaType, instanceDigest, platform} as JSON');
  withPlatformOptions(cmd);
  withRegistryOptions(cmd);
  cmd.addHelpText(
    'after',
    `
Resolves a tag with HEAD where the registry allows (a HEAD is not counted as a Docker Hub pull).

Examples:
  lading digest alpine:3.20
  lading digest --platform linux/arm64 alpine:3.20     # index digest, then instance digest`,
  );
  return cmd.action(
    action<Flags, [string]>(io, async (ctx, image) => {
      const ref = ctx.ref(image);
      const client = ctx.pool().forRef(ref);
      const wantInstance = Boolean(
        ctx.flags.platform || ctx.flags.overrideArch || ctx.flags.overrideOs || ctx.flags.overrideVariant,
      );
      let digest = undefined as string | undefined;
      let mediaType = '';
      const head = wantInstance ? undefined : await client.headManifest(ref);
      if (head?.digest && !(ref.digest && head.digest !== ref.digest)) {
        digest = head.digest;
        mediaType = head.contentType;
      }
      let instanceDigest: string | undefined;
      let platform: string | undefined;
      if (!digest && wantInstance) {
        // The library's selector: an index's entry, or a single image checked against the platform.
        const asked = platformFrom(ctx.flags);
        const sel = await selectImage(new RegistrySource(client, ref), asked);
        digest = sel.top.digest;
        mediaType = (sel.index ?? sel.manifest).mediaType;
        platform = formatPlatform(asked.platform);
        instanceDigest = sel.instance.digest;
      } else if (!digest) {
        const m = await client.getManifest(ref);
        digest = m.digest;
        mediaType = parseManifest(m.bytes, m.contentType, String(ref)).mediaType;
      }
      if (ctx.flags.json) {
        await writeJson(io.out, {
          digest,
          mediaType,
          instanceDigest: instanceDigest ?? null,
          platform: platform ?? null,
        });
        return;
      }
      await writeLine(io.out, digest);
      if (instanceDigest && (isIndexMediaType(mediaType) || instanceDigest !== digest))
        await writeLine(io.out, instanceDigest);
    }),
  );
}
