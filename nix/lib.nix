# lading's Nix library: container images fetched, pinned and taken apart by lading inside Nix
# builds. See "Using lading from Nix" in README.md.
#
#   lib = import ./nix/lib.nix { lading = <the lading package, or "/abs/path/of/a/checkout">; }
#
# `lading` is a derivation, or an absolute path string of a directory with bin/lading (a string
# is used as is: nothing is copied into the store). `nodejs` (a derivation or path with bin/node)
# is optional: when given, builders run `node …/bin/lading`; without it bin/lading must be
# runnable as it is (the packaged lading is). Every builder is a plain `builtins.derivation`
# whose builder is lading: no nixpkgs is needed, any nixpkgs (or none) works.
{ lading
, nodejs ? null
, system ? builtins.currentSystem
}:
let
  inherit (builtins)
    attrNames derivation elemAt filter fromJSON genList hasContext hashString head isAttrs
    isPath isString length match readFile removeAttrs replaceStrings split stringLength substring toJSON;

  # A string without context is used as is: it must be an absolute directory.
  dir = what: x:
    if isString x && !(hasContext x) && substring 0 1 x != "/" then
      throw "lading: ${what} ${x} must be an absolute path (or a derivation)"
    else "${x}";

  runner =
    if nodejs == null then { builder = "${dir "lading" lading}/bin/lading"; args = [ ]; }
    else { builder = "${dir "nodejs" nodejs}/bin/node"; args = [ "${dir "lading" lading}/bin/lading" ]; };

  # Go's GOARCH for the Nix system: dockerTools' default `arch`.
  goArch =
    let cpu = head (split "-" system);
    in {
      x86_64 = "amd64"; aarch64 = "arm64"; i686 = "386"; armv7l = "arm"; armv6l = "arm";
      riscv64 = "riscv64"; powerpc64le = "ppc64le"; s390x = "s390x"; mips64el = "mips64le";
      loongarch64 = "loong64";
    }.${cpu} or cpu;

  fixName = replaceStrings [ "/" ":" ] [ "-" "-" ];

  # lib.fetchers.proxyImpureEnvVars, and Node's extra CA certificates (a file the build can read).
  proxyVars = [
    "http_proxy" "https_proxy" "ftp_proxy" "all_proxy" "no_proxy"
    "HTTP_PROXY" "HTTPS_PROXY" "FTP_PROXY" "ALL_PROXY" "NO_PROXY"
    "NODE_EXTRA_CA_CERTS"
  ];

  dropNulls = attrs: removeAttrs attrs (filter (n: attrs.${n} == null) (attrNames attrs));

  build = kind: attrs: derivation (dropNulls attrs // {
    inherit system;
    inherit (runner) builder;
    args = runner.args ++ [ "nix-builder" kind ];
  });

  # The credentials stay where they are: only the file's name goes into the derivation.
  checkAuthFile = authFile:
    if authFile == null then null
    else if isPath authFile then
      throw "lading: authFile must be a string such as \"/run/secrets/registry-auth.json\", not a Nix path: a path would be copied into the world-readable Nix store"
    else if !(isString authFile) then throw "lading: authFile must be a string (an absolute path)"
    else if hasContext authFile || substring 0 (stringLength builtins.storeDir + 1) authFile == "${builtins.storeDir}/" then
      throw "lading: authFile ${authFile} is (in) a store path: the credentials would be in the world-readable Nix store; give the path of a file outside the store"
    else if substring 0 1 authFile != "/" then throw "lading: authFile ${authFile} must be an absolute path"
    else authFile;

  fodHash = what: { hash, sha256 }:
    if hash != null && sha256 != null then throw "lading: ${what}: give hash or sha256, not both"
    else if hash != null then
      # An SRI hash names its algorithm; "" asks Nix for the right one (it reports it).
      { outputHash = hash; outputHashAlgo = if hash == "" || match "[a-z0-9]+-.*" hash == null then "sha256" else null; }
    else if sha256 != null then { outputHash = sha256; outputHashAlgo = "sha256"; }
    else throw "lading: ${what}: needs hash (or sha256); fetchImage needs none";

  # "sha256:HEX" -> HEX, refusing other algorithms (a blob's FOD hash is its digest).
  hexOf = digest:
    let m = match "sha256:([0-9a-f]{64})" digest;
    in if m == null then throw "lading: unsupported blob digest ${digest} (sha256 only)" else head m;

  # A store name from a file name: Nix allows [A-Za-z0-9+._?=-], not starting with a period.
  storeName = n:
    let
      bad = filter (x: isString x && x != "") (split "[A-Za-z0-9+._?=-]+" n);
      fixed = replaceStrings bad (map (_: "-") bad) n;
    in
    if fixed == "" then "file" else if substring 0 1 fixed == "." then "file${fixed}" else fixed;

  # Nix has no octal literals: a mode is a string such as "0755".
  checkMode = mode:
    if mode == null then null
    else if isString mode && match "0?[0-7]{3,4}" mode != null then mode
    else throw "lading: mode must be an octal string such as \"0755\"";

  self = rec {
    /*
      dockerTools.pullImage's arguments (plus authFile); the same output, byte for byte, so the same
      hash and store path: a fixed-output derivation whose builder is lading instead of skopeo.
    */
    pullImage =
      { imageName
      , imageDigest
      , hash ? null
      , sha256 ? null
      , finalImageName ? imageName
      , finalImageTag ? "latest"
      , os ? "linux"
      , arch ? goArch
      , variant ? null
      , tlsVerify ? true
      , name ? fixName "docker-image-${finalImageName}-${finalImageTag}.tar"
      , authFile ? null
      }:
      build "pull-image" ({
        inherit name imageName imageDigest finalImageName finalImageTag os arch variant tlsVerify;
        authFile = checkAuthFile authFile;
        outputHashMode = "flat";
        impureEnvVars = proxyVars;
      } // fodHash "pullImage ${imageName}" { inherit hash sha256; });

    /* nix2container.pullImage's fixed output: skopeo's `dir:` layout, the same NAR hash. */
    pullImageNix2container =
      { imageName
      , imageDigest
      , sha256 ? null
      , hash ? null
      , os ? "linux"
      , arch ? goArch
      , variant ? null
      , tlsVerify ? true
      , name ? fixName "docker-image-${imageName}"
      , authFile ? null
      }:
      build "pull-dir" ({
        inherit name imageName imageDigest os arch variant tlsVerify;
        authFile = checkAuthFile authFile;
        outputHashMode = "recursive";
        impureEnvVars = proxyVars;
      } // fodHash "pullImageNix2container ${imageName}" { inherit hash sha256; });

    /*
      An image from its manifest: no hash to guess. Each blob is its own fixed-output derivation
      whose hash is its digest; a normal derivation links them into an OCI layout (the result).
      `.dockerArchive` is what pullImage gives; `.blobs` the per-blob derivations.
    */
    fetchImageByDigest =
      { imageName
      , imageDigest
      , manifest
      , manifestDigest ? null
      , finalImageName ? imageName
      , finalImageTag ? "latest"
      , tlsVerify ? true
      , authFile ? null
      , extract ? { }
      , name ? fixName "${finalImageName}-${finalImageTag}"
      }:
      let
        text = if isString manifest then manifest else readFile manifest;
        instanceDigest = "sha256:${hashString "sha256" text}";
        checked =
          if manifestDigest != null && manifestDigest != instanceDigest then
            throw "lading: the manifest of ${imageName} has digest ${instanceDigest}, the lock says ${manifestDigest}"
          else text;
        m = fromJSON checked;
        auth = checkAuthFile authFile;
        blob = d: build "blob" {
          name = "blob-${fixName d.digest}";
          inherit imageName tlsVerify;
          inherit (d) digest size;
          authFile = auth;
          outputHashMode = "flat";
          outputHashAlgo = "sha256";
          outputHash = hexOf d.digest;
          impureEnvVars = proxyVars;
        };
        config = blob m.config;
        layers = map (d: { inherit (d) digest; drv = blob d; }) (m.layers or [ ]);
        entries = [ { inherit (m.config) digest; drv = config; } ] ++ layers;
        layout = build "oci-layout" {
          name = "${name}-oci";
          manifest = checked;
          manifestDigest = instanceDigest;
          refName = finalImageTag;
          blobs = toJSON (map (e: { inherit (e) digest; path = e.drv; }) entries);
        };
      in
      layout // {
        dockerArchive = build "docker-archive" {
          name = fixName "docker-image-${finalImageName}-${finalImageTag}.tar";
          image = layout;
          destNameTag = "${finalImageName}:${finalImageTag}";
        };
        blobs = map (e: e.drv) entries;
        ladingImage = { inherit imageName imageDigest instanceDigest layers extract; };
      };

    /* An image of a lock file made by `lading lock add` (with or without --no-hash). */
    fetchImage = { lockFile, name, authFile ? null, tlsVerify ? true }:
      let
        lock = fromJSON (readFile lockFile);
        e = lock.images.${name} or (throw "lading: no image ${name} in ${toString lockFile}");
      in
      fetchImageByDigest {
        inherit (e) imageName imageDigest manifest finalImageName finalImageTag;
        manifestDigest = e.instanceDigest;
        extract = e.extract or { };
        # An entry pinned over plain HTTP (or --tls-verify=false) says so: TLS cannot be required then.
        tlsVerify = if (e.tlsVerify or true) == false then false else tlsVerify;
        inherit authFile;
      };

    /*
      One file out of an image (any of the above), in-image symlinks followed, whiteouts respected:
      the output is the file, executable when it was (or as `mode` says). With fetchImage and a lock
      that records the layer deciding `path` (`lading lock add --extract PATH`), only the blobs of
      the layers from that one up are fetched.
    */
    extractFile = { image, path, mode ? null, name ? storeName (baseNameOf path) }:
      let
        info = if isAttrs image then image.ladingImage or null else null;
        slashed = if substring 0 1 path == "/" then path else "/${path}";
        decided = if info == null then null else info.extract.${path} or info.extract.${slashed} or null;
        count = length info.layers;
        usable =
          decided != null && builtins.isInt decided.layer && decided.layer >= 0 && decided.layer < count
          && (elemAt info.layers decided.layer).digest == decided.digest;
        from =
          if usable then decided.layer
          else throw "lading: the lock's record for ${path} does not match the image's layers: run lading lock add --extract again";
      in
      build "extract-file" ({
        inherit name path;
        mode = checkMode mode;
      } // (if decided == null then { inherit image; } else {
        layerCount = count;
        layers = toJSON (genList (i: let l = elemAt info.layers (from + i); in { inherit (l) digest; path = l.drv; }) (count - from));
      }));

    /*
      The flattened root filesystem as a store path. The store keeps no owners (all root), no
      setuid/setgid bits, no device nodes, FIFOs or sockets (left out, named in the log); unsafe
      entries fail the build, named.
    */
    unpackImage = { image, name ? "rootfs" }: build "unpack" { inherit name image; };
  };
in
self
