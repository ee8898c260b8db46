#!/usr/bin/env bash
# Builds the plan-file fuzzer (clang, libFuzzer, ASan, UBSan) and runs it.
#   tests/fuzz/run.sh [RUNS]        default 1000000 executions
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
runs="${1:-1000000}"
out="${FUZZ_OUT:-$(mktemp -d)}"
mkdir -p "$out"
CXX="${CXX_FUZZ:-$(command -v clang++-14 || command -v clang++)}"
"$CXX" -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$root/native/include" "$here/fuzz_plan_file.cpp" \
  "$root/native/core/plan_file.cpp" "$root/native/core/plan.cpp" "$root/native/core/plan_checks.cpp" \
  "$root/native/core/heap_image.cpp" "$root/native/core/heap_space.cpp" "$root/native/core/mapping.cpp" \
  "$root/native/core/errors.cpp" "$root/native/core/page_compaction.cpp" "$root/native/core/verify.cpp" -o "$out/fuzz_plan_file"
mkdir -p "$out/corpus"
# Run from outside the source tree so that the installed compactor (with its native module) is imported.
(cd "$out" && "${PYTHON:-python3}" "$here/make_corpus.py" "$out/corpus")
"$out/fuzz_plan_file" -runs="$runs" -max_len=262144 -timeout=10 "$out/corpus" 2>&1 | tail -n 3
