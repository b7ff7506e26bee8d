# Strict stand-ins for the upstream Nix functions lading's output is pasted into. Each restates the
# upstream formals (no `...` where upstream has none) and skopeo command lines, so an unknown or a
# missing argument fails evaluation here as it does for users. Not copied: restated from
#   nixpkgs lib/strings.nix (sanitizeDerivationName), lib/fetchers.nix (withNormalizedHash),
#   lib/trivial.nix (boolToString), pkgs/stdenv/generic/make-derivation.nix (the name goes
#   through sanitizeDerivationName), pkgs/build-support/trivial-builders (runCommand).
# The builders use the host's skopeo/curl/jq (the tests run Nix without a sandbox).
{ certFile ? "/etc/ssl/certs/ca-certificates.crt" }:
rec {
  hostPath = "/usr/bin:/bin";
  inherit certFile;

  boolToString = b: if b then "true" else "false";

  # dockerTools' and nix2container's fixName.
  fixName = name: builtins.replaceStrings [ "/" ":" ] [ "-" "-" ] name;

  # lib.strings.sanitizeDerivationName: valid names of at most 207 characters are kept; others lose
  # their leading dots, have each run of invalid characters replaced by "-", and keep their LAST
  # 207 characters ("unknown" if empty).
  sanitizeDerivationName = string:
    if builtins.stringLength string <= 207 && builtins.match "[[:alnum:]+_?=-][[:alnum:]+._?=-]*" string != null then
      string
    else
      let
        noDots = builtins.elemAt (builtins.match "\\.*(.*)" string) 0;
        parts = builtins.split "[^[:alnum:]+._?=-]+" noDots;
        joined = builtins.concatStringsSep "" (map (s: if builtins.isList s then "-" else s) parts);
        len = builtins.stringLength joined;
        kept = builtins.substring (if len > 207 then len - 207 else 0) len joined;
      in
      if kept == "" then "unknown" else kept;

  proxyImpureEnvVars = [
    "http_proxy" "https_proxy" "ftp_proxy" "all_proxy" "no_proxy"
    "HTTP_PROXY" "HTTPS_PROXY" "FTP_PROXY" "ALL_PROXY" "NO_PROXY" "NIX_SSL_CERT_FILE"
  ];

  # lib.fetchers.withNormalizedHash: exactly one of `hash` or a hashType, else an error; the wrapped
  # function's formals (strict) check everything else.
  withNormalizedHash = { hashTypes ? [ "sha256" ] }: fetcher:
    let
      fArgs = builtins.functionArgs fetcher;
      hashNames = [ "hash" ] ++ hashTypes;
      hashSet = builtins.listToAttrs (map (n: { name = n; value = { }; }) hashNames);
      normalize = args:
        if args ? outputHash then args
        else
          let
            given = builtins.attrNames (builtins.intersectAttrs hashSet args);
            h =
              if given == [ ] then (if fArgs.outputHash then null else throw "fetcher called without `hash`")
              else if builtins.length given > 1 then
                throw "fetcher called with mutually-incompatible arguments: ${builtins.concatStringsSep ", " given}"
              else { name = builtins.head given; value = args.${builtins.head given}; };
          in
          builtins.removeAttrs args hashNames
          // (if h == null then { } else {
            outputHashAlgo = if h.name == "hash" then null else h.name;
            outputHash = h.value;
          });
    in
    assert fArgs ? outputHash && fArgs ? outputHashAlgo;
    {
      __functor = _: args: fetcher (normalize args);
      __functionArgs = builtins.removeAttrs fArgs [ "outputHash" "outputHashAlgo" ] // { hash = fArgs.outputHash; };
    };

  # runCommand through mkDerivation: the name sanitized, nulls dropped (__ignoreNulls), bash with
  # errexit and pipefail.
  runCommand = name: env: buildCommand:
    derivation (
      (builtins.removeAttrs env [ "nativeBuildInputs" ])
      // {
        name = sanitizeDerivationName name;
        system = builtins.currentSystem;
        builder = "/bin/bash";
        # stdenv's bash outlives the last command; without "exit $?" bash would exec it in place,
        # and Nix 2.8 SIGKILLs a builder that closes its output early (test/helpers/nix.ts).
        args = [ "-e" "-o" "pipefail" "-c" (buildCommand + "\nexit $?") ];
        PATH = hostPath;
        __ignoreNulls = true;
      }
    );

  # pkgs.go.GOARCH of the building host.
  goArch =
    let cpu = builtins.head (builtins.split "-" builtins.currentSystem);
    in { x86_64 = "amd64"; aarch64 = "arm64"; armv7l = "arm"; armv6l = "arm"; i686 = "386"; }.${cpu} or cpu;
}
