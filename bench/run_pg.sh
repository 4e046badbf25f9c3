#!/usr/bin/env bash
# The claim/release cycle on the PostgreSQL store beside the mama.xml store: builds mama_bench,
# starts a throw-away PostgreSQL server on 127.0.0.1 (tests/pg/start_server.sh, fsync on, its
# data on the same disk as the benchmark's mama.xml files), runs claim/pg_* and claim/xml_* for
# 10, 100 and 1000 machines, prints a Markdown table of medians and stops the server.
#
# usage: bench/run_pg.sh [--build-dir DIR] [--repetitions N] [--min-time SEC]
#   --build-dir    where to build (default: build-bench-pg in the source tree); the server and
#                  the mama.xml files go under DIR/pg-bench
#   --repetitions  repetitions of each benchmark (default 5); the table shows their median
#   --min-time     minimum time of each repetition in seconds (default 0.2)
# Writes DIR/pg-bench/results.json (Google Benchmark JSON) and DIR/pg-bench/results.md.
# To measure an existing server instead, run mama_bench yourself with MAMA_BENCH_PG set to its
# connection string and --benchmark_filter=claim/pg (it creates schemas mama_bench_<n> there).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build="$root/build-bench-pg"
reps=5
min_time=0.2
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build=$2; shift ;;
    --repetitions) reps=$2; shift ;;
    --min-time) min_time=$2; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_pg.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
echo "== configuring and building mama_bench in $build (Release)"
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DMAMA_BUILD_BENCH=ON \
  -DMAMA_BUILD_TESTS=OFF -DMAMA_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" --target mama_bench -j2

work="$build/pg-bench"
server="$work/server"
mkdir -p "$work/state"
stop() { sh "$root/tests/pg/start_server.sh" --stop "$server" || true; }
trap stop EXIT
echo "== starting a PostgreSQL server (fsync on) in $server"
conninfo=$(MAMA_PG_FSYNC=on sh "$root/tests/pg/start_server.sh" "$server" | tail -n 1)
echo "   $conninfo"

echo "== running (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
MAMA_BENCH_PG="$conninfo" "$build/bench/mama_bench" --mama_dir="$work/state" \
  --benchmark_filter='^claim/(pg_sync|pg_async|xml_sync|xml_nosync)/(10|100|1000)$' \
  --benchmark_repetitions="$reps" --benchmark_min_time="$min_time" \
  --benchmark_report_aggregates_only=true \
  --benchmark_out="$work/results.json" --benchmark_out_format=json >/dev/null 2>"$work/bench.log" \
  || { cat "$work/bench.log" >&2; exit 1; }

python3 - "$work/results.json" "$reps" "$min_time" >"$work/results.md" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}
med = {}
for b in data["benchmarks"]:
    if b.get("error_occurred"):
        print(f"{b['name']}: skipped: {b.get('error_message')}", file=sys.stderr)
        continue
    if b.get("aggregate_name") != "median":
        continue
    name, n = b["run_name"].rsplit("/", 1)
    med[(name, int(n))] = b["real_time"] * scale[b["time_unit"]]
cols = ["claim/xml_sync", "claim/pg_sync", "claim/xml_nosync", "claim/pg_async"]
print(f"claim + release cycle, median of {sys.argv[2]} repetitions of >= {sys.argv[3]} s, "
      f"wall time per cycle ({data['context'].get('num_cpus')} CPUs, "
      f"load {data['context'].get('load_avg')})\n")
print("| machines | " + " | ".join(cols) + " |")
print("|---:|" + "---:|" * len(cols))
for n in (10, 100, 1000):
    cells = [f"{med[(c, n)]:.0f} µs" if (c, n) in med else "–" for c in cols]
    print(f"| {n} | " + " | ".join(cells) + " |")
PY
cat "$work/results.md"
