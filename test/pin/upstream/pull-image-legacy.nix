# dockerTools.pullImage before NixOS/nixpkgs#342400 (nixpkgs 24.11 and older): `sha256` required,
# no `hash`. Restated from NixOS/nixpkgs@34b7a306 pkgs/build-support/docker/default.nix.
{ lib }:
let inherit (lib) fixName runCommand boolToString proxyImpureEnvVars; in
{ imageName
, imageDigest
, sha256
, os ? "linux"
, arch ? lib.goArch
, finalImageName ? imageName
, finalImageTag ? "latest"
, tlsVerify ? true
, name ? fixName "docker-image-${finalImageName}-${finalImageTag}.tar"
}:
runCommand name
  {
    inherit imageDigest;
    imageName = finalImageName;
    imageTag = finalImageTag;
    impureEnvVars = proxyImpureEnvVars;
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = sha256;
    SSL_CERT_FILE = lib.certFile;
    sourceURL = "docker://${imageName}@${imageDigest}";
    destNameTag = "${finalImageName}:${finalImageTag}";
  }
  ''
    skopeo \
      --insecure-policy \
      --tmpdir=$TMPDIR \
      --override-os ${os} \
      --override-arch ${arch} \
      copy \
      --src-tls-verify=${boolToString tlsVerify} \
      "$sourceURL" "docker-archive://$out:$destNameTag" \
      | cat  # pipe through cat to force-disable progress bar
  ''
