#!/usr/bin/env bash
# Builds and runs every mama benchmark side by side in one run, then writes
#   bench/results/latest.json  Google Benchmark JSON (every repetition and the aggregates)
#   bench/results/latest.md    Markdown tables: medians, ratios, targets
#   bench/results/scaling.png  time against number of machines, log-log (gnuplot; .svg if the
#                              installed gnuplot has no pngcairo terminal)
#   bench/results/process.*    whole processes with hyperfine (`mama list`, `mama run`, the PHP
#                              tool's claim+release, /bin/true) and peak RSS: .json .md .dat .png
#
# usage: bench/run.sh [--short | --long] [--process-only | --no-process] [--build-dir DIR]
#                     [--state-dir DIR] [-- BENCHMARK_FLAGS...]
#   --short      (default) 3 repetitions of >= 0.05 s, 15 handoff iterations, 5-15 runs per process
#   --long       10 repetitions of >= 0.5 s, 101 handoff iterations, 20-100 runs per process
#   --process-only  only the whole-process benchmarks (--short --process-only: the quick check)
#   --no-process    only mama_bench
#   --mama BIN   time this mama (e.g. /usr/bin/mama) instead of building examples/cli
#   MAMA_BENCH_SIZES=10,100  lab sizes of the process benchmarks (default 10,100,1000,10000)
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
mama=""
bench=1
process=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --short) mode=short ;;
    --long) mode=long ;;
    --process-only) bench=0 ;;
    --no-process) process=0 ;;
    --mama) mama=$2; shift ;;
    --build-dir) build=$2; shift ;;
    --state-dir) state=$2; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ -n "$state" ]] || state="$build/bench-state"

case "$mode" in
  short) flags=(--benchmark_min_time=0.05 --benchmark_repetitions=3 --mama_handoff_iterations=15) ;;
  long) flags=(--benchmark_min_time=0.5 --benchmark_repetitions=10 --mama_handoff_iterations=101) ;;
esac

tools=(cmake gnuplot python3)
[[ $process == 1 ]] && tools+=(hyperfine)
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is required (Debian: apt-get install $tool)" >&2; exit 1; }
done
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

start=$(date +%s)
# The CLI is built as it ships, less its PostgreSQL half (mama-pg), which nothing here runs.
targets=()
[[ $bench == 1 ]] && targets+=(mama_bench)
[[ $process == 1 && -z "$mama" ]] && targets+=(mama_cli)
[[ -n "$mama" ]] || mama="$build/examples/cli/mama"
if [[ ${#targets[@]} -gt 0 ]]; then
  echo "== configuring and building ${targets[*]} in $build (Release)"
  cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DMAMA_BUILD_BENCH=ON \
    -DMAMA_BUILD_TESTS=OFF -DMAMA_BUILD_EXAMPLES=ON -DMAMA_CLI_WITHOUT_PG=ON >/dev/null
  cmake --build "$build" --target "${targets[@]}" -j2
fi
built=$(date +%s)

results="$here/results"
mkdir -p "$results" "$state"
echo "== running ($mode mode, state files under $state; load average: $(cut -d' ' -f1-3 /proc/loadavg))"
if [[ $bench == 1 ]]; then
  "$build/bench/mama_bench" --mama_dir="$state" "${flags[@]}" \
    --benchmark_out="$results/latest.json" --benchmark_out_format=json "${extra[@]}"
fi
if [[ $process == 1 ]]; then
  # The PHP tool's sources: $MAMA_PHP_TOOL_SRC, else ../shared/php-mama/src beside the repository
  # (its column is left out, and the table says why, when they or php are missing).
  php_src=${MAMA_PHP_TOOL_SRC:-$root/../shared/php-mama/src}
  opts=()
  [[ $mode == short ]] && opts+=(--short)
  [[ -n "${MAMA_BENCH_SIZES:-}" ]] && opts+=(--sizes "$MAMA_BENCH_SIZES")  # e.g. 10,100
  # `ps -p` as measured by mama_bench in this run, for the original method's list target.
  [[ $bench == 1 ]] && opts+=(--bench-json "$results/latest.json")
  pstate=$(mktemp -d "$state/mama-process.XXXXXX")
  python3 "$here/process/process_bench.py" --mama "$mama" --state-dir "$pstate" \
    --out "$results/process" --php-src "$php_src" "${opts[@]}"
  rm -rf "$pstate"
fi
ran=$(date +%s)

if echo 'set terminal' | gnuplot 2>&1 | grep -q pngcairo; then
  terminal='pngcairo size 1200,520 font ",10"'; ext=png
else
  terminal='svg size 1200,520'; ext=svg
fi

if [[ $bench == 1 ]]; then
  python3 "$here/report.py" "$results/latest.json" "$results/latest.md" "$results/scaling.dat" "$mode"
  gnuplot <<GNUPLOT
set terminal $terminal
set output "$results/scaling.$ext"
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
GNUPLOT
fi

if [[ $process == 1 ]]; then
  gnuplot <<GNUPLOT
set terminal $terminal
set output "$results/process.$ext"
set datafile missing "nan"
set logscale x
set format x "%.0s%c"
set xlabel "machines in mama.xml"
set grid
set key top left
set multiplot layout 1,2 title "mama as a process ($mode mode, hyperfine medians; $(date -u +%Y-%m-%d))"
set title "wall time per process"
set logscale y
set ylabel "wall time"
set ytics ("100 µs" 1e5, "1 ms" 1e6, "10 ms" 1e7, "100 ms" 1e8, "1 s" 1e9, "10 s" 1e10)
plot "$results/process.dat" using 1:4 with linespoints lw 2 title "PHP tool: claim + release (php)", \
     "" using 1:3 with linespoints lw 2 title "mama run m -- true (synced)", \
     "" using 1:2 with linespoints lw 2 title "mama list", \
     "" using 1:10 with linespoints lw 2 title "mama list, records mama wrote", \
     "" using 1:6 with lines dt 2 title "mama --version", \
     "" using 1:5 with lines dt 3 title "/bin/true"
set title "peak RSS"
set ylabel "KiB"
set ytics auto
plot "" using 1:9 with linespoints lw 2 title "PHP tool: claim + release", \
     "" using 1:8 with linespoints lw 2 title "mama run", \
     "" using 1:7 with linespoints lw 2 title "mama list"
unset multiplot
GNUPLOT
fi

echo "== results under $results"
echo "== build $((built - start)) s, benchmarks $((ran - built)) s, total $(( $(date +%s) - start )) s"
echo
if [[ $bench == 1 ]]; then cat "$results/latest.md"; fi
if [[ $process == 1 ]]; then cat "$results/process.md"; fi
