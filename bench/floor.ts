/**
 * The floor: the least single-thread Node.js program that does the work of two of the bench's
 * rows, without lading. Timed in the same rounds as lading and its peer, it says how close lading
 * comes to what the runtime allows on this machine (issue 15).
 *
 *   node bench/floor.ts prefetch HOST REPO CONFIG LAYER…  GET the config and each layer in turn on
 *                                                         one kept-alive socket; per piece read:
 *                                                         sha256 of the blob, inflate (zlib's handle
 *                                                         driven synchronously into one buffer),
 *                                                         sha256 of the diff_id and of the archive;
 *                                                         each digest and diff_id checked
 *   node bench/floor.ts copy HOST REPO DIR DIGEST…        GET each blob in turn; sha256 it and write
 *                                                         it to DIR/<hex> as it arrives (writeSync);
 *                                                         each digest checked
 *
 * The bench runs it with its types stripped first (a .mjs beside the bench's files): started as
 * a .ts file, Node.js loads its TypeScript stripper, ~0.2 CPU-seconds that neither lading (run
 * bundled) nor the floor's work has.
 *
 * What it leaves out, so it stays a floor: the registry's auth, redirects, retries, resume, TLS,
 * the tar headers and the archive's tail (a few KiB), the manifests, any cache. Plain HTTP with
 * `Content-Length` framing only (the bench's registry on 127.0.0.1). It needs the node:zlib
 * handle API lading feature-tests (src/layers/inflate-sync.ts).
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import * as zlib from 'node:zlib';

const [mode, hostPort, repo, ...rest] = process.argv.slice(2);
const [host, port] = [hostPort!.slice(0, hostPort!.lastIndexOf(':')), Number(hostPort!.split(':').pop())];

type Sink = (piece: Buffer) => void;
let sink: Sink = () => {};
let left = -1;
let head = '';
let done: (() => void) | undefined;
let fail: ((e: Error) => void) | undefined;

function onRead(n: number, buf: Uint8Array): boolean {
  let b = Buffer.from(buf.buffer, buf.byteOffset, n);
  if (left < 0) {
    head += b.toString('latin1');
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return true;
    const status = head.slice(9, 12);
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    if (status !== '200' || !length) {
      fail!(new Error(`HTTP ${status} or no Content-Length`));
      return false;
    }
    left = Number(length[1]);
    b = b.subarray(b.length - (head.length - end - 4));
    head = '';
  }
  const take = Math.min(left, b.length);
  sink(b.subarray(0, take));
  left -= take;
  if (left === 0) {
    left = -1;
    done!();
  }
  return true;
}

const socket: Socket = connect({
  host,
  port,
  onread: { buffer: Buffer.allocUnsafe(256 * 1024), callback: onRead },
});

function get(digest: string, onPiece: Sink): Promise<void> {
  const h: Hash = createHash('sha256');
  sink = (p) => {
    h.update(p);
    onPiece(p);
  };
  return new Promise<void>((resolve, reject) => {
    done = () =>
      `sha256:${h.digest('hex')}` === digest ? resolve() : reject(new Error(`digest of ${digest}`));
    fail = reject;
    socket.write(`GET /v2/${repo}/blobs/${digest} HTTP/1.1\r\nhost: ${hostPort}\r\n\r\n`);
  });
}

interface Handle {
  writeSync(f: number, i: Uint8Array, io: number, il: number, o: Uint8Array, oo: number, ol: number): void;
}

if (mode === 'prefetch') {
  const [config, ...layers] = rest;
  const parts: Buffer[] = [];
  await get(config!, (p) => parts.push(Buffer.from(p)));
  const diffIds = JSON.parse(Buffer.concat(parts).toString()).rootfs.diff_ids as string[];
  const archive = createHash('sha256');
  const out = Buffer.allocUnsafe(256 * 1024);
  for (const [i, d] of layers.entries()) {
    const z = zlib.createGunzip() as unknown as { _handle: Handle; _writeState: Uint32Array; close(): void };
    const diff = createHash('sha256');
    const inflate = (input: Uint8Array, flush: number): void => {
      let off = 0;
      let len = input.length;
      for (;;) {
        z._handle.writeSync(flush, input, off, len, out, 0, out.length);
        const [outLeft, inLeft] = z._writeState as unknown as [number, number];
        const o = out.subarray(0, out.length - outLeft);
        diff.update(o);
        archive.update(o);
        off += len - inLeft;
        len = inLeft;
        if (outLeft !== 0) return;
      }
    };
    await get(d, (p) => inflate(p, zlib.constants.Z_NO_FLUSH));
    inflate(new Uint8Array(0), zlib.constants.Z_FINISH);
    z.close();
    if (`sha256:${diff.digest('hex')}` !== diffIds[i]) throw new Error(`diff_id of ${d}`);
  }
  archive.digest();
} else if (mode === 'copy') {
  const [dir, ...digests] = rest;
  for (const d of digests) {
    const fd = openSync(join(dir!, d.slice(7)), 'w');
    // get() checks the digest: the blob's sha256, as lading's reader does.
    await get(d, (p) => {
      for (let off = 0; off < p.length; ) off += writeSync(fd, p, off);
    });
    closeSync(fd);
  }
} else {
  throw new Error(`unknown mode ${mode}`);
}
socket.destroy();
