import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Limits, readAtMost } from '../digest/index.ts';
import { ErrorCode, hasCode, LadingError } from '../errors/index.ts';
import type { Descriptor, ImageSource, RawManifest, WholeImage, WholeImageSink } from '../image/index.ts';
import type { Reference } from '../reference/index.ts';
import { makeTempDir } from '../util/index.ts';
import { dockerArchiveStream } from './docker-archive/index.ts';
import { archiveInputFor } from './docker-archive-sink.ts';
import { DockerArchiveSource } from './docker-archive-source.ts';

/** The Docker Engine API socket: `DOCKER_HOST=unix://…`, else `/var/run/docker.sock`. */
export function dockerSocket(env: NodeJS.ProcessEnv): string {
  const host = env.DOCKER_HOST;
  if (!host) return '/var/run/docker.sock';
  if (host.startsWith('unix://')) return host.slice('unix://'.length);
  throw new LadingError(ErrorCode.BadArgument, `DOCKER_HOST=${host}: only unix:// sockets are supported`);
}

/** Where a daemon image goes or comes from: the Engine API, or the podman command. */
export type Engine = { kind: 'docker-api'; socket: string } | { kind: 'podman'; bin?: string };

function tagOf(ref: Reference): string {
  return `${ref.name}:${ref.tag ?? 'latest'}`;
}

async function engineRequest(socket: string, method: 'GET' | 'POST', path: string, body?: Readable) {
  const { request } = process.getBuiltinModule('node:http');
  try {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request({
        socketPath: socket,
        path,
        method,
        headers: body ? { 'content-type': 'application/x-tar' } : {},
      });
      req.once('error', reject);
      req.once('response', resolve);
      if (body) pipeline(body, req).catch((err) => req.destroy(err));
      else req.end();
    });
    return { res, close: async () => res.destroy() };
  } catch (err) {
    throw new LadingError(
      ErrorCode.Network,
      `cannot reach the container engine at ${socket}: ${(err as Error).message}`,
      {},
      { cause: err },
    );
  }
}

function runPodman(bin: string, args: string[], input?: Readable): { stdout: Readable; done: Promise<void> } {
  const child = spawn(bin, args, { stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    if (stderr.length < 4096) stderr += c.toString('utf8');
  });
  if (input && child.stdin) {
    const stdin = child.stdin;
    stdin.on('error', () => {});
    input.pipe(stdin);
    // A failing input must not leave the command waiting for the rest: end its input.
    input.once('error', () => stdin.destroy());
  }
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', (err) =>
      reject(new LadingError(ErrorCode.Transport, `cannot run ${bin}: ${err.message}`)),
    );
    child.on('close', (code) =>
      code === 0
        ? resolve()
        : reject(
            new LadingError(
              ErrorCode.Transport,
              `${bin} ${args[0]} failed (${code}): ${stderr.trim().split('\n').pop() ?? ''}`,
            ),
          ),
    );
  });
  return { stdout: child.stdout as Readable, done };
}

/**
 * Loads images into a container engine (`docker-daemon:NAME:TAG` through the Engine API's
 * `/images/load`, `podman:NAME:TAG` through `podman load`), as a docker-archive stream: nothing
 * is staged on disk.
 */
export class DaemonSink implements WholeImageSink {
  readonly kind = 'whole-image';
  readonly name: string;
  readonly acceptsIndex = false;
  readonly #ref: Reference;
  readonly #engine: Engine;

  constructor(ref: Reference, engine: Engine) {
    this.#ref = ref;
    this.#engine = engine;
    this.name = `${engine.kind === 'podman' ? 'podman' : 'docker-daemon'}:${ref.toFamiliarString()}`;
  }

  async writeImage(image: WholeImage, signal?: AbortSignal): Promise<void> {
    if (image.sizeHint) {
      try {
        await this.#load(image, true, signal);
        return;
      } catch (err) {
        // A size hint that lied (a multi-member gzip): the engine got a cut archive and refused
        // it; send it again with every layer measured first.
        if (!hasCode(err, ErrorCode.SizeMismatch)) throw err;
      }
    }
    await this.#load(image, false, signal);
  }

