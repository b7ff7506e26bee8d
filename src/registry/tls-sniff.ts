import * as net from 'node:net';

/**
 * A TLS 1.2 ClientHello (two cipher suites, no extensions) whose client random ends in
 * `\r\n\r\n`: a server that speaks HTTP reads it as a request line and the end of the headers,
 * and answers 400 at once instead of waiting for a line end. For a server that speaks TLS it is
 * an ordinary hello (the random is any 32 bytes): it answers with a handshake or an alert.
 */
const HELLO = (() => {
  const random = Buffer.concat([Buffer.alloc(28), Buffer.from('\r\n\r\n', 'latin1')]);
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    random,
    // No session id; TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_AES_128_CBC_SHA; no
    // compression; no extensions.
    Buffer.from([0, 0, 4, 0xc0, 0x2f, 0x00, 0x2f, 1, 0, 0, 0]),
  ]);
  const handshake = Buffer.concat([Buffer.from([1, 0, 0, body.length]), body]);
  return Buffer.concat([Buffer.from([0x16, 3, 1, 0, handshake.length]), handshake]);
})();

/**
 * The longest the sniff waits for an answer before it gives up (and says nothing). A registry
 * answers in milliseconds; a silent server costs this much more before its error.
 */
const SNIFF_MS = 500;

/**
 * Whether the server at `host:port` answers a TLS ClientHello in plain HTTP (`HTTP/1.x 400`), as
 * a registry that speaks only HTTP does. Docker and containers/image learn that by trying HTTPS
 * first (Go's TLS client fails with "server gave HTTP response to HTTPS client") and then fall
 * back to HTTP where that is allowed; asking with a hand-made hello on a plain socket spares
 * loading node:tls and node:https (~40 ms of the command's CPU) to learn the same. Only an answer
 * that starts with `HTTP/` counts: anything else (a TLS record, an alert, silence, a refused or
 * closed connection, no answer within `timeoutMs` or half a second) resolves false, and the caller
 * tries HTTPS as before. Never rejects.
 */
export function answersTlsInPlainHttp(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    let got = Buffer.alloc(0);
    const socket = net.connect({ host: host.startsWith('[') ? host.slice(1, -1) : host, port });
    const done = (verdict: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(verdict);
    };
    const timer = setTimeout(() => done(false), Math.min(timeoutMs, SNIFF_MS));
    socket.once('connect', () => socket.write(HELLO));
    socket.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]).subarray(0, 5);
      if (got.length >= 5 || !'HTTP/'.startsWith(got.toString('latin1')))
        done(got.toString('latin1') === 'HTTP/');
    });
    socket.once('error', () => done(false));
    socket.once('close', () => done(false));
  });
}
