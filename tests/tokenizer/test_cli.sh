#!/bin/bash
# plateau tokenize: argument and stdin give the library's ids (tok_driver's, which the reference tests
# check), stdin is read byte for byte (NUL, trailing newline, \r\n), invalid UTF-8 is reported with its
# byte offset (exit 2, one line), usage errors exit 1. Uses a generated tiny vocab: no ../shared needed.
# usage: test_cli.sh TOK_DRIVER
set -u
driver=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d) || exit 2
trap 'rm -rf "$work"' EXIT
"${PYTHON:-/usr/bin/python3}" "$here/make_tiny_vocab.py" "$work/tiny" || exit 2
model=$work/tiny
failures=0 checks=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expected_ids FILE: the library's ids for FILE's bytes, through a one-document JSONL.
expected_ids() {
    "${PYTHON:-/usr/bin/python3}" -c 'import json,sys; print(json.dumps({"text": open(sys.argv[1], "rb").read().decode()}))' "$1" >"$work/doc.jsonl"
    "$driver" "$model" encode "$work/doc.jsonl" 2>/dev/null
}

printf 'the cat sat on the mat' >"$work/t1"
printf "line one\nline two's\r\n\ttabbed  spaces   \n\n" >"$work/t2"
printf 'nul\0inside\0\0 and after' >"$work/t3"
printf 'Привет мир 你好世界 😀 naïve café' >"$work/t4"
: >"$work/t5"
for t in t1 t2 t3 t4 t5; do
    checks=$((checks + 1))
    want=$(expected_ids "$work/$t") || { fail "tok_driver on $t"; continue; }
    got=$("$PLATEAU_BIN" tokenize "$model" - <"$work/$t" 2>"$work/err"); rc=$?
    [ $rc -eq 0 ] && [ "$got" = "$want" ] || fail "stdin $t: exit $rc, got '$got', want '$want' ($(cat "$work/err"))"
    if [ $t != t3 ]; then  # an argument cannot carry NUL bytes
        got=$("$PLATEAU_BIN" tokenize "$model" "$(cat "$work/$t"; printf x)" 2>&1)
        want_x=$(printf x >>"$work/$t"; expected_ids "$work/$t")
        [ "$got" = "$want_x" ] || fail "argument $t: got '$got', want '$want_x'"
    fi
done
checks=$((checks + 1))
lines=$("$PLATEAU_BIN" tokenize "$model" - <"$work/t2" | wc -l)
[ "$lines" -eq 1 ] || fail "ids of a multi-line text span $lines lines, want 1"

# invalid UTF-8: bytes (printf escapes, \x20 for a space) and the offset of the first bad sequence
while read -r bytes offset; do
    checks=$((checks + 1))
    printf "$bytes" >"$work/bad"
    out=$("$PLATEAU_BIN" tokenize "$model" - <"$work/bad" 2>"$work/err"); rc=$?
    err=$(cat "$work/err")
    [ $rc -eq 2 ] && [ -z "$out" ] && [ "$(wc -l <"$work/err")" -eq 1 ] &&
        [[ $err == "plateau: stdin: invalid UTF-8 at byte offset $offset "* ]] ||
        fail "'$bytes': exit $rc, stdout '$out', stderr '$err', want offset $offset"
done <<'EOF_CASES'
abc\xffdef 3
\x80 0
ok\x20\xc3 3
\xc0\xaf 0
\xc1\xbf 0
ab\xed\xa0\x80 2
\xf4\x90\x80\x80 0
\xf8\x88\x80\x80\x80 0
\xc3\xa9\xe2\x82 2
\xf0\x9f\x98\x80\xfe 4
good\x20text\nthen\x20\xe4\xb8 15
\xe0\x80\xaf 0
x\0y\xff 3
EOF_CASES
checks=$((checks + 1))
err=$("$PLATEAU_BIN" tokenize "$model" $'abc\xff' 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] && [[ $err == "plateau: TEXT: invalid UTF-8 at byte offset 3 "* ]] || fail "argument with \\xff: exit $rc, '$err'"

# usage errors exit 1; a missing model dir is bad input (2) naming the file
for args in "" "$model" "$model a b"; do
    checks=$((checks + 1))
    # shellcheck disable=SC2086
    "$PLATEAU_BIN" tokenize $args >/dev/null 2>"$work/err" </dev/null; rc=$?
    [ $rc -eq 1 ] && grep -q 'usage: plateau tokenize' "$work/err" || fail "tokenize '$args': exit $rc, $(cat "$work/err")"
done
checks=$((checks + 1))
err=$("$PLATEAU_BIN" tokenize "$work/nowhere" hi 2>&1); rc=$?
[ $rc -eq 2 ] && [[ $err == "plateau: $work/nowhere: cannot open: "* ]] || fail "missing dir: exit $rc, '$err'"

echo "$((checks - failures)) passed, $failures failed"
[ $failures -eq 0 ]
