export { type AtomicWriteOptions, ioError, tempPathFor, writeFileAtomic } from './atomic-file.ts';
export { Limiter, mapLimit } from './limiter.ts';
export { redactHeaders, redactUrl, scrubSecrets } from './redact.ts';
