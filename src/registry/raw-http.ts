import * as net from 'node:net';
import type * as Tls from 'node:tls';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { DEFAULT_TIMEOUT_MS, StallWatch, timeoutError } from './timeouts.ts';

/**
 * A minimal HTTP/1.1 client for blob bodies: one request at a time per connection, the response
 * read on the socket into one reused buffer per connection and handed to a synchronous consumer
 * (no per-chunk Buffer, no stream, no HTTP parser copy). It speaks what registries and their blob
 * origins send: `Content-Length`, `Transfer-Encoding: chunked`, or a body that ends with the
 * connection; keep-alive with a small idle pool. Redirects, authorisation, retries and
 * verification belong to the caller (blob-reader.ts).
 */

/** node:tls, loaded on the first HTTPS connection (it costs ~20 ms of every command's start). */
const nodeTls = (): typeof Tls => process.getBuiltinModule('node:tls');

/** Bytes read from the socket at a time (one buffer per connection, reused). */
const READ_BLOCK = 256 * 1024;
/** The most a status line and headers may take. */
const HEAD_LIMIT = 64 * 1024;
/** A chunk-size or trailer line longer than this is not HTTP. */
const LINE_LIMIT = 4096;

/** An idle kept-alive connection is closed after this long. */
const POOL_IDLE_MS = 4_000;
/** Idle connections kept per origin. */
const POOL_MAX = 4;

export interface RawTls {
  ca?: string[];
  cert?: Buffer;
  key?: Buffer;
  rejectUnauthorized: boolean;
}

/** A network error with the `code` the retry rules know (see isRetryableError in http.ts). */
function netError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

function protocolError(url: URL, what: string): LadingError {
  return new LadingError(ErrorCode.Network, `${url.origin} sent a response that is not HTTP/1.1: ${what}`, {
    url: url.origin,
  });
}

type BodyMode = 'length' | 'chunked' | 'close' | 'none';
type ChunkState = 'size' | 'data' | 'data-end' | 'trailer';

/** One response on a connection: the head, then the body pushed to a sink. */
export class RawResponse {
  status = 0;
  headers: Record<string, string | string[]> = {};
  readonly url: URL;
  readonly #conn: Conn;
  #head = Buffer.alloc(0);
  #mode: BodyMode = 'none';
  #left = 0;
  #chunkState: ChunkState = 'size';
  #line = '';
  #keepAlive = true;
  #pending: Buffer[] = [];
  #sink: ((b: Buffer) => boolean | undefined) | undefined;
  #paused = false;
  #finished = false;
  /** A body framed by the connection's end has ended (its last bytes may wait in #pending). */
  #eof = false;
  #failed: unknown;
  #onHead: { resolve: (r: RawResponse) => void; reject: (e: unknown) => void };
  #onDone: { resolve: () => void; reject: (e: unknown) => void } | undefined;
  #done: Promise<void> | undefined;
  /** Whether any byte of the response arrived (a reused connection that fails before may be retried). */
  started = false;

  constructor(
    conn: Conn,
    url: URL,
    onHead: { resolve: (r: RawResponse) => void; reject: (e: unknown) => void },
  ) {
    this.#conn = conn;
    this.url = url;
    this.#onHead = onHead;
  }

  header(name: string): string | undefined {
    const v = this.headers[name];
    return Array.isArray(v) ? v[0] : v;
  }

