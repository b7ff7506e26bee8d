import type { Reference } from '../reference/index.ts';
import type { RegistryCredential } from './authenticator.ts';
import { RegistryClient, type RegistryClientOptions } from './client.ts';

export interface RegistryPoolOptions
  extends Omit<RegistryClientOptions, 'registry' | 'apiHost' | 'credentials'> {
  /** Credentials for a repository of a registry (default: anonymous). */
  credentials?: (registry: string, repository: string) => Promise<RegistryCredential>;
}

/** One {@link RegistryClient} per registry host, sharing options; what commands hold. */
export class RegistryPool {
  readonly #opts: RegistryPoolOptions;
  readonly #clients = new Map<string, RegistryClient>();

  constructor(opts: RegistryPoolOptions = {}) {
    this.#opts = opts;
  }

  /** The client for `ref`'s registry. */
  forRef(ref: Reference): RegistryClient {
    return this.client(ref.registry, ref.apiHost);
  }

  client(registry: string, apiHost = registry): RegistryClient {
    let c = this.#clients.get(registry);
    if (!c) {
      const lookup = this.#opts.credentials;
      c = new RegistryClient({
        ...this.#opts,
        registry,
        apiHost,
        credentials: lookup ? (repository) => lookup(registry, repository) : undefined,
      });
      this.#clients.set(registry, c);
    }
    return c;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#clients.values()].map((c) => c.close()));
    this.#clients.clear();
  }
}
