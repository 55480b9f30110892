#!/usr/bin/env bash
# Build plateau and run the whole test suite twice: a release build, then an ASan/UBSan build.
# Installs missing Debian packages first (scripts/install-deps.sh). Exit status: ctest's.
#   bash scripts/test.sh            # both builds
#   PLATEAU_NO_ASAN=1 bash scripts/test.sh   # release build only
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)

# -Werror: CI's builds are warning-free (-Wall -Wextra), or they fail.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-Werror >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

if [ -z "${PLATEAU_NO_ASAN:-}" ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DPLATEAU_SANITIZE=ON -DCMAKE_C_FLAGS=-Werror >/dev/null
  cmake --build build-asan -j"$jobs"
  # OpenMPI's own allocations are reported as leaks by LeakSanitizer; leaks in plateau's code are
  # caught by the non-MPI tests, which run with leak detection on.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs" -LE slow
fi
