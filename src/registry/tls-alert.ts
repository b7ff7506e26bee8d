import type * as Tls from 'node:tls';
import type { TlsSettings } from './cert-dir.ts';

/** OpenSSL codes of the alerts a server sends when it refuses (or misses) a client certificate. */
const CLIENT_CERT_ALERTS =
  /ALERT_(BAD_CERTIFICATE|CERTIFICATE_REQUIRED|UNKNOWN_CA|CERTIFICATE_UNKNOWN|HANDSHAKE_FAILURE|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED)/;

/** The alert code in an error (or its causes) when it is a client-certificate refusal. */
export function clientCertAlert(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 4; i++) {
    if (typeof e.code === 'string' && CLIENT_CERT_ALERTS.test(e.code)) return e.code;
    e = e.cause as typeof e;
  }
  return undefined;
}

/**
 * Opens one TLS connection to `url`'s origin with the same settings requests use and reports the
 * alert the server sends right after the handshake, if any. With TLS 1.3 a server that requires a
 * client certificate checks it only after the client's side of the handshake is complete, so an
 * HTTP client sees nothing but a closed connection; this tells the two apart. Resolves undefined
 * when the server keeps quiet for `waitMs` or closes without an alert.
 */
export function tlsAlertAfterHandshake(
  url: URL,
  settings: TlsSettings | undefined,
  rejectUnauthorized: boolean,
  waitMs = 1500,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = (process.getBuiltinModule('node:tls') as typeof Tls).connect({
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port || 443),
      servername: /^[\d.]+$|:/.test(url.hostname) ? undefined : url.hostname,
      rejectUnauthorized,
      ...(settings?.ca ? { ca: settings.ca } : {}),
      ...(settings?.cert && settings.key ? { cert: settings.cert, key: settings.key } : {}),
      ALPNProtocols: ['http/1.1'],
    });
    const done = (alert: string | undefined): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(alert);
    };
    const timer = setTimeout(() => done(undefined), waitMs);
    socket.once('error', (err) => done(clientCertAlert(err)));
    socket.once('close', () => done(undefined));
    socket.on('data', () => done(undefined));
  });
}
