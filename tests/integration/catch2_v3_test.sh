#!/bin/sh
# integration.catch2_v3: builds examples/integration/catch2_v3 (the Catch2 example suite with
# Catch2 v3) on its own and runs integration_test's runner checks on it. Exit 77 (CTest skip)
# when find_package(Catch2 3 CONFIG) finds no Catch2 v3.
#   catch2_v3_test.sh SOURCE_DIR BUILD_DIR GENERATOR MAKE_PROGRAM CXX PREFIX_PATH INTEGRATION_TEST
set -eu
src=$1 build=$2 generator=$3 make_program=$4 cxx=$5 prefix_path=$6 integration_test=$7

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# -UCatch2_DIR: look again on every run (the prefix path may have changed since the last).
if ! CMAKE_PREFIX_PATH="$prefix_path${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}" \
    cmake -S "$src/examples/integration/catch2_v3" -B "$build" -G "$generator" \
      -DCMAKE_MAKE_PROGRAM="$make_program" -DCMAKE_CXX_COMPILER="$cxx" \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMAMA_SOURCE_DIR="$src" -UCatch2_DIR >"$log" 2>&1; then
  cat "$log"
  echo "catch2_v3_test: configuring the Catch2 v3 example failed" >&2
  exit 1
fi
if grep -q "mama: Catch2 3 not found" "$log"; then
  echo "Catch2 v3 not found (configure with -DCMAKE_PREFIX_PATH=<its install prefix>): skipped"
  exit 77
fi
grep "mama: Catch2 " "$log"
cmake --build "$build" -j2
exe=$build/mama_example_catch2_v3

# The binary is linked with Catch2 v3 (its --libidentify says so), not with a v2 found elsewhere.
identity=$("$exe" --libidentify)
echo "$identity"
if ! printf '%s\n' "$identity" | grep -Eq '^version:[[:space:]]+3\.'; then
  echo "catch2_v3_test: $exe does not report Catch2 v3" >&2
  exit 1
fi

MAMA_IT_CATCH2_V3=$exe "$integration_test" -w NoAssertions \
  "a test runner holds MAMA_MACHINE for its whole run and releases it after"
