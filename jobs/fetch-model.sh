#!/usr/bin/env bash
# Put a small trained TinyStories model at models/NAME, the path jobs/quickstart-NAME.ini reads:
#
#   bash jobs/fetch-model.sh stories260K|tinystories-gpt2 [--check]
#
#   stories260K       llama2.c's 260K-parameter Llama (stories260K.bin, tok512.bin; MIT): models/stories260K
#                     if already there, else linked from ../shared/models/stories260K, else downloaded
#                     from the Hugging Face repo karpathy/tinyllamas (folder stories260K). Both files are
#                     checked against jobs/stories260K.sha256 wherever they come from.
#   tinystories-gpt2  a 4-layer GPT-2 trained on TinyStories for this project: models/tinystories-gpt2 if
#                     there (config.json, model.safetensors, vocab.json, merges.txt), else linked from
#                     ../shared/models/tinystories-gpt2. It has no download.
#
# --check changes nothing: it says what would be done, and whether the model can be had (exit 0 or 69).
# $PLATEAU_SHARED_DIR replaces ../shared; $HF_ENDPOINT replaces https://huggingface.co (a mirror).
# Exit: 0 ready; 1 usage; 2 unknown name, or a file that does not match its sha256 (a download is left
# at models/NAME.partial for inspection); 69 cannot be had here (offline?), one line saying why.
set -euo pipefail
cd "$(dirname "$0")/.."
. jobs/fetch_lib.sh
fetch_args fetch-model "$@"
((${#args[@]} == 1)) || { echo "fetch-model: expected one model name (stories260K or tinystories-gpt2; see --help)" >&2; exit 1; }
name=${args[0]}
case "$name" in
  stories260K) files=(stories260K.bin tok512.bin) ;;
  tinystories-gpt2) files=(config.json model.safetensors vocab.json merges.txt) ;;
  *) echo "fetch-model: unknown model '$name' (stories260K, tinystories-gpt2)" >&2; exit 2 ;;
esac
dest=models/$name
shared=${PLATEAU_SHARED_DIR:-../shared}/models/$name
manifest=jobs/$name.sha256

# complete DIR: every file of the model is a non-empty file in DIR.
complete() {
  local f
  for f in "${files[@]}"; do [ -s "$1/$f" ] || return 1; done
}
# verified DIR: complete, and every file matches the manifest when the model has one.
verified() {
  local f
  [ -f "$manifest" ] || return 0
  for f in "${files[@]}"; do sha256_check fetch-model "$1/$f" "$manifest" || return 2; done
}

if complete "$dest"; then
  verified "$dest" || { echo "fetch-model: remove $dest to fetch $name again" >&2; exit 2; }
  ((check)) && echo "fetch-model: $dest is there" >&2
  exit 0
fi
if complete "$shared"; then
  verified "$shared" || exit 2
  if ((check)); then
    echo "fetch-model: would link $dest -> $shared" >&2
  else
    mkdir -p models
    rm -rf "$dest"
    ln -sfn "$(realpath "$shared")" "$dest"
    echo "fetch-model: $dest -> $shared" >&2
  fi
  exit 0
fi
if [ "$name" != stories260K ]; then
  echo "fetch-model: $name is neither in $dest nor in $shared, and it has no download" >&2
  exit "$EX_UNAVAILABLE"
fi
base="${HF_ENDPOINT:-https://huggingface.co}/karpathy/tinyllamas/resolve/main/stories260K"
if ((check)); then
  for f in "${files[@]}"; do reachable fetch-model "$base/$f" || exit "$EX_UNAVAILABLE"; done
  echo "fetch-model: would download ${files[*]} from $base to $dest" >&2
  exit 0
fi
tmp=$dest.partial
rm -rf "$tmp"
mkdir -p "$tmp"
for f in "${files[@]}"; do
  fetch_url fetch-model "$base/$f" "$tmp/$f" || { rm -rf "$tmp"; exit "$EX_UNAVAILABLE"; }
done
verified "$tmp" || { echo "fetch-model: the download is left at $tmp for inspection" >&2; exit 2; }
rm -rf "$dest"
mv "$tmp" "$dest"
echo "fetch-model: $dest downloaded from $base, sha256 checked" >&2