  /** Streams the image as a docker-archive into the engine; a failing source is the error reported. */
  async #load(image: WholeImage, hinted: boolean, signal?: AbortSignal): Promise<void> {
    const archive = dockerArchiveStream(archiveInputFor(image, [tagOf(this.#ref)], signal, hinted));
    let sourceError: unknown;
    archive.once('error', (err) => {
      sourceError = err;
    });
    try {
      await this.#send(archive);
    } catch (err) {
      throw sourceError ?? err;
    }
    if (sourceError) throw sourceError;
  }

  async #send(archive: Readable): Promise<void> {
    if (this.#engine.kind === 'podman') {
      const p = runPodman(this.#engine.bin ?? 'podman', ['load', '-q'], archive);
      p.stdout.resume();
      await p.done;
      return;
    }
    const { res, close } = await engineRequest(
      this.#engine.socket,
      'POST',
      '/v1.40/images/load?quiet=1',
      archive,
    );
    try {
      const text = (await readAtMost(res, Limits.errorBody, 'engine response')).toString('utf8');
      if (res.statusCode !== 200) {
        throw new LadingError(
          ErrorCode.Transport,
          `the engine refused the image (HTTP ${res.statusCode}): ${text.slice(0, 300)}`,
        );
      }
      // The engine streams JSON messages; an error arrives as {"errorDetail": …} with status 200.
      for (const line of text.split('\n').filter(Boolean)) {
        try {
          const m = JSON.parse(line) as { error?: string; errorDetail?: { message?: string } };
          if (m.error || m.errorDetail)
            throw new LadingError(
              ErrorCode.Transport,
              `the engine failed to load the image: ${m.errorDetail?.message ?? m.error}`,
            );
        } catch (err) {
          if (err instanceof LadingError) throw err;
        }
      }
    } finally {
      await close();
    }
  }

  async commit(): Promise<void> {}
  async abort(): Promise<void> {}
}

/**
 * Reads an image from a container engine (`/images/{name}/get`, or `podman save`). The engine
 * gives a docker-archive, which needs random access, so it is spooled to a temp file first.
 */
export class DaemonSource implements ImageSource {
  readonly name: string;
  /** A docker-archive inside: layers are served uncompressed under a gzip label. */
  readonly untrustedLayerTypes = true;
  readonly #ref: Reference;
  readonly #engine: Engine;
  #inner: Promise<DockerArchiveSource> | undefined;
  #dir: string | undefined;

  constructor(ref: Reference, engine: Engine) {
    this.#ref = ref;
    this.#engine = engine;
    this.name = `${engine.kind === 'podman' ? 'podman' : 'docker-daemon'}:${ref.toFamiliarString()}`;
  }

  #load(): Promise<DockerArchiveSource> {
    this.#inner ??= (async () => {
      this.#dir = await makeTempDir(tmpdir(), 'daemon');
      const file = join(this.#dir, 'image.tar');
      const name = tagOf(this.#ref);
      if (this.#engine.kind === 'podman') {
        const p = runPodman(this.#engine.bin ?? 'podman', ['save', '--format', 'docker-archive', name]);
        await Promise.all([pipeline(p.stdout, createWriteStream(file)), p.done]);
      } else {
        const { res, close } = await engineRequest(
          this.#engine.socket,
          'GET',
          `/v1.40/images/${encodeURIComponent(name)}/get`,
        );
        try {
          if (res.statusCode !== 200) {
            const text = (await readAtMost(res, Limits.errorBody, 'engine response')).toString('utf8');
            throw new LadingError(
              res.statusCode === 404 ? ErrorCode.NotFound : ErrorCode.Transport,
              `the engine has no image ${name}: ${text.slice(0, 200)}`,
            );
          }
          await pipeline(res, createWriteStream(file));
        } finally {
          await close();
        }
      }
      return new DockerArchiveSource(file, { ref: this.#ref });
    })();
    return this.#inner;
  }

  async topManifest(): Promise<RawManifest> {
    return (await this.#load()).topManifest();
  }

  async manifest(digest: RawManifest['digest']): Promise<RawManifest> {
    return (await this.#load()).manifest(digest);
  }

  async blob(desc: Descriptor): Promise<Readable> {
    return (await this.#load()).blob(desc);
  }

  async close(): Promise<void> {
    if (this.#dir) await rm(this.#dir, { recursive: true, force: true });
  }
}
