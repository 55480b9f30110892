#!/bin/bash
# Broken tokenizer dirs: each gives exit code 2 and one line "plateau: <file>[:line]: <what>" naming
# the file and the line or key. Built from a generated tiny vocab: no ../shared needed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d) || exit 2
trap 'rm -rf "$work"' EXIT
py=${PYTHON:-/usr/bin/python3}
"$py" "$here/make_tiny_vocab.py" "$work/good" || exit 2
failures=0 checks=0

# case NAME EXPECTED_MESSAGE_GLOB SETUP_COMMAND: copy the good dir to $d, run SETUP there, expect the message.
case_() {
    local name=$1 want=$2 setup=$3
    checks=$((checks + 1))
    d=$work/$name
    cp -r "$work/good" "$d"
    (cd "$d" && eval "$setup") || { echo "FAIL: $name: setup failed"; failures=$((failures + 1)); return; }
    out=$("$PLATEAU_BIN" tokenize "$d" 'some text' 2>"$work/err"); rc=$?
    err=$(cat "$work/err")
    # shellcheck disable=SC2053
    if [ $rc -ne 2 ] || [ -n "$out" ] || [ "$(wc -l <"$work/err")" -ne 1 ] || [[ $err != "plateau: "$want ]]; then
        echo "FAIL: $name: exit $rc, stdout '$out', stderr '$err'"
        echo "      want exit 2 and 'plateau: $want'"
        failures=$((failures + 1))
    fi
}
# edit_vocab PYTHON_STATEMENTS: rewrite vocab.json with `v` (the dict) changed.
edit_vocab() { "$py" -c "import json; v = json.load(open('vocab.json', encoding='utf-8')); $1; json.dump(v, open('vocab.json', 'w', encoding='utf-8'), ensure_ascii=False)"; }

checks=$((checks + 1))
"$PLATEAU_BIN" tokenize "$work/good" 'the cat' >/dev/null || { echo "FAIL: the good tiny vocab does not load"; failures=$((failures + 1)); }

case_ no_vocab      "$work/no_vocab/vocab.json: cannot open: No such file or directory" 'rm vocab.json'
case_ no_merges     "$work/no_merges/merges.txt: cannot open: No such file or directory" 'rm merges.txt'
case_ vocab_garbage "$work/vocab_garbage/vocab.json:1:*: invalid JSON: *" 'printf "{\"a\": 1,, }" >vocab.json'
case_ vocab_empty   "$work/vocab_empty/vocab.json:*: invalid JSON: *" ': >vocab.json'
case_ vocab_trunc   "$work/vocab_trunc/vocab.json:*: invalid JSON: *" 'head -c 300 vocab.json >v && mv v vocab.json'
case_ vocab_array   "$work/vocab_array/vocab.json: expected a JSON object {\"token\": id, ...}" 'echo "[1, 2]" >vocab.json'
case_ vocab_no_tokens "$work/vocab_no_tokens/vocab.json: 0 tokens (expected 1..16777216)" 'echo "{}" >vocab.json'
case_ id_string     "$work/id_string/vocab.json: key \"the\": id is not an integer" 'edit_vocab "v[\"the\"] = \"7\""'
case_ id_float      "$work/id_float/vocab.json: key \"the\": id is not an integer" 'edit_vocab "v[\"the\"] = 1.5"'
case_ id_negative   "$work/id_negative/vocab.json: key \"the\": id -1 outside 0..* (ids must be 0..N-1 for N tokens)" 'edit_vocab "v[\"the\"] = -1"'
case_ id_too_big    "$work/id_too_big/vocab.json: key \"the\": id 100000 outside 0..*" 'edit_vocab "v[\"the\"] = 100000"'
case_ id_twice      "$work/id_twice/vocab.json: key \"*\": id * is already used by another token" 'edit_vocab "v[\"the\"] = v[\"at\"]"'
case_ key_twice     "$work/key_twice/vocab.json:*: invalid JSON: duplicate object key*" 'sed -i "s/^{/{\"at\": 0, /" vocab.json'
case_ key_alphabet  "$work/key_alphabet/vocab.json: key \"Ж\": character U+0416 is not in GPT-2's byte-level alphabet" 'edit_vocab "v[\"Ж\"] = len(v)"'
case_ key_empty     "$work/key_empty/vocab.json: key \"\": empty token" 'edit_vocab "v[\"\"] = len(v)"'
case_ no_byte_token "$work/no_byte_token/vocab.json: no token for byte 0x0A (key \"\\\\u010A\"): every byte needs a token" 'edit_vocab "i = v.pop(\"Ċ\"); v[\"zzzz\"] = i"'
case_ merge_one     "$work/merge_one/merges.txt:3: expected two space-separated tokens, found 1" 'sed -i "3s/ //" merges.txt'
case_ merge_three   "$work/merge_three/merges.txt:5: expected two space-separated tokens, found 3" 'sed -i "5s/$/ x/" merges.txt'
case_ merge_blank   "$work/merge_blank/merges.txt:4: expected two space-separated tokens, found 0" 'sed -i "4s/.*//" merges.txt'
case_ merge_unknown "$work/merge_unknown/merges.txt:2: token \"qqqq\" is not in vocab.json" 'sed -i "2s/.*/qqqq t/" merges.txt'
case_ merge_result  "$work/merge_result/merges.txt:2: merged token \"qx\" is not in vocab.json" 'sed -i "2s/.*/q x/" merges.txt'
case_ merge_alphabet "$work/merge_alphabet/merges.txt:2: token \"Ж\": character U+0416 is not in GPT-2's byte-level alphabet" 'sed -i "2s/.*/Ж t/" merges.txt'
case_ merge_utf8    "$work/merge_utf8/merges.txt:3: token \"*\": invalid UTF-8" 'printf "#version: 0.2\nĠ t\n\xff t\n" >merges.txt'
case_ merge_nul     "$work/merge_nul/merges.txt:2: NUL byte in line" 'printf "#version: 0.2\nĠ\0 t\n" >merges.txt'
case_ merges_dir    "$work/merges_dir/merges.txt: is a directory, not a regular file" 'rm merges.txt && mkdir merges.txt'
case_ vocab_dir     "$work/vocab_dir/vocab.json: is a directory, not a regular file" 'rm vocab.json && mkdir vocab.json'

echo "$((checks - failures)) passed, $failures failed"
[ $failures -eq 0 ]
