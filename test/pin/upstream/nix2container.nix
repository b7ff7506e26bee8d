# nix2container's pullImage and pullImageFromManifest, restated from nlewo/nix2container@20d33959
# default.nix: the same formals and skopeo command lines. Only the fixed-output derivations (what
# the hashes pin) are built: the last step of each (`nix2container image-from-dir` /
# `image-from-manifest`, a Go helper that reads the fetched files) is left out.
{ lib }:
let inherit (lib) fixName boolToString proxyImpureEnvVars; runCommand = lib.runCommand; in
{
  pullImage =
    { imageName
    , imageDigest
    , sha256
    , os ? "linux"
    , arch ? lib.goArch
    , tlsVerify ? true
    , name ? fixName "docker-image-${imageName}"
    }:
    let
      sourceURL = "docker://${imageName}@${imageDigest}";
      authFile = "/etc/skopeo/auth.json";
    in
    runCommand name
      {
        inherit imageDigest;
        impureEnvVars = proxyImpureEnvVars;
        outputHashMode = "recursive";
        outputHashAlgo = "sha256";
        outputHash = sha256;
        SSL_CERT_FILE = lib.certFile;
      }
      ''
        if [ -f "${authFile}" ]; then
          authFlag="--authfile ${authFile}"
        fi

        skopeo copy "${sourceURL}" "dir://$out" \
          --insecure-policy \
          --tmpdir=$TMPDIR \
          --override-os ${os} \
          --override-arch ${arch} \
          --src-tls-verify=${boolToString tlsVerify} \
          $authFlag
      '';

  pullImageFromManifest =
    { imageName
    , imageManifest ? null
    , imageTag ? "latest"
    , os ? "linux"
    , arch ? lib.goArch
    , tlsVerify ? true
    , registryUrl ? "registry-1.docker.io"
    }:
    let
      imageUrl = "docker://${registryUrl}/${imageName}";
      manifest = builtins.fromJSON (builtins.readFile imageManifest);
      removePrefix = p: s: builtins.substring (builtins.stringLength p) (-1) s;
      buildImageBlob = digest:
        runCommand (removePrefix "sha256:" digest)
          {
            impureEnvVars = proxyImpureEnvVars;
            outputHash = digest;
            SSL_CERT_FILE = lib.certFile;
          }
          ''
            skopeo layers "${imageUrl}:${imageTag}" ${digest} --tls-verify=${boolToString tlsVerify}
            mv layers-*/$name $out
          '';
    in
    map (l: buildImageBlob l.digest) manifest.layers ++ [ (buildImageBlob manifest.config.digest) ];
}
