export {
  type AtomicWriteOptions,
  deviceOf,
  ioError,
  noSpaceFor,
  noSpaceMessage,
  tempPathFor,
  writeFileAtomic,
} from './atomic-file.ts';
export { withFileLock } from './file-lock.ts';
export { Limiter, mapLimit } from './limiter.ts';
export { keepBufferMemoryLow } from './memory.ts';
export { outputTarget, writeOutputFile } from './output-file.ts';
export { redactHeaders, redactUrl, scrubSecrets } from './redact.ts';
export {
  holdTemp,
  isStaleTempName,
  makeTempDir,
  releaseTemp,
  removeHeldTemps,
  sweepStaleTemps,
  tempFileBeside,
  tempName,
} from './temp-paths.ts';
export { escapeTerminal } from './terminal-text.ts';
