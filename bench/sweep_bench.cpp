// sweep: assessing every machine of a lab, as `mama list` does — one transaction (lock, read,
// parse), machines(), then mama::assess for each with the /proc probe, asking the machine's
// hold for records that carry a token. Labs of 10 .. 10,000 machines; a third dead holders, a
// third running (this process, whose holds are really held), a third idle.
//
//   sweep/xml            records as this library writes them (token: the hold decides)
//   sweep/xml_php        records as the PHP tool writes them (no token: ProcProbe per holder)
//   sweep/xml_parse_only lock + read + parse + machines(), no assessing: the file's share
//   sweep/xml_begin_only lock + read + parse (begin() alone): without building machines()
//   sweep/memory         the same records on MemoryStateStore: the assess loop without the file
//   sweep/memory_php     PHP-style records on MemoryStateStore: assess + ProcProbe only
//   sweep/original_ps    the PHP tool's check, `ps -p PID` spawned per holder (10 and 100 only;
//                        report.py extrapolates: holders x the measured ps cost)
#include <benchmark/benchmark.h>

#include "bench_support.hpp"

namespace {

using mama_bench::style;

mama::Observation observation() {
  const mama::ProcProbe probe;
  return {probe.host_name(), probe.boot_id(), std::chrono::system_clock::now(),
          std::chrono::seconds(300), mama::HoldState::none};
}

template <class Store>
bool check_counts(benchmark::State& state, Store& store, std::size_t n) {
  mama::Observation here = observation();
  const auto got = mama_bench::sweep(store, mama::ProcProbe{}, here);
  if (got != mama_bench::expected_counts(n)) {
    state.SkipWithError(
        "the sweep's verdicts do not match the lab (dead: stale, running: running)");
    return false;
  }
  return true;
}

void set_counters(benchmark::State& state, std::size_t n) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.counters["machines"] = static_cast<double>(n);
}

void BM_sweep_xml(benchmark::State& state, style s) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto path = mama_bench::lab_file(s == style::mama ? "sweep-mama" : "sweep-php", n, s);
  // The running third is held, as live claims hold their lock files.
  mama::XmlStateStore holder(path, mama_bench::xml_options(false));
  std::vector<mama::XmlStateStore::hold> holds;
  if (s == style::mama) {
    auto tx = holder.begin();
    for (std::size_t i = 0; i < n; ++i)
      if (mama_bench::role_of(i) == mama_bench::role::running)
        holds.push_back(*tx.try_hold(mama_bench::machine_name(i)));
  }
  {
    mama::XmlStateStore store(path);
    if (!check_counts(state, store, n)) return;
  }
  const mama::ProcProbe probe;
  mama::Observation here = observation();
  for (auto _ : state) {
    mama::XmlStateStore store(path);  // a fresh store, as each `mama list` is a fresh process
    here.now = std::chrono::system_clock::now();
    benchmark::DoNotOptimize(mama_bench::sweep(store, probe, here));
  }
  set_counters(state, n);
}
BENCHMARK_CAPTURE(BM_sweep_xml, mama, style::mama)
    ->Name("sweep/xml")
    ->RangeMultiplier(10)
    ->Range(10, 10000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_sweep_xml, php, style::php)
    ->Name("sweep/xml_php")
    ->RangeMultiplier(10)
    ->Range(10, 10000)
    ->Unit(benchmark::kMicrosecond);

void BM_sweep_parse_only(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto path = mama_bench::lab_file("sweep-mama", n, style::mama);
  for (auto _ : state) {
    mama::XmlStateStore store(path);
    auto tx = store.begin();
    benchmark::DoNotOptimize(tx.machines());
  }
  set_counters(state, n);
}
BENCHMARK(BM_sweep_parse_only)
    ->Name("sweep/xml_parse_only")
    ->RangeMultiplier(10)
    ->Range(10, 10000)
    ->Unit(benchmark::kMicrosecond);

void BM_sweep_begin_only(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto path = mama_bench::lab_file("sweep-mama", n, style::mama);
  for (auto _ : state) {
    mama::XmlStateStore store(path);
    benchmark::DoNotOptimize(store.begin());
  }
  set_counters(state, n);
}
BENCHMARK(BM_sweep_begin_only)
    ->Name("sweep/xml_begin_only")
    ->RangeMultiplier(10)
    ->Range(10, 10000)
    ->Unit(benchmark::kMicrosecond);

void BM_sweep_memory(benchmark::State& state, style s) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto store = mama_bench::memory_lab(n, s);
  std::vector<mama::MemoryStateStore::hold> holds;
  if (s == style::mama)
    for (std::size_t i = 0; i < n; ++i)
      if (mama_bench::role_of(i) == mama_bench::role::running)
        holds.push_back(*store.hold_for_test(mama_bench::machine_name(i)));
  if (!check_counts(state, store, n)) return;
  const mama::ProcProbe probe;
  mama::Observation here = observation();
  for (auto _ : state) {
    here.now = std::chrono::system_clock::now();
    benchmark::DoNotOptimize(mama_bench::sweep(store, probe, here));
  }
  set_counters(state, n);
}
BENCHMARK_CAPTURE(BM_sweep_memory, mama, style::mama)
    ->Name("sweep/memory")
    ->RangeMultiplier(10)
    ->Range(10, 10000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_sweep_memory, php, style::php)
    ->Name("sweep/memory_php")
    ->RangeMultiplier(10)
    ->Range(10, 10000)
    ->Unit(benchmark::kMicrosecond);

// The PHP tool's way to judge each holder: one `ps -p PID` per machine with a job. Its own
// parse (simplexml) cannot run here, so this is a lower bound of the original's sweep.
void BM_sweep_original_ps(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<int> pids;
  for (std::size_t i = 0; i < n; ++i) {
    const auto r = mama_bench::job_of(i, style::php);
    if (!r.idle()) pids.push_back(std::atoi(r.pid.c_str()));
  }
  for (auto _ : state) {
    std::size_t alive = 0;
    for (int pid : pids) alive += mama_bench::ps_says_alive(pid);
    benchmark::DoNotOptimize(alive);
  }
  set_counters(state, n);
  state.counters["holders"] = static_cast<double>(pids.size());
}
BENCHMARK(BM_sweep_original_ps)
    ->Name("sweep/original_ps")
    ->Arg(10)
    ->Arg(100)
    ->Unit(benchmark::kMillisecond);

}  // namespace
