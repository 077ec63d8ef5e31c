#!/usr/bin/env bash
# Builds rlaif and its tests with AddressSanitizer (leak checking included) and UndefinedBehaviorSanitizer into
# build-sanitize/ (-DRLAIF_SANITIZE=address,undefined, -O1) and runs the unit, model, net and cli suites under them.
# Any report fails its test: ASan and LSan exit non-zero, UBSan stops at the first report (-fno-sanitize-recover).
# CI runs it after the test suite (.ci/run). Extra arguments go to ctest, e.g. `bash scripts/sanitize.sh -R test_judge`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null  # the packages (and the normal build, whose npm references are shared)
dir="${SANITIZE_BUILD_DIR:-build-sanitize}"
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g1" \
  -DRLAIF_SANITIZE=address,undefined -DRLAIF_BUILD_BENCH=OFF -DRLAIF_NPM_DIR="$PWD/${BUILD_DIR:-build}/npm" >/dev/null
labels='^(unit|model|net|cli)$'
# Only what those suites run is built: the CLI and the test executables ctest lists for them (a test named after an
# executable target runs it, see rlaif_test in tests/CMakeLists.txt). The train, reference and benchmark executables
# would add minutes to CI and are never run here.
tests=$(ctest --test-dir "$dir" -N -L "$labels" | sed -n 's/^ *Test *#[0-9]*: //p' | sort)
targets=$(ninja -C "$dir" -t targets all | sed -n 's/^\([A-Za-z0-9_]*\): phony$/\1/p' | sort | comm -12 - <(echo "$tests"))
start=$(date +%s)
cmake --build "$dir" -j "$(nproc)" --target rlaif $targets
echo "sanitize: built $dir in $(( $(date +%s) - start )) s"
# Reports name source lines; leaks are checked at every exit (also of the rlaif processes the tests start).
export ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/sanitize/lsan.supp:print_suppressions=0"
# First, the sanitizers must catch three planted bugs (tests/sanitize/planted.cpp) built with the same flags.
planted="$dir/planted"
c++ -std=c++17 -O1 -g1 -fsanitize=address,undefined -fno-sanitize-recover=all tests/sanitize/planted.cpp -o "$planted"
for bug in heap:heap-use-after-free leak:detected\ memory\ leaks ub:signed\ integer\ overflow; do
  if out=$("$planted" "${bug%%:*}" 2>&1) || ! grep -q "${bug#*:}" <<<"$out"; then
    echo "sanitize: the planted ${bug%%:*} bug was not reported; the sanitizers are not working" >&2
    exit 1
  fi
done
echo "sanitize: the planted use after free, leak and signed overflow are each reported"
ctest --test-dir "$dir" --output-on-failure -j "$(nproc)" -L "$labels" "$@"
