/** A parsed `transport:reference` string. */
export interface TransportRef {
  transport: string;
  /** The part after `transport:`, e.g. a path with optional tag. */
  details: string;
  /** Canonical string form, for messages. */
  toString(): string;
}
