export { type AtomicWriteOptions, ioError, tempPathFor, writeFileAtomic } from './atomic-file.ts';
export { jsonTooDeep, jsonWhy, MAX_JSON_DEPTH, parseBoundedJson } from './bounded-json.ts';
export { removeTempsThenExit } from './interrupt-cleanup.ts';
export { Limiter, mapLimit } from './limiter.ts';
export { keepBufferMemoryLow } from './memory.ts';
export { redactAuthValues, redactHeaders, redactUrl, scrubSecrets } from './redact.ts';
export { holdTemp, releaseTemp, removeHeldTemps, tempsClosed } from './temp-paths.ts';
