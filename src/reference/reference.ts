import { type Digest, parseDigest } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';

/** The registry that short names refer to, as Docker and containerd normalise them. */
export const DOCKER_HUB = 'docker.io';
/** The host that actually serves Docker Hub's registry API. */
export const DOCKER_HUB_API = 'registry-1.docker.io';

const NAME_MAX = 255;
// distribution/reference grammar.
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const IPV6 = '\\[(?:[a-fA-F0-9:]+)\\]';
const DOMAIN_RE = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|${IPV6})(?::[0-9]+)?$`);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const HEX64_RE = /^[a-f0-9]{64}$/;

/** A parsed, normalised image reference: `registry/repository[:tag][@digest]`. */
export class Reference {
  /** Registry host, with port if any, normalised (`docker.io` for Docker Hub). */
  readonly registry: string;
  /** Repository path inside the registry (`library/alpine`). */
  readonly repository: string;
  /** Tag, if one was given (or defaulted to `latest`). */
  readonly tag: string | undefined;
  /** Digest, if one was given. */
  readonly digest: Digest | undefined;

  constructor(registry: string, repository: string, tag?: string, digest?: Digest) {
    this.registry = registry;
    this.repository = repository;
    this.tag = tag;
    this.digest = digest;
  }

  /** `registry/repository`, fully qualified. */
  get name(): string {
    return `${this.registry}/${this.repository}`;
  }

  /** The short form Docker prints (`alpine`, `user/app`, `ghcr.io/o/r`). */
  get familiarName(): string {
    if (this.registry !== DOCKER_HUB) return this.name;
    return this.repository.startsWith('library/') && this.repository.split('/').length === 2
      ? this.repository.slice('library/'.length)
      : this.repository;
  }

  /** What to put in `/v2/<name>/manifests/<here>`: the digest if known, else the tag. */
  get identifier(): string {
    return this.digest ?? this.tag ?? 'latest';
  }

  /** The host to talk to for this registry (Docker Hub's API host differs from its name). */
  get apiHost(): string {
    return this.registry === DOCKER_HUB ? DOCKER_HUB_API : this.registry;
  }

  /** Token scope for this repository (`repository:library/alpine:pull`). */
  scope(...actions: ('pull' | 'push' | '*')[]): string {
    return `repository:${this.repository}:${(actions.length ? actions : ['pull']).join(',')}`;
  }

  /** The same repository with another tag (digest dropped). */
  withTag(tag: string): Reference {
    if (!TAG_RE.test(tag)) throw badReference(tag, `invalid tag ${JSON.stringify(tag)}`);
    return new Reference(this.registry, this.repository, tag, undefined);
  }

  /** The same repository pinned to a digest (the tag is kept for display). */
  withDigest(digest: Digest | string): Reference {
    return new Reference(this.registry, this.repository, this.tag, parseDigest(digest));
  }

  /** Fully qualified string: `docker.io/library/alpine:latest@sha256:…`. */
  toString(): string {
    return `${this.name}${this.tag ? `:${this.tag}` : ''}${this.digest ? `@${this.digest}` : ''}`;
  }

  /** Short string as Docker prints it: `alpine:latest`. */
  toFamiliarString(): string {
    return `${this.familiarName}${this.tag ? `:${this.tag}` : ''}${this.digest ? `@${this.digest}` : ''}`;
  }

  toJSON(): string {
    return this.toString();
  }
}

function badReference(input: string, why: string): LadingError {
  return new LadingError(ErrorCode.BadReference, `invalid image reference ${JSON.stringify(input)}: ${why}`, {
    ref: input,
  });
}

export interface ParseReferenceOptions {
  /** Tag to use when neither a tag nor a digest is given (default `latest`; `null` for none). */
  defaultTag?: string | null;
}

/**
 * Parses an image reference and normalises it as Docker and containerd do:
 * `alpine` → `docker.io/library/alpine:latest`, `host:5000/repo:tag@sha256:…` kept as is.
 * Throws E_BAD_REFERENCE naming the input and what is wrong.
 */
export function parseReference(input: string, opts: ParseReferenceOptions = {}): Reference {
  if (typeof input !== 'string' || input.length === 0) throw badReference(String(input), 'empty reference');
  if (/\s/.test(input)) throw badReference(input, 'contains whitespace');
  if (input.includes('://')) {
    throw badReference(input, 'a reference has no scheme (drop "docker://" or use it as a transport)');
  }
  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    const d = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      digest = parseDigest(d);
    } catch (err) {
      throw badReference(input, (err as Error).message);
    }
  }
  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > rest.lastIndexOf('/')) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG_RE.test(tag)) {
      throw badReference(
        input,
        `invalid tag ${JSON.stringify(tag)} (letters, digits, _ . -; at most 128; not starting with . or -)`,
      );
    }
  }
  if (rest.length === 0) throw badReference(input, 'missing repository name');
  if (HEX64_RE.test(rest))
    throw badReference(input, 'a 64-character hex string is an image ID, not a repository name');

  let registry: string;
  let repository: string;
  const slash = rest.indexOf('/');
  const first = slash === -1 ? '' : rest.slice(0, slash);
  if (slash === -1 || (!/[.:]/.test(first) && first !== 'localhost' && first.toLowerCase() === first)) {
    registry = DOCKER_HUB;
    repository = rest;
  } else {
    registry = first;
    repository = rest.slice(slash + 1);
    if (!DOMAIN_RE.test(registry))
      throw badReference(input, `invalid registry host ${JSON.stringify(registry)}`);
  }
  if (registry === 'index.docker.io' || registry === DOCKER_HUB_API) registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  if (repository.length === 0) throw badReference(input, 'missing repository name');
  for (const component of repository.split('/')) {
    if (!PATH_COMPONENT_RE.test(component)) {
      const why =
        component.toLowerCase() !== component && PATH_COMPONENT_RE.test(component.toLowerCase())
          ? 'repository name must be lowercase'
          : component === ''
            ? 'empty path component'
            : `invalid path component ${JSON.stringify(component)}`;
      throw badReference(input, why);
    }
  }
  if (registry.length + 1 + repository.length > NAME_MAX) {
    throw badReference(input, `name longer than ${NAME_MAX} characters`);
  }
  if (tag === undefined && digest === undefined) {
    const def = opts.defaultTag === undefined ? 'latest' : opts.defaultTag;
    if (def !== null) tag = def;
  }
  return new Reference(registry, repository, tag, digest);
}

/** Parses a repository name (no tag, no digest), e.g. for `lading tags`. */
export function parseRepository(input: string): Reference {
  const ref = parseReference(input, { defaultTag: null });
  if (ref.tag !== undefined || ref.digest !== undefined) {
    throw badReference(input, 'expected a repository without tag or digest');
  }
  return ref;
}

/** Normalises a registry host as given to `login`/`logout` (`docker.io` for Docker Hub aliases). */
export function normaliseRegistryHost(input: string): string {
  let host = input.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  if (host.endsWith('/v1') || host.endsWith('/v2')) host = host.slice(0, -3);
  if (host === 'index.docker.io' || host === DOCKER_HUB_API) host = DOCKER_HUB;
  if (host.includes('/')) host = host.slice(0, host.indexOf('/'));
  if (!DOMAIN_RE.test(host)) {
    throw new LadingError(ErrorCode.BadReference, `invalid registry host ${JSON.stringify(input)}`, {
      ref: input,
    });
  }
  return host;
}
