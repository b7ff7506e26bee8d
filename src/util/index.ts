export {
  type AtomicWriteOptions,
  deviceOf,
  ioError,
  noSpaceFor,
  noSpaceMessage,
  tempPathFor,
  writeFileAtomic,
} from './atomic-file.ts';
export { jsonTooDeep, jsonWhy, MAX_JSON_DEPTH, parseBoundedJson } from './bounded-json.ts';
export { withFileLock } from './file-lock.ts';
export { removeTempsThenExit } from './interrupt-cleanup.ts';
export { Limiter, mapLimit } from './limiter.ts';
export { keepBufferMemoryLow, noteBufferChurn } from './memory.ts';
export { outputTarget, writeOutputFile } from './output-file.ts';
export { redactAuthValues, redactHeaders, redactUrl, scrubSecrets } from './redact.ts';
export {
  holdTemp,
  isStaleTempName,
  makeTempDir,
  releaseTemp,
  removeHeldTemps,
  sweepStaleTemps,
  tempFileBeside,
  tempName,
  tempsClosed,
} from './temp-paths.ts';
export { escapeTerminal } from './terminal-text.ts';
