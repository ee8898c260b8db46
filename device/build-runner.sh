#!/usr/bin/env bash
# Cross-builds compactor-runner as a static aarch64 executable (runs from /data/local/tmp on Android: no bionic
# needed). Needs Debian's g++-aarch64-linux-gnu and cmake.
#   device/build-runner.sh [OUTPUT_DIR]      default: device/out/aarch64
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/device/out/aarch64}"
command -v aarch64-linux-gnu-g++ >/dev/null || {
  echo "error: aarch64-linux-gnu-g++ not found: apt-get install g++-aarch64-linux-gnu" >&2; exit 2; }
build="$out/build"
cmake -S "$root" -B "$build" -G "$(command -v ninja >/dev/null && echo Ninja || echo 'Unix Makefiles')" \
  -DCMAKE_TOOLCHAIN_FILE="$root/device/toolchain-aarch64.cmake" -DCMAKE_BUILD_TYPE=Release \
  -DCOMPACTOR_PYTHON=OFF -DCOMPACTOR_RUNNER=ON -DCOMPACTOR_STATIC_RUNNER=ON >/dev/null
cmake --build "$build" --target compactor-runner >/dev/null
cp "$build/compactor-runner" "$out/compactor-runner"
echo "$out/compactor-runner"
