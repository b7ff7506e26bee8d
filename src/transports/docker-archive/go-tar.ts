// The Go tar header writer lives in src/layers (build uses it too); this keeps writer.ts's import.
export { GO_TAR_END, type GoTarHeader, goTarHeader, goTarPadding } from '../../layers/index.ts';
