import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ErrorCode, LadingError } from '../errors/index.ts';
import type { TarEntry } from './tar-read.ts';

/** Made at the call: at the top, it would load node:child_process at every command's start. */
const execFileP = (file: string, args: string[]) => promisify(execFile)(file, args);

/** Longest part of an attribute's value or of a tool's message quoted in a warning. */
const QUOTE_MAX = 120;

export function clip(text: string): string {
  return text.length > QUOTE_MAX ? `${text.slice(0, QUOTE_MAX)}… (${text.length} characters)` : text;
}

/**
 * Whether an extended attribute from an image may be applied to the host. As umoci: `trusted.*`
 * (overlayfs keeps its own whiteouts and redirects there) and `security.*` (SELinux labels, IMA
 * and EVM signatures: the host's policy, not the image's) are not, except `security.capability`
 * (file capabilities, part of what the image means).
 */
function xattrAllowed(name: string): boolean {
  if (name === 'security.capability') return true;
  return !name.startsWith('trusted.') && !name.startsWith('security.');
}

/**
 * Writes extended attributes from PAX records (`SCHILY.xattr.NAME`, raw bytes). Node has no xattr
 * API, so this runs `setfattr` (Debian package attr) for the rare entries that carry them: when
 * it is missing, an image with xattrs is an error (unless they are turned off), never a silent
 * loss. An empty value is kept (setfattr without -v). Other failures are warnings.
 */
export class XattrWriter {
  readonly #enabled: boolean;
  #skipped: { count: number; names: Set<string>; first?: { entry: string; name: string; layer: number } } = {
    count: 0,
    names: new Set(),
  };
  #off = 0;

  constructor(enabled: boolean) {
    this.#enabled = enabled;
  }

  async apply(abs: string, e: TarEntry, layer: number, warn: (msg: string) => void): Promise<void> {
    for (const [name, value] of Object.entries(e.xattrs)) {
      if (!this.#enabled) {
        this.#off++;
        this.#skipped.first ??= { entry: e.rawName, name, layer };
        continue;
      }
      if (!xattrAllowed(name)) {
        this.#skipped.count++;
        this.#skipped.names.add(name);
        this.#skipped.first ??= { entry: e.rawName, name, layer };
        continue;
      }
      const args = value.length
        ? ['-h', '-n', name, '-v', `0s${value.toString('base64')}`, abs]
        : ['-h', '-n', name, abs];
      try {
        await execFileP('setfattr', args);
      } catch (err) {
        const x = err as NodeJS.ErrnoException & { stderr?: string };
        if (x.code === 'ENOENT')
          throw new LadingError(
            ErrorCode.BadArgument,
            `the image has extended attributes (${name} on ${JSON.stringify(e.rawName)}) and setfattr is not installed (Debian/Ubuntu package attr): install it, or pass --no-xattrs to unpack without them`,
          );
        const why = (x.stderr?.trim() || x.message).split('\n')[0] ?? '';
        warn(
          `extended attribute ${name}=${JSON.stringify(clip(value.toString('latin1')))} on ${JSON.stringify(e.rawName)} not set: ${clip(why)}`,
        );
      }
    }
  }

  /** One warning for all attributes left out, or undefined. */
  summary(): { layer: number; entry: string; message: string } | undefined {
    const s = this.#skipped;
    if (!s.first) return undefined;
    if (this.#off)
      return {
        layer: s.first.layer,
        entry: s.first.entry,
        message: `${this.#off} extended attribute${this.#off === 1 ? '' : 's'} not applied (--no-xattrs), e.g. ${s.first.name} on ${JSON.stringify(s.first.entry)}`,
      };
    const names = [...s.names].sort();
    return {
      layer: s.first.layer,
      entry: s.first.entry,
      message: `${s.count} extended attribute${s.count === 1 ? '' : 's'} of the host's trusted.* or security.* namespaces skipped, as umoci does (only security.capability is applied): ${clip(names.join(', '))}; e.g. ${s.first.name} on ${JSON.stringify(s.first.entry)}`,
    };
  }
}
