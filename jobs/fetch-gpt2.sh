#!/usr/bin/env bash
# Download a Hugging Face GPT-2 model dir (config.json, model.safetensors, vocab.json, merges.txt)
# and verify it. Run this on a login node: compute nodes are often offline.
#
#   bash jobs/fetch-gpt2.sh [gpt2|gpt2-medium|gpt2-large|gpt2-xl|distilgpt2] [DEST]
#
# DEST defaults to models/<name>. GPT-2 small is checked tensor by tensor against
# jobs/gpt2-small.tensors.sha256 with `plateau verify`; the other sizes are checked for a complete,
# well-formed model dir with `plateau info`. Exit 0 only when the model dir is complete and checks out;
# a partial download never stays under DEST.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-gpt2}
dest=${2:-models/$name}
case "$name" in
  gpt2|gpt2-medium|gpt2-large|gpt2-xl) repo="openai-community/$name" ;;
  distilgpt2) repo="distilbert/distilgpt2" ;;
  *) echo "fetch-gpt2: unknown model '$name' (gpt2, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2)" >&2; exit 2 ;;
esac
plateau=${PLATEAU_BIN:-build/plateau}
[ -x "$plateau" ] || { echo "fetch-gpt2: $plateau not built (cmake -B build && cmake --build build)" >&2; exit 2; }
command -v curl >/dev/null || { echo "fetch-gpt2: curl is not installed" >&2; exit 2; }

base="${HF_ENDPOINT:-https://huggingface.co}/$repo/resolve/main"
tmp="$dest.partial"
rm -rf "$tmp"
mkdir -p "$tmp"
for f in config.json vocab.json merges.txt model.safetensors; do
  echo "fetch-gpt2: $repo/$f" >&2
  if ! curl -fL --retry 2 --connect-timeout 15 -sS -o "$tmp/$f" "$base/$f"; then
    rm -rf "$tmp"
    echo "fetch-gpt2: could not download $repo/$f (offline?)" >&2
    exit 3
  fi
done
if [ "$name" = gpt2 ]; then
  "$plateau" verify "$tmp" --manifest jobs/gpt2-small.tensors.sha256 || { echo "fetch-gpt2: $tmp does not match the GPT-2 small manifest; left there for inspection" >&2; exit 2; }
else
  "$plateau" info "$tmp" >/dev/null || { echo "fetch-gpt2: $tmp is not a valid GPT-2 model dir; left there for inspection" >&2; exit 2; }
fi
rm -rf "$dest"
mv "$tmp" "$dest"
echo "fetch-gpt2: $dest ready" >&2
