#!/bin/bash
# Broken tokenizer.json / tokenizer.bin files and failed lookups: each gives exit code 2 and one line
# "plateau: <file>: <what>" naming the file and the problem. Files are generated: no ../shared needed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d) || exit 2
trap 'rm -rf "$work"' EXIT
py=${PYTHON:-/usr/bin/python3}
"$py" "$here/make_hf_synthetic.py" "$work/syn" "$here/hf_hard_cases.jsonl" || exit 2
good=$work/syn/llama3/tokenizer.json
# a small valid llama2.c tokenizer.bin: <unk> <s> </s>, 256 byte tokens, " ", "a", "b", "ab"
"$py" - "$work/good.bin" <<'PY' || exit 2
import struct, sys
pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"<0x%02X>" % b for b in range(256)] + [b" ", b"a", b"b", b"ab"]
open(sys.argv[1], "wb").write(struct.pack("<i", 6) + b"".join(struct.pack("<fi", -i, len(p)) + p for i, p in enumerate(pieces)))
PY
failures=0 checks=0

# expect NAME MESSAGE_GLOB COMMAND...: exit 2, nothing on stdout, one line on stderr matching "plateau: GLOB"
expect() {
    local name=$1 want=$2
    shift 2
    checks=$((checks + 1))
    out=$("$@" 2>"$work/err"); rc=$?
    err=$(cat "$work/err")
    # shellcheck disable=SC2053
    if [ $rc -ne 2 ] || [ -n "$out" ] || [ "$(wc -l <"$work/err")" -ne 1 ] || [[ $err != "plateau: "$want ]]; then
        echo "FAIL: $name: exit $rc, stdout '$out', stderr '$err'"
        echo "      want exit 2 and 'plateau: $want'"
        failures=$((failures + 1))
    fi
}
# json NAME MESSAGE_GLOB PYTHON: tokenizer.json = the good one with `j` changed by PYTHON
json() {
    local name=$1 want=$2 edit=$3
    mkdir -p "$work/$name"
    "$py" -c "import json; j = json.load(open('$good', encoding='utf-8')); $edit; json.dump(j, open('$work/$name/tokenizer.json', 'w', encoding='utf-8'), ensure_ascii=False)" ||
        { echo "FAIL: $name: setup"; failures=$((failures + 1)); return; }
    expect "$name" "$work/$name/tokenizer.json: $want" "$PLATEAU_BIN" tokenize "$work/$name" 'some text'
}
# bin NAME MESSAGE_GLOB PYTHON: tokenizer.bin = the good one's bytes `b` changed by PYTHON
bin() {
    local name=$1 want=$2 edit=$3
    "$py" -c "import struct; b = bytearray(open('$work/good.bin', 'rb').read()); $edit; open('$work/$name.bin', 'wb').write(b)" ||
        { echo "FAIL: $name: setup"; failures=$((failures + 1)); return; }
    expect "$name" "$work/$name.bin: $want" "$PLATEAU_BIN" tokenize x 'some text' --tokenizer "$work/$name.bin"
}

checks=$((checks + 2))
"$PLATEAU_BIN" tokenize "$work/syn/llama3" 'the cat' >/dev/null || { echo "FAIL: the good tokenizer.json does not load"; failures=$((failures + 1)); }
"$PLATEAU_BIN" tokenize x 'the cat' --tokenizer "$work/good.bin" >/dev/null || { echo "FAIL: the good tokenizer.bin does not load"; failures=$((failures + 1)); }

