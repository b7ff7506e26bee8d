/**
 * The least a Node.js program must do for two of the benchmark's rows, without lading: a reference
 * for what the runtime allows on this machine, timed in the same run as lading and its peers.
 *
 *   node bench/floor.ts copy     HOST REPO DIR DIGEST…   GET every blob with node:http (all at once),
 *                                                          sha256 each, write each to DIR
 *   node bench/floor.ts prefetch HOST REPO DIGEST…       the same blobs, all at once, each layer
 *                                                          gunzipped as it arrives and its bytes hashed
 *                                                          twice (diffID and archive)
 *
 * `prefetch` does less than a prefetch must (no archive order, no tar headers, no cache), so it is a
 * lower bound. The first DIGEST of `prefetch` is the config (not decompressed). Plain HTTP only (the
 * bench's registry on 127.0.0.1).
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Agent, get } from 'node:http';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';

const [mode, host, repo, ...rest] = process.argv.slice(2);
const agent = new Agent({ keepAlive: true, maxSockets: 16 });

function fetchBlob(digest: string, onChunk: (c: Buffer) => void | Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    get(`http://${host}/v2/${repo}/blobs/${digest}`, { agent }, async (res) => {
      try {
        if (res.statusCode !== 200) throw new Error(`GET ${digest}: ${res.statusCode}`);
        const h = createHash('sha256');
        for await (const c of res) {
          h.update(c as Buffer);
          await onChunk(c as Buffer);
        }
        if (`sha256:${h.digest('hex')}` !== digest) throw new Error(`digest mismatch for ${digest}`);
        resolve();
      } catch (err) {
        reject(err);
      }
    }).on('error', reject);
  });
}

if (mode === 'copy') {
  const [dir, ...digests] = rest;
  await Promise.all(
    digests.map(async (d) => {
      const fh = await open(join(dir!, d.slice(7)), 'w');
      await fetchBlob(d, async (c) => {
        await fh.write(c);
      });
      await fh.close();
    }),
  );
} else if (mode === 'prefetch') {
  const [config, ...layers] = rest;
  await fetchBlob(config!, () => {});
  await Promise.all(
    layers.map(async (d) => {
      const z = createGunzip({ chunkSize: 1 << 19 });
      const diffId = createHash('sha256');
      const second = createHash('sha256');
      const done = (async () => {
        for await (const c of z) {
          diffId.update(c as Buffer);
          second.update(c as Buffer);
        }
      })();
      await fetchBlob(d, (c) => {
        if (!z.write(c)) return new Promise<void>((r) => z.once('drain', () => r()));
      });
      z.end();
      await done;
      diffId.digest();
      second.digest();
    }),
  );
} else {
  throw new Error(`unknown mode ${mode}`);
}
agent.destroy();
