#!/usr/bin/env bash
# Put real web text at data/webtext.valid.jsonl, the prompts the jobs/ configs read:
#   1. $PLATEAU_DATA if set (a .jsonl with a "text" field per line, plain text, or a uint16 .bin);
#   2. ../shared/data/webtext.valid.jsonl beside the checkout (linked, not copied);
#   3. OpenAI's gpt-2-output-dataset WebText validation split (5,000 documents) when online.
# Exits 3 with a plain message when none of them can be had.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=data/webtext.valid.jsonl
mkdir -p data
if [ -n "${PLATEAU_DATA:-}" ]; then
  [ -r "$PLATEAU_DATA" ] || { echo "fetch-data: PLATEAU_DATA=$PLATEAU_DATA is not a readable file" >&2; exit 2; }
  ln -sfn "$(realpath "$PLATEAU_DATA")" "$dest"
  echo "fetch-data: $dest -> $PLATEAU_DATA" >&2
  exit 0
fi
if [ -s "$dest" ]; then
  exit 0
fi
shared=../shared/data/webtext.valid.jsonl
if [ -r "$shared" ]; then
  ln -sfn "$(realpath "$shared")" "$dest"
  echo "fetch-data: $dest -> $shared" >&2
  exit 0
fi
url=https://openaipublic.azureedge.net/gpt-2/output-dataset/v1/webtext.valid.jsonl
if command -v curl >/dev/null && curl -fL --retry 2 --connect-timeout 15 -sS -o "$dest.partial" "$url"; then
  mv "$dest.partial" "$dest"
  echo "fetch-data: downloaded $dest" >&2
  exit 0
fi
rm -f "$dest.partial"
echo "fetch-data: no prompt data: set PLATEAU_DATA=FILE, or run online to download WebText's validation split" >&2
exit 3
