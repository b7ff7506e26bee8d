export { type CopyEvent, type CopyOptions, type CopyResult, copyImage } from './copy.ts';
