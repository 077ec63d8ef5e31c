#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (ctest). Extra arguments go to ctest,
# e.g. `bash scripts/test.sh -L unit` or `-LE slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)" "$@"
