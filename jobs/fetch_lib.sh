# Shared by jobs/fetch-*.sh (sourced, not run; kept in jobs/ so that jobs/ works when copied alone):
# downloads that fail with one line and a documented exit code, and sha256 checks against a manifest.
#
# Exit codes of the fetch scripts: 0 ready (or, with --check, can be had); 1 usage; 2 bad input (an
# unknown name, a file whose sha256 does not match its manifest, plateau not built); 69 (sysexits'
# EX_UNAVAILABLE) cannot be had here: not on disk, not in ../shared, and the download failed or there
# is none (offline?). jobs/quickstart.sh falls back to the next model on 69 and stops on anything else.
EX_UNAVAILABLE=69

# usage: the calling script's header comment (line 2 up to `set -e`), as its --help.
usage() { sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"; }

# fetch_args WHO ARGS...: the options every fetch script takes. Sets check (1 for --check) and args
# (the operands); --help prints the usage and exits 0, another option exits 1 naming it.
fetch_args() {
  local who=$1 a
  shift
  check=0
  args=()
  for a in "$@"; do
    case $a in
      --check) check=1 ;;
      -h | --help) usage; exit 0 ;;
      -*) echo "$who: unknown option '$a' (--check, --help)" >&2; exit 1 ;;
      *) args+=("$a") ;;
    esac
  done
}

# curl_or_say WHO URL CURL_OPTIONS...: curl URL; on failure one line naming the URL and curl's reason
# (curl repeats its message once per retry: only the last is kept), return 69.
curl_or_say() {
  local who=$1 url=$2 err
  shift 2
  if ! command -v curl >/dev/null; then
    echo "$who: cannot download $url: curl is not installed (bash scripts/install-deps.sh)" >&2
    return "$EX_UNAVAILABLE"
  fi
  if err=$(curl -fL --connect-timeout 15 -sS "$@" "$url" 2>&1 >/dev/null); then
    return 0
  fi
  err=$(sed -E 's/^(curl: )?\([0-9]+\) //' <<<"${err##*$'\n'}")
  echo "$who: cannot download $url: $err (offline?)" >&2
  return "$EX_UNAVAILABLE"
}

# fetch_url WHO URL DEST: download URL to DEST; on failure DEST is removed (one line, 69).
fetch_url() {
  curl_or_say "$1" "$2" --retry 2 -o "$3" || { rm -f "$3"; return "$EX_UNAVAILABLE"; }
}

# reachable WHO URL: whether the server serves URL, asked with a HEAD request (for --check: nothing
# is downloaded); one line and 69 when not.
reachable() {
  curl_or_say "$1" "$2" -I -o /dev/null
}

# sha256_check WHO FILE MANIFEST: FILE's sha256 against its line in MANIFEST (`SHA256  NAME`, as
# sha256sum writes it; NAME is FILE's base name). One line and return 2 on a mismatch.
sha256_check() {
  local who=$1 file=$2 manifest=$3 name want got
  name=$(basename "$file")
  want=$(awk -v n="$name" '$2 == n { print $1 }' "$manifest")
  if [ -z "$want" ]; then
    echo "$who: $manifest has no sha256 for $name" >&2
    return 2
  fi
  got=$(sha256sum "$file" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    echo "$who: $file: sha256 $got, expected $want ($manifest)" >&2
    return 2
  fi
}
