# nixpkgs' fetchdocker, fetchDockerConfig and fetchDockerLayer (pkgs/build-support/fetchdocker/, as
# read at faukah/nixpkgs@3b20077c) with the same formals and assertions, and a stand-in for the
# hocker-config / hocker-layer programs they run (awakesecurity/hocker@f27b5de3): the same URLs
# (Hocker.Lib.joinURIPath = System.FilePath.joinPath ["/" "v2" <registry path> NAME ...], where an
# absolute part restarts the path), the same Accept header for the manifest, redirects followed.
{ lib }:
let
  hasSlash = s: builtins.match ".*/.*" s != null;
  # System.FilePath.(</>) and joinPath.
  combine = a: b:
    if builtins.substring 0 1 b == "/" then b
    else if a == "" then b
    else if b == "" then a
    else if builtins.match ".*/" a != null then a + b
    else a + "/" + b;
  joinPath = builtins.foldl' combine "";
  splitUri = uri:
    let m = builtins.match "([a-z]+://[^/]*)(.*)" uri; in { origin = builtins.elemAt m 0; path = builtins.elemAt m 1; };
  hockerUrl = registry: parts:
    let u = splitUri registry; in u.origin + joinPath ([ "/" "v2" u.path ] ++ parts);
  genericFetcher =
    { fetcher
    , name
    , registry ? "https://registry-1.docker.io/v2/"
    , repository ? "library"
    , imageName
    , sha256
    , tag ? ""
    , layerDigest ? ""
    }:
    assert !hasSlash repository;
    assert !hasSlash imageName;
    assert builtins.elem fetcher [ "hocker-config" "hocker-layer" ];
    assert layerDigest != "" -> builtins.substring 0 7 layerDigest != "sha256:";
    let
      image = "${repository}/${imageName}";
      get = ''curl --path-as-is -fsSL --cacert "$SSL_CERT_FILE"'';
      script =
        if fetcher == "hocker-config" then ''
          config=$(${get} -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' '${hockerUrl registry [ image "manifests" tag ]}' | jq -r .config.digest)
          ${get} -o "$out" "${hockerUrl registry [ image "blobs" ]}/$config"
        '' else ''
          ${get} -o "$out" '${hockerUrl registry [ image "blobs" "sha256:${layerDigest}" ]}'
        '';
    in
    lib.runCommand name
      {
        outputHashAlgo = "sha256";
        outputHashMode = "flat";
        outputHash = sha256;
        SSL_CERT_FILE = lib.certFile;
        inherit registry;
      }
      script;
in
{
  fetchDockerConfig = args@{ repository ? "library", imageName, tag, ... }:
    genericFetcher ({ fetcher = "hocker-config"; name = "${repository}_${imageName}_${tag}-config.json"; tag = "unused"; } // args);
  fetchDockerLayer = args@{ layerDigest, ... }:
    genericFetcher ({ fetcher = "hocker-layer"; name = "docker-layer-${layerDigest}.tar.gz"; tag = "unused"; } // args);
  # fetchdocker's formals and assertions; the composite `docker load` script is left out: the
  # fetched config and layers (the fixed-output derivations) are returned.
  fetchdocker =
    { name
    , registry ? "https://registry-1.docker.io/v2/"
    , repository ? "library"
    , imageName
    , tag
    , imageLayers
    , imageConfig
    , image ? "${registry}/${repository}/${imageName}:${tag}"
    }:
    assert !hasSlash repository;
    assert !hasSlash imageName;
    [ imageConfig ] ++ imageLayers;
}
