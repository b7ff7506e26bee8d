// The source/sink contracts live at the image level (src/image/contracts.ts); re-exported here
// for the transports that implement them.
export type {
  BlobReader,
  BlobSink,
  ExistingLayer,
  ImageSink,
  ImageSource,
  RawManifest,
  ReuseOutcome,
  WholeImage,
  WholeImageSink,
} from '../image/index.ts';

/** A parsed `transport:reference` string. */
export interface TransportRef {
  transport: string;
  /** The part after `transport:`, e.g. a path with optional tag. */
  details: string;
  /** Canonical string form, for messages. */
  toString(): string;
}
