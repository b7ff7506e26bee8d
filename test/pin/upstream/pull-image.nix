# dockerTools.pullImage of current nixpkgs (hash or sha256 through withNormalizedHash), restated from
# NixOS/nixpkgs pkgs/build-support/docker/default.nix (as read at faukah/nixpkgs@3b20077c).
{ lib }:
let inherit (lib) fixName runCommand boolToString proxyImpureEnvVars; in
lib.withNormalizedHash { } (
  { imageName
  , imageDigest
  , outputHash
  , outputHashAlgo
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
      inherit outputHash outputHashAlgo;
      outputHashMode = "flat";
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
)
