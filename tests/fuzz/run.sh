#!/bin/sh
# Builds the libFuzzer target with clang-14 (ASan + UBSan) in its own build directory and fuzzes
# XmlStateStore for SECONDS (default 30), starting from tests/fuzz/corpus.
#   tests/fuzz/run.sh [SECONDS] [BUILD_DIR]
# New interesting inputs go to BUILD_DIR/corpus (the seed corpus in the tree is not touched);
# a failing input is written to BUILD_DIR/crash-* : copy it to tests/fuzz/regressions/ once fixed.
set -eu
seconds=${1:-30}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${2:-$src/build-fuzz}
CXX=${CXX_FUZZ:-clang++-14}
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMAMA_BUILD_EXAMPLES=OFF -DMAMA_INSTALL=OFF >/dev/null
cmake --build "$build" --target mama_fuzz_store
mkdir -p "$build/corpus"
cd "$build"
exec ./tests/fuzz/mama_fuzz_store -max_total_time="$seconds" -print_final_stats=1 \
  -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$build/" "$build/corpus" "$here/corpus"
