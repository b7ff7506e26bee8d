# Packages lading for Nix users: `nix-build` here, or `callPackage ./default.nix { }`.
# Dependencies come from package-lock.json (importNpmLock), so no extra hash needs updating.
{ pkgs ? import <nixpkgs> { }
, lib ? pkgs.lib
, buildNpmPackage ? pkgs.buildNpmPackage
, importNpmLock ? pkgs.importNpmLock
, nodejs ? pkgs.nodejs_24 or pkgs.nodejs
}:

buildNpmPackage {
  pname = "lading";
  version = (lib.importJSON ./package.json).version;
  src = lib.cleanSource ./.;
  inherit nodejs;
  npmDeps = importNpmLock { npmRoot = ./.; };
  npmConfigHook = importNpmLock.npmConfigHook;
  npmBuildScript = "build";
  # The tests need registries, skopeo and Nix itself; run them with `bash .ci/run`.
  doCheck = false;
  meta = {
    description = "Move container images between OCI/Docker registries, local disks and Nix";
    license = lib.licenses.mit;
    mainProgram = "lading";
  };
}