  /**
   * Sends the body to `sink` (each piece valid only during the call) and resolves at its end.
   * A sink that returns false pauses the connection until {@link resume}; one that throws ends
   * the response (and the connection) with its error.
   */
  pipe(sink: (b: Buffer) => boolean | undefined): Promise<void> {
    this.#conn.socket.ref();
    this.#done ??= new Promise<void>((resolve, reject) => {
      this.#onDone = { resolve, reject };
    });
    this.#sink = sink;
    const pending = this.#pending;
    this.#pending = [];
    try {
      for (const p of pending) if (this.#failed === undefined) this.#body(p);
    } catch (err) {
      this.#conn.destroy(err);
    }
    if (this.#eof) this.#finished = true;
    if (this.#failed !== undefined) this.#onDone!.reject(this.#failed);
    else if (this.#finished) this.#onDone!.resolve();
    else if (!this.#paused) this.#conn.resume();
    return this.#done;
  }

  /** Lets the process end while this response waits to be read (pipe() holds it again). */
  unref(): void {
    this.#conn.socket.unref();
  }

  /** Continues after the sink returned false. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (!this.#finished && this.#failed === undefined) this.#conn.resume();
  }

  /** Reads a small body (an error document, a redirect's) into memory: at most `limit` bytes kept. */
  async text(limit: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let n = 0;
    await this.pipe((b) => {
      if (n < limit) {
        const take = b.subarray(0, limit - n);
        parts.push(Buffer.from(take));
        n += take.length;
      } else {
        throw new LadingError(ErrorCode.TooLarge, `response from ${this.url.origin} over ${limit} bytes`);
      }
      return undefined;
    });
    return Buffer.concat(parts);
  }

  /** Gives the response up: a finished one leaves its connection in the pool, any other closes it. */
  discard(): void {
    if (this.#finished && this.#failed === undefined) return;
    this.#conn.destroy();
  }

  /** Bytes from the socket (the view is reused after this returns). False pauses the socket. */
  feed(data: Buffer): boolean {
    this.started = true;
    if (this.#status() === 'head') {
      const joined = this.#head.length ? Buffer.concat([this.#head, data]) : data;
      const end = joined.indexOf('\r\n\r\n');
      if (end < 0) {
        if (joined.length > HEAD_LIMIT) throw protocolError(this.url, 'headers over 64 KiB');
        this.#head = Buffer.from(joined);
        return true;
      }
      this.#head = Buffer.alloc(0);
      const rest = joined.subarray(end + 4);
      this.#parseHead(joined.subarray(0, end).toString('latin1'));
      if (this.status >= 100 && this.status < 200) {
        // An interim response (100 Continue): the real one follows.
        this.status = 0;
        this.headers = {};
        return rest.length ? this.feed(rest) : true;
      }
      this.#onHead.resolve(this);
      if (this.#mode === 'none') this.#finish();
      if (rest.length) this.#pending.push(Buffer.from(rest));
      // Nothing flows until someone asks for the body.
      return false;
    }
    if (!this.#sink) {
      this.#pending.push(Buffer.from(data));
      return false;
    }
    this.#body(data);
    return !this.#paused;
  }

  #status(): 'head' | 'body' {
    return this.status === 0 ? 'head' : 'body';
  }

  #parseHead(text: string): void {
    const lines = text.split('\r\n');
    const m = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
    if (!m) throw protocolError(this.url, 'bad status line');
    this.status = Number(m[2]);
    if (m[1] === '0') this.#keepAlive = false;
    const headers: Record<string, string | string[]> = {};
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      if (i <= 0 || /^[ \t]/.test(line)) throw protocolError(this.url, 'bad header line');
      const name = line.slice(0, i).trim().toLowerCase();
      const value = line.slice(i + 1).trim();
      const old = headers[name];
      headers[name] = old === undefined ? value : [...(Array.isArray(old) ? old : [old]), value];
    }
    this.headers = headers;
    const connection = String(headers.connection ?? '').toLowerCase();
    if (connection.includes('close')) this.#keepAlive = false;
    const te = String(headers['transfer-encoding'] ?? '').toLowerCase();
    const cl = headers['content-length'];
    if (this.#conn.method === 'HEAD' || this.status === 204 || this.status === 304) this.#mode = 'none';
    else if (te) {
      if (te.trim() !== 'chunked') throw protocolError(this.url, `transfer-encoding ${te}`);
      this.#mode = 'chunked';
      // Both framings: the length is ignored, and the connection is not trusted again.
      if (cl !== undefined) this.#keepAlive = false;
    } else if (cl !== undefined) {
      const values = (Array.isArray(cl) ? cl : [cl]).flatMap((v) => v.split(',').map((s) => s.trim()));
      if (!values.every((v) => /^\d{1,15}$/.test(v) && v === values[0]))
        throw protocolError(this.url, 'bad Content-Length');
      this.#left = Number(values[0]);
      this.#mode = this.#left === 0 ? 'none' : 'length';
    } else {
      this.#mode = 'close';
      this.#keepAlive = false;
    }
  }

  /** Whether lading, not the server, holds things up: a body nobody reads yet, or a paused sink. */
  get waiting(): boolean {
    return this.#paused || (this.status !== 0 && !this.#sink);
  }

  /** Content-Length, when the response framed itself so. */
  get contentLength(): number | undefined {
    const cl = this.header('content-length');
    return cl === undefined || this.#mode === 'chunked' ? undefined : Number(cl);
  }

  #deliver(b: Buffer): void {
    if (!b.length) return;
    if (this.#sink!(b) === false) this.#paused = true;
  }

  #body(data: Buffer): void {
    if (this.#finished) {
      // Bytes past the end of a framed body: the connection cannot be trusted again.
      if (data.length) this.#conn.destroy();
      return;
    }
    if (this.#mode === 'length') {
      const take = Math.min(this.#left, data.length);
      this.#left -= take;
      this.#deliver(data.subarray(0, take));
      if (this.#left === 0) {
        if (take < data.length) this.#keepAlive = false;
        this.#finish();
      }
    } else if (this.#mode === 'close') {
      this.#deliver(data);
    } else if (this.#mode === 'chunked') {
      this.#chunked(data);
    }
  }

  /** `Transfer-Encoding: chunked`: size line, data, CRLF, …, `0`, trailers, empty line. */
  #chunked(data: Buffer): void {
    let i = 0;
    while (i < data.length && !this.#finished) {
      if (this.#chunkState === 'data') {
        const take = Math.min(this.#left, data.length - i);
        this.#deliver(data.subarray(i, i + take));
        i += take;
        this.#left -= take;
        if (this.#left === 0) this.#chunkState = 'data-end';
        continue;
      }
      const nl = data.indexOf(10, i);
      const piece = data.toString('latin1', i, nl < 0 ? data.length : nl);
      this.#line += piece;
      if (this.#line.length > LINE_LIMIT) throw protocolError(this.url, 'chunk line too long');
      if (nl < 0) return;
      i = nl + 1;
      const line = this.#line.endsWith('\r') ? this.#line.slice(0, -1) : this.#line;
      this.#line = '';
      if (this.#chunkState === 'size') {
        const hex = line.split(';')[0]!.trim();
        if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) throw protocolError(this.url, 'bad chunk size');
        this.#left = Number.parseInt(hex, 16);
        this.#chunkState = this.#left === 0 ? 'trailer' : 'data';
      } else if (this.#chunkState === 'data-end') {
        if (line !== '') throw protocolError(this.url, 'chunk not followed by CRLF');
        this.#chunkState = 'size';
      } else if (line === '') {
        if (i < data.length) this.#keepAlive = false;
        this.#finish();
      }
    }
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#conn.finished(this.#keepAlive);
    this.#onDone?.resolve();
  }

  /** The connection ended (cleanly or not). */
  ended(err: unknown): void {
    if (this.#finished) return;
    if (this.status !== 0 && this.#mode === 'close' && err === undefined) {
      this.#eof = true;
      if (!this.#pending.length) {
        this.#finished = true;
        this.#onDone?.resolve();
      }
      return;
    }
    const e =
      err ?? netError(`connection to ${this.url.origin} closed before the response ended`, 'ECONNRESET');
    this.#failed = e;
    if (this.status === 0) this.#onHead.reject(e);
    this.#onDone?.reject(e);
  }
}

/** One TCP or TLS connection, one request at a time. */
export class Conn {
  readonly key: string;
  readonly socket: net.Socket;
  readonly #pool: RawPool;
  #current: RawResponse | undefined;
  method = 'GET';
  #closed = false;
  reused = false;

  readonly #timeoutMs: number;
  #window: StallWatch | undefined;

  constructor(key: string, url: URL, tlsOpts: RawTls | undefined, pool: RawPool, timeoutMs: number) {
    this.key = key;
    this.#pool = pool;
    this.#timeoutMs = timeoutMs;
    const buffer = Buffer.allocUnsafe(READ_BLOCK);
    const onread = {
      buffer,
      callback: (n: number, buf: Uint8Array): boolean => this.#onRead(buf as Buffer, n),
    };
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    this.socket =
      url.protocol === 'https:'
        ? nodeTls().connect({
            host,
            port,
            servername: net.isIP(host) ? undefined : host,
            ALPNProtocols: ['http/1.1'],
            rejectUnauthorized: tlsOpts?.rejectUnauthorized ?? true,
            ...(tlsOpts?.ca ? { ca: tlsOpts.ca } : {}),
            ...(tlsOpts?.cert && tlsOpts.key ? { cert: tlsOpts.cert, key: tlsOpts.key } : {}),
            onread,
          } as Tls.ConnectionOptions)
        : net.connect({ host, port, onread } as net.NetConnectOpts);
    this.socket.setNoDelay(true);
    const connectTimer = setTimeout(
      () => this.destroy(timeoutError('connect', 'GET', url, timeoutMs)),
      timeoutMs,
    );
    connectTimer.unref();
    this.socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () =>
      clearTimeout(connectTimer),
    );
    this.socket.once('close', () => clearTimeout(connectTimer));
    // Only idle in the pool: the connection is closed.
    this.socket.on('timeout', () => this.destroy());
    this.socket.on('error', (err) => this.destroy(err));
    this.socket.on('end', () => this.destroy());
    this.socket.on('close', () => this.destroy());
  }

  #onRead(buf: Buffer, n: number): boolean {
    const res = this.#current;
    if (!res) {
      // Bytes nobody asked for on an idle connection: it cannot be reused.
      this.destroy();
      return false;
    }
    try {
      return res.feed(buf.subarray(0, n));
    } catch (err) {
      this.destroy(err);
      return false;
    }
  }

  /** Sends one request; resolves with the response once its head has arrived. */
  request(method: string, url: URL, headers: Record<string, string>): Promise<RawResponse> {
    this.method = method;
    return new Promise<RawResponse>((resolve, reject) => {
      this.#current = new RawResponse(this, url, { resolve, reject });
      let head = `${method} ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n`;
      for (const [k, v] of Object.entries(headers)) {
        if (/[\r\n\0]/.test(v) || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(k)) {
          reject(
            new LadingError(ErrorCode.Internal, `refusing to send header ${k} with a control character`),
          );
          return;
        }
        head += `${k}: ${v}\r\n`;
      }
      head += 'connection: keep-alive\r\n\r\n';
      this.socket.setTimeout(0);
      this.#watch();
      this.socket.write(head, 'latin1');
      this.resume();
    });
  }

  resume(): void {
    if (!this.#closed) this.socket.resume();
  }

  /**
   * Until the response ends: every window of the timeout must bring MIN_PROGRESS_BYTES unless
   * lading itself is not reading (a silent server, headers or body trickled byte by byte).
   */
  #watch(): void {
    this.#window?.stop();
    // The same rule as node:http's bodies (StallWatch): a window lading could not read in, or
    // one in which lading is the one behind (`waiting`), is not the server's fault.
    this.#window = new StallWatch(
      this.#timeoutMs,
      () => this.socket.bytesRead,
      () => this.#current?.waiting !== false,
      (got) => {
        const res = this.#current;
        if (!res) return;
        const phase = res.status === 0 ? 'response' : 'body';
        this.destroy(timeoutError(phase, 'GET', res.url, this.#timeoutMs, got));
      },
    );
  }

  /** The response ended: back into the pool, or closed. */
  finished(keepAlive: boolean): void {
    this.#current = undefined;
    this.#window?.stop();
    if (!keepAlive || this.#closed) {
      this.destroy();
      return;
    }
    this.#pool.release(this);
  }

  destroy(err?: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#window?.stop();
    this.#pool.forget(this);
    const res = this.#current;
    this.#current = undefined;
    this.socket.destroy();
    res?.ended(err);
  }

  get closed(): boolean {
    return this.#closed;
  }
}

/** Kept-alive connections per origin (and TLS settings), for one registry client. */
export class RawPool {
  readonly #idle = new Map<string, Conn[]>();

  /** A connection to `url`'s origin: an idle one, or a new one. */
  connect(url: URL, tlsOpts: RawTls | undefined, timeoutMs = DEFAULT_TIMEOUT_MS): Conn {
    const key = `${url.protocol}//${url.host}`;
    const idle = this.#idle.get(key);
    while (idle?.length) {
      const c = idle.pop()!;
      if (c.closed) continue;
      c.socket.ref();
      c.reused = true;
      return c;
    }
    return new Conn(key, url, tlsOpts, this, timeoutMs);
  }

  release(c: Conn): void {
    const list = this.#idle.get(c.key) ?? [];
    if (list.length >= POOL_MAX) {
      c.destroy();
      return;
    }
    list.push(c);
    this.#idle.set(c.key, list);
    // An idle connection keeps nobody alive and is closed after a while.
    c.socket.unref();
    c.socket.setTimeout(POOL_IDLE_MS);
  }

  forget(c: Conn): void {
    const list = this.#idle.get(c.key);
    if (!list) return;
    const i = list.indexOf(c);
    if (i >= 0) list.splice(i, 1);
  }

  close(): void {
    for (const list of this.#idle.values()) for (const c of [...list]) c.destroy();
    this.#idle.clear();
  }
}
