#!/usr/bin/env bash
# Put prompt text where the jobs/ configs read it:
#
#   bash jobs/fetch-data.sh [webtext|tinystories] [--check]
#
#   webtext (default)  data/webtext.valid.jsonl: OpenAI's WebText validation split (GPT-2's training
#                      distribution), for the GPT-2 jobs
#   tinystories        data/tinystories.jsonl: TinyStories stories (the training distribution of
#                      stories260K and tinystories-gpt2), for jobs/quickstart-*.ini
#
# From, in order: $PLATEAU_DATA if set (any prompt file plateau reads: .jsonl with a "text" field, plain
# text, or a uint16 .bin; linked); the file already in data/; ../shared/data/<same name> (linked, not
# copied); the web when online: webtext from OpenAI's gpt-2-output-dataset (5,000 documents),
# tinystories from the Hugging Face dataset roneneldan/TinyStories (its validation split, TinyStories-valid.txt,
# split at its <|endoftext|> lines into one {"text": ...} object a line).
# --check changes nothing: it says what would be done, and whether the data can be had (exit 0 or 69).
# $PLATEAU_SHARED_DIR replaces ../shared; $HF_ENDPOINT replaces https://huggingface.co;
# $PLATEAU_WEBTEXT_URL replaces WebText's URL (mirrors).
# Exit: 0 ready; 1 usage; 2 unknown name or unreadable $PLATEAU_DATA; 69 cannot be had here (offline?).
set -euo pipefail
cd "$(dirname "$0")/.."
. jobs/fetch_lib.sh
fetch_args fetch-data "$@"
((${#args[@]} <= 1)) || { echo "fetch-data: expected at most one data set name (webtext or tinystories)" >&2; exit 1; }
name=${args[0]:-webtext}
case "$name" in
  webtext)
    file=webtext.valid.jsonl
    url=${PLATEAU_WEBTEXT_URL:-https://openaipublic.azureedge.net/gpt-2/output-dataset/v1/webtext.valid.jsonl} ;;
  tinystories)
    file=tinystories.jsonl
    url=${HF_ENDPOINT:-https://huggingface.co}/datasets/roneneldan/TinyStories/resolve/main/TinyStories-valid.txt ;;
  *) echo "fetch-data: unknown data set '$name' (webtext, tinystories)" >&2; exit 2 ;;
esac
dest=data/$file
shared=${PLATEAU_SHARED_DIR:-../shared}/data/$file

# say_or_link TARGET: link dest to TARGET (with --check: say that it would).
say_or_link() {
  if ((check)); then
    echo "fetch-data: would link $dest -> $1" >&2
  else
    mkdir -p data
    ln -sfn "$(realpath "$1")" "$dest"
    echo "fetch-data: $dest -> $1" >&2
  fi
  exit 0
}
if [ -n "${PLATEAU_DATA:-}" ]; then
  [ -f "$PLATEAU_DATA" ] && [ -r "$PLATEAU_DATA" ] || { echo "fetch-data: PLATEAU_DATA=$PLATEAU_DATA is not a readable file" >&2; exit 2; }
  say_or_link "$PLATEAU_DATA"
fi
if [ -s "$dest" ]; then
  ((check)) && echo "fetch-data: $dest is there" >&2
  exit 0
fi
[ -r "$shared" ] && say_or_link "$shared"
if ((check)); then
  reachable fetch-data "$url" || exit "$EX_UNAVAILABLE"
  echo "fetch-data: would download $url to $dest" >&2
  exit 0
fi
mkdir -p data
fetch_url fetch-data "$url" "$dest.partial" || exit "$EX_UNAVAILABLE"
if [ "$name" = tinystories ]; then
  # One story a line as JSON; the file separates stories with <|endoftext|> lines.
  /usr/bin/python3 - "$dest.partial" "$dest.jsonl.partial" <<'PY'
import json, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
with open(sys.argv[2], "w", encoding="utf-8") as out:
    for story in text.split("<|endoftext|>"):
        story = story.strip()
        if story:
            out.write(json.dumps({"text": story}, ensure_ascii=False) + "\n")
PY
  mv "$dest.jsonl.partial" "$dest.partial"
fi
mv "$dest.partial" "$dest"
echo "fetch-data: downloaded $dest from $url" >&2
