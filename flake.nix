{
  description = "lading: move container images between OCI/Docker registries, local disks and Nix";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAll (pkgs: {
        lading = pkgs.callPackage ./default.nix { };
        default = self.packages.${pkgs.stdenv.hostPlatform.system}.lading;
      });
      # lading's Nix library (nix/lib.nix) on the packaged lading: lib.<system>.pullImage,
      # pullImageNix2container, fetchImage, fetchImageByDigest, extractFile, unpackImage.
      # lib.mkLib { lading; nodejs ? null; system ? … } builds it on another lading (a checkout).
      lib = forAll (pkgs: import ./nix/lib.nix {
        lading = self.packages.${pkgs.stdenv.hostPlatform.system}.lading;
        system = pkgs.stdenv.hostPlatform.system;
      }) // { mkLib = import ./nix/lib.nix; };
      apps = forAll (pkgs: {
        default = {
          type = "app";
          program = "${self.packages.${pkgs.stdenv.hostPlatform.system}.lading}/bin/lading";
        };
      });
    };
}
