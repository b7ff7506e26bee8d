export { ErrorCode, type ErrorContext, hasCode, isLadingError, LadingError } from './lading-error.ts';
