#!/usr/bin/env bash
# Installs every build, test and run dependency of rlaif from Debian packages, then builds the project.
# Idempotent and quick when everything is already there. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev libopenblas0-openmp   # libtorch; OpenBLAS (OpenMP build) replaces the reference BLAS: ~40x faster fp32 matmul
  libgloo-dev                        # the headers of libtorch's c10d Gloo process group (data parallel)
  nlohmann-json3-dev libcurl4-openssl-dev libcpp-httplib-dev libtomlplusplus-dev libcli11-dev
  libpcre2-dev libutf8proc-dev libsqlite3-dev libgtest-dev libgmock-dev libbenchmark-dev
  python3-torch python3-numpy python3-scipy  # independent references used by the tests (PyTorch, SciPy)
  chromium-headless-shell                    # the report test loads rlaif report's page in a real browser
  clang libclang-rt-14-dev                   # libFuzzer with ASan and UBSan for the parsers' fuzz targets (tests/fuzz)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: error: packages are missing and this is not root. Run as root: bash scripts/setup.sh" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

BUILD_DIR="${BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
echo "setup: built $BUILD_DIR/rlaif"
