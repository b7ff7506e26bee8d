import { ErrorCode, LadingError } from '../errors/index.ts';

/** Pages of a `Link`-paginated list (tags) lading follows at most. */
export const MAX_PAGES = 10_000;
/** Bytes of list pages lading reads in all (a few million tags). */
export const MAX_LIST_BYTES = 64 * 1024 * 1024;

/**
 * Bounds a pagination loop that a server drives: a page seen before (a `Link` to itself or back)
 * ends it with an error, as do too many pages or too many bytes in all.
 */
export class PageWalk {
  readonly #what: string;
  readonly #visited = new Set<string>();
  #bytes = 0;

  constructor(what: string) {
    this.#what = what;
  }

  /** Records a page about to be fetched (`path` with its query). Throws on a loop or over the bounds. */
  visit(path: string): void {
    if (this.#visited.has(path)) {
      throw new LadingError(
        ErrorCode.Registry,
        `${this.#what}: the registry's Link header leads back to a page already read (${path}); stopping`,
        { found: path },
      );
    }
    if (this.#visited.size >= MAX_PAGES) {
      throw new LadingError(ErrorCode.TooLarge, `${this.#what}: more than ${MAX_PAGES} pages; stopping`, {
        expected: MAX_PAGES,
      });
    }
    this.#visited.add(path);
  }

  /** Counts a page's bytes. Throws once the pages add up to more than MAX_LIST_BYTES. */
  read(bytes: number): void {
    this.#bytes += bytes;
    if (this.#bytes > MAX_LIST_BYTES) {
      throw new LadingError(
        ErrorCode.TooLarge,
        `${this.#what}: more than ${MAX_LIST_BYTES} bytes of pages; stopping`,
        { expected: MAX_LIST_BYTES, found: this.#bytes },
      );
    }
  }
}
