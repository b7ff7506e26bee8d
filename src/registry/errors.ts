import { Limits, readAtMost } from '../digest/index.ts';
import { type ErrorCode as Code, ErrorCode, LadingError } from '../errors/index.ts';
import { redactUrl, scrubSecrets } from '../util/index.ts';
import { type HttpResponse, parseRetryAfter } from './http.ts';

export interface ResponseErrorContext {
  method: string;
  /** What was being fetched, for the message: `manifest docker.io/library/alpine:latest`. */
  what: string;
  ref?: string;
  registry: string;
  /** Whether credentials were sent (changes the 401 message). */
  authenticated?: boolean;
  /** Secrets to scrub from server-provided text. */
  secrets?: Iterable<string | undefined>;
}

/** Parses a registry JSON error body (`{"errors":[{"code","message","detail"}]}`), capped at 64 KiB. */
export async function readDiagnostics(res: HttpResponse): Promise<{ code: string; message: string }[]> {
  try {
    const raw = await readAtMost(res.body, Limits.errorBody, 'error body');
    const json = JSON.parse(raw.toString('utf8')) as { errors?: { code?: unknown; message?: unknown }[] };
    if (!Array.isArray(json.errors)) return [];
    return json.errors.map((e) => ({
      code: String(e?.code ?? 'UNKNOWN'),
      message: String(e?.message ?? ''),
    }));
  } catch {
    res.body.destroy();
    return [];
  }
}

/** Builds the LadingError for a non-success registry response. Consumes the body. */
export async function responseError(res: HttpResponse, ctx: ResponseErrorContext): Promise<LadingError> {
  const diagnostics = ctx.method === 'HEAD' ? [] : await readDiagnostics(res);
  if (ctx.method === 'HEAD') await res.body.dump().catch(() => {});
  const url = redactUrl(res.url);
  const detail = diagnostics.length
    ? `: ${diagnostics.map((d) => `${d.code}${d.message ? ` (${d.message})` : ''}`).join('; ')}`
    : '';
  let code: Code;
  let why: string;
  switch (res.status) {
    case 401:
      code = ErrorCode.Unauthorized;
      why = ctx.authenticated
        ? 'unauthorized: the registry rejected the credentials'
        : 'unauthorized: authentication required (no credentials found; use --creds, --authfile or lading login)';
      break;
    case 403:
      code = ErrorCode.Denied;
      why = 'denied: the credentials have no access';
      break;
    case 404:
      code = ErrorCode.NotFound;
      why = 'not found';
      break;
    case 429:
      code = ErrorCode.TooManyRequests;
      why = 'too many requests (rate limited)';
      break;
    default:
      code = res.status >= 500 ? ErrorCode.Registry : ErrorCode.Registry;
      why = `unexpected HTTP status ${res.status}`;
  }
  const message = scrubSecrets(`${ctx.what}: ${why}${detail} [${ctx.method} ${url}]`, ctx.secrets ?? []);
  return new LadingError(code, message, {
    ref: ctx.ref,
    registry: ctx.registry,
    url,
    method: ctx.method,
    status: res.status,
    diagnostics,
    temporary: res.status === 429 || res.status >= 500,
    retryAfter: (parseRetryAfter(res.headers['retry-after']) ?? 0) / 1000 || undefined,
  });
}
