#!/usr/bin/env bash
# Build every libFuzzer target of plateau and run each for SECONDS.
#
#   bash scripts/fuzz.sh SECONDS [NAME...]     # e.g. bash scripts/fuzz.sh 600; bash scripts/fuzz.sh 30 fuzz_npy
#
# A target is any tests/<area>/fuzz_<name>.c (LLVMFuzzerTestOneInput) that no other fuzz source
# #includes. It is built with clang, libFuzzer, ASan and UBSan in build-fuzz/ (cmake -DPLATEAU_FUZZ=ON),
# linked against all of plateau. Beside it, optional:
#   fuzz_<name>.seeds CORPUS WORK   writes seed inputs into CORPUS (WORK is scratch that lives while the
#                                   target runs; PLATEAU_BIN is the fuzz build's plateau); each KEY=VALUE
#                                   line it prints on stdout is set in the target's environment, except
#                                   PLATEAU_FUZZ_MAX_LEN=N, libFuzzer's -max_len
#   fuzz_<name>.dict                a libFuzzer dictionary
# The corpus of each target is kept in build-fuzz/corpus/<name>, so later runs start from what earlier
# ones found. Prints one line per target (executions, corpus size) and writes the same table to
# build-fuzz/fuzz-summary.txt. Inputs that a passing target refused after the libraries crashed on them
# in a child process (merge's check of each input) are moved to build-fuzz/refused/<name>/ and counted. Exit 0 when no target found anything, 1 when one did (its input is
# copied to build-fuzz/findings/), 77 when clang or its libFuzzer runtime is missing.
set -uo pipefail
seconds=${1:?usage: scripts/fuzz.sh SECONDS [NAME...]}
shift
cd "$(dirname "$0")/.." || exit 2
root=$PWD
build=${PLATEAU_FUZZ_BUILD:-$root/build-fuzz}
export PYTHON=${PYTHON:-/usr/bin/python3}
export PLATEAU_SRC_DIR=$root
export PLATEAU_SHARED_DIR=${PLATEAU_SHARED_DIR:-$(cd "$root/.." && pwd)/shared}

clang=$(command -v clang || command -v clang-14 || true)
[[ -n $clang ]] || { echo "fuzz.sh: SKIP: clang is not installed (Debian: clang libclang-rt-14-dev)"; exit 77; }
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }' >"$probe/p.c"
"$clang" -fsanitize=fuzzer "$probe/p.c" -o "$probe/p" 2>"$probe/log" ||
    { echo "fuzz.sh: SKIP: clang cannot link -fsanitize=fuzzer (libclang-rt-14-dev missing?)"; cat "$probe/log"; exit 77; }

mkdir -p "$build"
cmake -S . -B "$build" -DCMAKE_C_COMPILER="$clang" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="-O1" -DPLATEAU_FUZZ=ON \
    >"$build/cmake.log" 2>&1 || { cat "$build/cmake.log"; echo "fuzz.sh: cmake failed"; exit 2; }
# the targets, as tests/CMakeLists.txt found them: "NAME SOURCE_DIR" lines
declare -A target_dir
targets=()
while read -r name dir; do
    if (($# == 0)) || [[ " $* " == *" $name "* ]]; then
        targets+=("$name")
        target_dir[$name]=$dir
    fi
done <"$build/fuzz_targets.txt"
((${#targets[@]})) || { echo "fuzz.sh: no fuzz target matches: $* (targets: $(cut -d' ' -f1 "$build/fuzz_targets.txt" | xargs))"; exit 2; }
cmake --build "$build" -j"$(nproc)" --target plateau "${targets[@]}" >"$build/build.log" 2>&1 ||
    { tail -40 "$build/build.log"; echo "fuzz.sh: the build failed"; exit 2; }
export PLATEAU_BIN=$build/plateau
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

summary=$build/fuzz-summary.txt
printf '%-24s %8s %14s %8s  %s\n' target seconds executions corpus result | tee "$summary"
found=0
for name in "${targets[@]}"; do
    dir=${target_dir[$name]}
    corpus=$build/corpus/$name
    work=$build/work/$name
    rm -rf "$work"
    mkdir -p "$corpus" "$work" "$build/findings"
    envs=()
    max_len=()
    if [[ -f $dir/$name.seeds ]]; then
        if ! seeds_out=$(bash "$dir/$name.seeds" "$corpus" "$work" 2>"$work/seeds.log"); then
            echo "fuzz.sh: $dir/$name.seeds failed:"; cat "$work/seeds.log"; found=1; continue
        fi
        while IFS= read -r line; do
            case $line in
            PLATEAU_FUZZ_MAX_LEN=*) max_len=(-max_len="${line#*=}") ;;
            *=*) envs+=("$line") ;;
            esac
        done <<<"$seeds_out"
    fi
    dict=()
    [[ -f $dir/$name.dict ]] && dict=(-dict="$dir/$name.dict")
    touch "$work/log.start"
    (cd "$work" && env "${envs[@]}" "$build/tests/$name" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$build/findings/$name-" "${max_len[@]}" "${dict[@]}" "$corpus" \
        >"$work/log" 2>&1)
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
    size=$(find "$corpus" -type f | wc -l)
    if ((rc == 0)); then
        result=ok
        # a target that passed wrote no artifact itself: these come from child processes the code under
        # test forked and survived (merge reads each input in a child first, and refuses the input when
        # the netCDF/HDF5 libraries crash there): inputs refused cleanly, kept apart
        mapfile -t children < <(find "$build/findings" -name "$name-*" -newer "$work/log.start")
        if ((${#children[@]})); then
            mkdir -p "$build/refused/$name"
            mv "${children[@]}" "$build/refused/$name/"
            result="ok (${#children[@]} inputs crashed the libraries in a checking child and were refused; in $build/refused/$name)"
        fi
    else
        result="FOUND (exit $rc): $(ls -t "$build/findings/$name-"* 2>/dev/null | head -1)"
        found=1
    fi
    printf '%-24s %8s %14s %8s  %s\n' "$name" "$seconds" "${execs:-?}" "$size" "$result" | tee -a "$summary"
    if ((rc != 0)); then
        grep -E -A25 'ERROR|==[0-9]+==|deadly signal|runtime error' "$work/log" | head -60
    fi
done
exit "$found"
