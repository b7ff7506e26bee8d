import { readFileSync } from 'node:fs';

/**
 * lading's version, read from its package.json: the checkout's (running from src/cli/) or the
 * installed package's (running as dist/cli.mjs), found by walking up from this module.
 */
export function ladingVersion(): string {
  let dir = new URL('.', import.meta.url);
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as {
        name?: unknown;
        version?: unknown;
      };
      if (pkg.name === 'lading' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // No package.json here (or not readable): look one level up.
    }
    dir = new URL('..', dir);
  }
  return 'unknown';
}
