#!/bin/bash
# ensure_gpt3_encoder.sh DIR: install the npm package gpt-3-encoder (the tokenizer tests' reference)
# into DIR/node_modules once, serialised with flock so parallel tests share one install.
# Exit 77 (skip) with a message when node/npm are missing or the registry cannot be reached.
dir=$1
version=1.1.4
command -v node >/dev/null && command -v npm >/dev/null ||
    { echo "SKIP: node/npm not installed (Debian packages nodejs, npm)"; exit 77; }
mkdir -p "$dir" || exit 77
(
    flock 9
    [ -f "$dir/node_modules/gpt-3-encoder/Encoder.js" ] && exit 0
    npm install --prefix "$dir" --no-audit --no-fund --no-save --loglevel=error "gpt-3-encoder@$version" >"$dir/npm.log" 2>&1
) 9>"$dir/.lock"
[ -f "$dir/node_modules/gpt-3-encoder/Encoder.js" ] ||
    { echo "SKIP: 'npm install gpt-3-encoder@$version' failed (no registry access?):"; tail -5 "$dir/npm.log"; exit 77; }
exit 0