mkdir "$work/garbage" "$work/trunc" "$work/array"
printf '{"model": {,}' >"$work/garbage/tokenizer.json"
head -c 2000 "$good" >"$work/trunc/tokenizer.json"
echo '[1, 2]' >"$work/array/tokenizer.json"
expect bad_json "$work/garbage/tokenizer.json:1:*: invalid JSON: *" "$PLATEAU_BIN" tokenize "$work/garbage" x
expect truncated_json "$work/trunc/tokenizer.json:*: invalid JSON: *" "$PLATEAU_BIN" tokenize "$work/trunc" x
expect json_array "$work/array/tokenizer.json: expected a JSON object" "$PLATEAU_BIN" tokenize "$work/array" x
json unigram 'model type "Unigram" is not supported (plateau reproduces BPE only)' 'j["model"]["type"] = "Unigram"'
json wordpiece 'model type "WordPiece" is not supported (plateau reproduces BPE only)' 'j["model"]["type"] = "WordPiece"'
json no_model '"model" is missing or not an object' 'del j["model"]'
json merge_unknown 'model BPE: merge 1: token "qqqq" is not in the vocab' 'j["model"]["merges"][0] = ["qqqq", "a"]'
json merge_result 'model BPE: merge 1: merged token "*" is not in the vocab' 'j["model"]["merges"][0] = ["a", "a"] if "aa" not in j["model"]["vocab"] else ["a", "z"]'
json merge_shape 'model BPE: merge 2 is neither "a b" nor \["a", "b"\]' 'j["model"]["merges"][1] = ["a"]'
json merge_string 'model BPE: merge 1 "nospace" is not two tokens separated by a space' 'j["model"]["merges"][0] = "nospace"'
json vocab_id 'model BPE: vocab key "*": id is not an integer in 0..*' 'k = next(iter(j["model"]["vocab"])); j["model"]["vocab"][k] = -3'
json vocab_dup_id 'model BPE: vocab key "*": id 0 is already used by "*"' 'k = list(j["model"]["vocab"])[5]; j["model"]["vocab"][k] = 0'
json dropout 'model BPE: dropout 0.1 is not supported (it makes tokenisation random)' 'j["model"]["dropout"] = 0.1'
json prefix 'model BPE: continuing_subword_prefix "##" is not supported' 'j["model"]["continuing_subword_prefix"] = "##"'
json unk_missing 'model BPE: unk_token "<nope>" is not in the vocab' 'j["model"]["unk_token"] = "<nope>"'
json model_option 'model BPE: option "frobnicate" is not supported' 'j["model"]["frobnicate"] = 1'
json normalizer 'normalizer type "Lowercase" is not supported (*)' 'j["normalizer"] = {"type": "Lowercase"}'
json pretok 'pre_tokenizer type "Whitespace" is not supported (*)' 'j["pre_tokenizer"] = {"type": "Whitespace"}'
json pretok_option 'pre_tokenizer Split: option "flags" is not supported' 'j["pre_tokenizer"]["pretokenizers"][0]["flags"] = 1'
json behavior 'pre_tokenizer Split: behavior "Sideways" is not one of *' 'j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Sideways"'
json regex_w 'pre_tokenizer Split: pattern "\\w+": \\w at offset 0 is not supported (*)' 'j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {"Regex": "\\w+"}'
json regex_bad 'pre_tokenizer Split: pattern "(unclosed": cannot compile: *' 'j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {"Regex": "(unclosed"}'
json decoder 'decoder type "WordPiece" is not supported (*)' 'j["decoder"] = {"type": "WordPiece", "prefix": "##", "cleanup": True}'
json post 'post_processor type "BertProcessing" is not supported (*)' 'j["post_processor"] = {"type": "BertProcessing", "sep": ["</s>", 2], "cls": ["<s>", 1]}'
json truncation '"truncation" is set: plateau encodes whole texts (set it to null)' 'j["truncation"] = {"max_length": 50}'
json top_option 'top level: option "extra" is not supported' 'j["extra"] = 1'
json added_id 'added_tokens\[0\]: "<|begin_of_text|>" has id 5, but HF tokenizers would give it id *' 'j["added_tokens"][0]["id"] = 5'
json added_twice 'added_tokens\[1\]: "<|begin_of_text|>" is listed twice' 'j["added_tokens"][1]["content"] = "<|begin_of_text|>"'
json added_option 'added_tokens\[0\]: option "weird" is not supported' 'j["added_tokens"][0]["weird"] = True'

bin empty '0 bytes: too short for llama2.c'"'"'s tokenizer header (int32 max_token_length)' 'b = b""'
bin max_len 'max_token_length -1 (expected >= 1)' 'b[0:4] = struct.pack("<i", -1)'
bin truncated_entry 'token 262: truncated at byte * (score and length need 8 bytes, 3 left)' 'b = b[:len(b) - 10 + 3]'
bin length_negative 'token 0: length -5 outside 0..max_token_length (6)' 'b[8:12] = struct.pack("<i", -5)'
bin length_too_long 'token 0: length 7 outside 0..max_token_length (6)' 'b[8:12] = struct.pack("<i", 7)'
bin length_past_end 'token 262: length 5 runs past the end of the file (2 bytes left)' 'b[-6:-2] = struct.pack("<i", 5)'
bin no_tokens 'no tokens after the header' 'b = b[:4]'

# lookups: what was looked for is named
mkdir "$work/empty" && : >"$work/empty/model.bin"
expect no_tokenizer_dir "$work/empty: no tokenizer: looked for tokenizer.json, and for vocab.json + merges.txt" \
    "$PLATEAU_BIN" tokenize "$work/empty" x
expect missing_file "$work/nope.bin: cannot open: *" "$PLATEAU_BIN" tokenize x y --tokenizer "$work/nope.bin"
mkdir "$work/fifo" && mkfifo "$work/fifo/tokenizer.json"
expect fifo "$work/fifo/tokenizer.json: *not a regular file*" "$PLATEAU_BIN" tokenize "$work/fifo" x

echo "$((checks - failures)) passed, $failures failed"
[ $failures -eq 0 ]
