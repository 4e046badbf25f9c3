#!/usr/bin/env bash
# Builds and runs every mama benchmark side by side in one run, then writes
#   bench/results/latest.json  Google Benchmark JSON (every repetition and the aggregates)
#   bench/results/latest.md    Markdown tables: medians, ratios, targets
#   bench/results/scaling.png  time against number of machines, log-log (gnuplot; .svg if the
#                              installed gnuplot has no pngcairo terminal)
#
# usage: bench/run.sh [--short | --long] [--build-dir DIR] [--state-dir DIR] [-- BENCHMARK_FLAGS...]
#   --short      (default) 3 repetitions of >= 0.05 s, 15 handoff iterations: well under 2 minutes
#   --long       10 repetitions of >= 0.5 s, 101 handoff iterations: several minutes
#   --build-dir  where to build (default: build-bench in the source tree)
#   --state-dir  where the benchmark's mama.xml files go (default: DIR/bench-state, i.e. the disk
#                the build is on; point it at the lab's real file system to measure that)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
mode=short
build="$root/build-bench"
state=""
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --short) mode=short ;;
    --long) mode=long ;;
    --build-dir) build=$2; shift ;;
    --state-dir) state=$2; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ -n "$state" ]] || state="$build/bench-state"

case "$mode" in
  short) flags=(--benchmark_min_time=0.05 --benchmark_repetitions=3 --mama_handoff_iterations=15) ;;
  long) flags=(--benchmark_min_time=0.5 --benchmark_repetitions=10 --mama_handoff_iterations=101) ;;
esac

for tool in cmake gnuplot python3; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is required (Debian: apt-get install $tool)" >&2; exit 1; }
done
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

start=$(date +%s)
echo "== configuring and building mama_bench in $build (Release)"
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DMAMA_BUILD_BENCH=ON \
  -DMAMA_BUILD_TESTS=OFF -DMAMA_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" --target mama_bench -j2
built=$(date +%s)

results="$here/results"
mkdir -p "$results" "$state"
echo "== running ($mode mode, state files under $state; load average: $(cut -d' ' -f1-3 /proc/loadavg))"
"$build/bench/mama_bench" --mama_dir="$state" "${flags[@]}" \
  --benchmark_out="$results/latest.json" --benchmark_out_format=json "${extra[@]}"
ran=$(date +%s)

python3 "$here/report.py" "$results/latest.json" "$results/latest.md" "$results/scaling.dat" "$mode"

if echo 'set terminal' | gnuplot 2>&1 | grep -q pngcairo; then
  terminal='pngcairo size 1200,520 font ",10"'; plot="$results/scaling.png"
else
  terminal='svg size 1200,520'; plot="$results/scaling.svg"
fi
gnuplot <<EOF
set terminal $terminal
set output "$plot"
set datafile missing "nan"
set logscale xy
set format x "%.0s%c"
set xlabel "machines in mama.xml"
set ylabel "wall time per operation"
set ytics ("100 ns" 100, "1 µs" 1e3, "10 µs" 1e4, "100 µs" 1e5, "1 ms" 1e6, "10 ms" 1e7, "100 ms" 1e8, "1 s" 1e9, "10 s" 1e10, "100 s" 1e11)
set grid
set key top left
set multiplot layout 1,2 title "mama benchmarks ($mode mode, medians; $(date -u +%Y-%m-%d))"
set title "sweep: assess every machine (mama list)"
plot "$results/scaling.dat" using 1:5 with linespoints lw 2 title "original: ps -p per holder (est. from measured ps)", \
     "" using 1:2 with linespoints lw 2 title "mama, mama.xml (hold decides)", \
     "" using 1:3 with linespoints lw 2 title "mama, mama.xml, PHP records (/proc probe)", \
     "" using 1:4 with linespoints lw 2 title "mama, memory store, PHP records"
set title "claim + release cycle"
plot "" using 1:8 with linespoints lw 2 title "mama.xml, sync", \
     "" using 1:7 with linespoints lw 2 title "mama.xml, no sync", \
     "" using 1:9 with linespoints lw 2 title "mama.xml on tmpfs, no sync", \
     "" using 1:6 with linespoints lw 2 title "memory store"
unset multiplot
EOF

echo "== wrote $results/latest.json, $results/latest.md, $plot"
echo "== build $((built - start)) s, benchmarks $((ran - built)) s, total $(( $(date +%s) - start )) s"
echo
cat "$results/latest.md"
