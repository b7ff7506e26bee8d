# The stand-ins as a package set: `import ./. { certFile = ...; }`.
{ certFile ? "/etc/ssl/certs/ca-certificates.crt" }:
let lib = import ./lib.nix { inherit certFile; }; in
{
  inherit lib;
  dockerTools.pullImage = import ./pull-image.nix { inherit lib; };
  dockerToolsLegacy.pullImage = import ./pull-image-legacy.nix { inherit lib; };
  nix2container = import ./nix2container.nix { inherit lib; };
  inherit (import ./fetchdocker.nix { inherit lib; }) fetchdocker fetchDockerConfig fetchDockerLayer;
}
