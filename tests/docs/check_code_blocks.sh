#!/usr/bin/env bash
# tests/docs/check_code_blocks.sh CXX SRC_DIR [FLAGS...] — compiles (syntax only) every ```cpp
# block of the project's Markdown docs that is a whole program or header use (it has an
# #include), so the docs' examples cannot drift from the headers. Prints one line a block and
# "N passed, N failed".
set -u
cxx=$1 src=$2
shift 2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
for doc in "$src"/README.md "$src"/*/README.md "$src"/*/*/README.md; do
  [ -f "$doc" ] || continue
  rm -f "$work"/block-*.cpp
  # Each ```cpp ... ``` block to block-<first line>.cpp
  awk -v dir="$work" '
    /^```cpp[[:space:]]*$/ { inb = 1; start = NR + 1; file = sprintf("%s/block-%06d.cpp", dir, start); next }
    inb && /^```[[:space:]]*$/ { inb = 0; close(file); next }
    inb { print > file }
  ' "$doc"
  for block in "$work"/block-*.cpp; do
    [ -f "$block" ] || continue
    grep -q '#include' "$block" || continue  # a fragment inside prose, not a program
    line=$(basename "$block" .cpp)
    line=$((10#${line#block-}))
    where="${doc#"$src"/}:$line"
    if out=$("$cxx" -std=c++20 -fsyntax-only -I"$src/include" "$@" -x c++ "$block" 2>&1); then
      echo "ok   $where"
      passed=$((passed + 1))
    else
      echo "FAIL $where"
      echo "$out" | head -20
      failed=$((failed + 1))
    fi
  done
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
