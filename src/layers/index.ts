export { type Compression, decompress, detectCompression } from './compression.ts';
