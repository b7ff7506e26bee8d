export {
  DOCKER_HUB,
  DOCKER_HUB_API,
  normaliseRegistryHost,
  type ParseReferenceOptions,
  parseReference,
  parseRepository,
  Reference,
} from './reference.ts';
