#!/usr/bin/env bash
# Download a Hugging Face GPT-2 model dir (config.json, model.safetensors, vocab.json, merges.txt)
# and verify it. Run this on a login node: compute nodes are often offline.
#
#   bash jobs/fetch-gpt2.sh [gpt2|gpt2-medium|gpt2-large|gpt2-xl|distilgpt2] [DEST] [--check]
#
# DEST defaults to models/<name>. GPT-2 small is checked tensor by tensor against
# jobs/gpt2-small.tensors.sha256 with `plateau verify`; the other sizes are checked for a complete,
# well-formed model dir with `plateau info`. A partial download never stays under DEST.
# --check downloads nothing: it says whether the files can be downloaded from here (exit 0 or 69).
# $HF_ENDPOINT replaces https://huggingface.co (a mirror); $PLATEAU_BIN replaces build/plateau.
# Exit: 0 ready; 1 usage; 2 unknown model, plateau not built, or the download does not verify (left
# at DEST.partial for inspection); 69 cannot be downloaded (offline?), one line naming the URL.
set -euo pipefail
cd "$(dirname "$0")/.."
. jobs/fetch_lib.sh
fetch_args fetch-gpt2 "$@"
((${#args[@]} <= 2)) || { echo "fetch-gpt2: too many arguments (NAME [DEST])" >&2; exit 1; }
name=${args[0]:-gpt2}
dest=${args[1]:-models/$name}
case "$name" in
  gpt2|gpt2-medium|gpt2-large|gpt2-xl) repo="openai-community/$name" ;;
  distilgpt2) repo="distilbert/distilgpt2" ;;
  *) echo "fetch-gpt2: unknown model '$name' (gpt2, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2)" >&2; exit 2 ;;
esac
base="${HF_ENDPOINT:-https://huggingface.co}/$repo/resolve/main"
files=(config.json vocab.json merges.txt model.safetensors)

if ((check)); then
  for f in "${files[@]}"; do
    reachable fetch-gpt2 "$base/$f" || exit "$EX_UNAVAILABLE"
  done
  echo "fetch-gpt2: would download $repo from ${HF_ENDPOINT:-https://huggingface.co} to $dest" >&2
  exit 0
fi

plateau=${PLATEAU_BIN:-build/plateau}
[ -x "$plateau" ] || { echo "fetch-gpt2: $plateau not built (cmake -B build && cmake --build build)" >&2; exit 2; }
tmp="$dest.partial"
rm -rf "$tmp"
mkdir -p "$tmp"
for f in "${files[@]}"; do
  [ "$f" = model.safetensors ] && echo "fetch-gpt2: downloading $repo/$f" >&2
  fetch_url fetch-gpt2 "$base/$f" "$tmp/$f" || { rm -rf "$tmp"; exit "$EX_UNAVAILABLE"; }
done
if [ "$name" = gpt2 ]; then
  "$plateau" verify "$tmp" --manifest jobs/gpt2-small.tensors.sha256 || { echo "fetch-gpt2: $tmp does not match the GPT-2 small manifest; left there for inspection" >&2; exit 2; }
else
  "$plateau" info "$tmp" >/dev/null || { echo "fetch-gpt2: $tmp is not a valid GPT-2 model dir; left there for inspection" >&2; exit 2; }
fi
rm -rf "$dest"
mv "$tmp" "$dest"
echo "fetch-gpt2: $dest ready" >&2
