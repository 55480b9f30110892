#!/bin/bash
# ensure_hf_tokenizers.sh DIR: install the npm package @huggingface/tokenizers (the HF tokenizer.json
# tests' reference: an independent pure-JS implementation) into DIR/node_modules once, serialised with
# flock so parallel tests share one install. Exit 77 (skip) with a message when node/npm are missing
# or the registry cannot be reached.
dir=$1
version=0.2.0
pkg=$dir/node_modules/@huggingface/tokenizers/dist/tokenizers.cjs
command -v node >/dev/null && command -v npm >/dev/null ||
    { echo "SKIP: node/npm not installed (Debian packages nodejs, npm)"; exit 77; }
mkdir -p "$dir" || exit 77
(
    flock 9
    [ -f "$pkg" ] && exit 0
    npm install --prefix "$dir" --no-audit --no-fund --no-save --loglevel=error "@huggingface/tokenizers@$version" >"$dir/npm.log" 2>&1
) 9>"$dir/.lock"
[ -f "$pkg" ] ||
    { echo "SKIP: 'npm install @huggingface/tokenizers@$version' failed (no registry access?):"; tail -5 "$dir/npm.log"; exit 77; }
exit 0
