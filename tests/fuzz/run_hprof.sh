#!/usr/bin/env bash
# Builds the HPROF-parser fuzzer (clang, libFuzzer, ASan, UBSan) and runs it from the real dumps in
# ../shared/data/hprof (and cut-down copies of them, so that mutations reach every record kind quickly).
#   tests/fuzz/run_hprof.sh [RUNS] [DUMP_DIR]     default 1000000 executions
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
runs="${1:-1000000}"
dumps="${2:-$root/../shared/data/hprof}"
out="${FUZZ_OUT:-$(mktemp -d)}"
mkdir -p "$out/corpus-hprof"
CXX="${CXX_FUZZ:-$(command -v clang++-14 || command -v clang++)}"
"$CXX" -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$root/native/include" "$here/fuzz_hprof.cpp" "$root/native/core/hprof.cpp" -o "$out/fuzz_hprof"
# Seeds: small valid dumps with every record kind (fast to mutate), and the first 16 KiB of each real dump.
"${PYTHON:-python3}" "$here/make_hprof_corpus.py" "$out/corpus-hprof"
for f in "$dumps"/*.hprof; do
  [ -f "$f" ] && head -c 16384 "$f" > "$out/corpus-hprof/$(basename "$f").head"
done
"$out/fuzz_hprof" -runs="$runs" -max_len=16384 -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 \
  "$out/corpus-hprof" 2>&1 | tail -n 3
