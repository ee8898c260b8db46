#!/usr/bin/env bash
# Builds compactor-runner (the core, no Python) with clang under a sanitizer.
#   tests/sanitize/build.sh asan|tsan OUT_DIR       prints the runner's path
# asan: AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer), any report fatal;
# tsan: ThreadSanitizer. Both RelWithDebInfo, so reports carry file:line.
set -euo pipefail
kind="${1:?asan or tsan}"
out="${2:?output folder}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
case "$kind" in
  asan) flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" ;;
  tsan) flags="-fsanitize=thread" ;;
  *) echo "build.sh: unknown sanitizer '$kind' (asan or tsan)" >&2; exit 2 ;;
esac
cxx="${CXX_SANITIZE:-$(command -v clang++-14 || command -v clang++ || true)}"
if [ -z "$cxx" ]; then
  echo "build.sh: clang is not installed (apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 2
fi
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$root" -B "$out" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" \
  -DCOMPACTOR_PYTHON=OFF -DCOMPACTOR_CHECK_PAGE_STATES=ON \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >"$out.configure.log" 2>&1 \
  || { cat "$out.configure.log" >&2; exit 1; }
cmake --build "$out" --target compactor-runner -j "$(nproc)" >"$out.build.log" 2>&1 || { tail -50 "$out.build.log" >&2; exit 1; }
echo "$out/compactor-runner"
