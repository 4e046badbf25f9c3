// sweep: assessing every machine of a lab, as `mama list` does — one transaction (lock, read,
// parse), machines(), then mama::assess for each with the /proc probe, asking the machine's
// hold for records that carry a token. Labs of 10 .. 10,000 machines; a third dead holders, a
// third running (this process, whose holds are really held), a third idle.
//
//   sweep/xml            records as this library writes them (token: the hold decides)
//   sweep/xml_php        records as the PHP tool writes them (no token: ProcProbe per holder)
//   sweep/xml_parse_only lock + read + parse + machines(), no assessing: the file's share when
//                        it is checked whole (no check record: the first process after a
//                        write by the PHP tool)
//   sweep/xml_begin_only lock + read + parse (begin() alone, no check record): without
//                        building machines()
//   sweep/xml_fields     lock + read + every machine's fields (for_each_machine), one store kept
//                        across iterations, as a long-lived process has it: the file is checked
//                        once, then found unchanged by a memcmp
//   sweep/xml_fields_cold the same with a fresh store each time (as each `mama list` process
//                        after another mama process): the check record describes the bytes
//   sweep/xml_fields_unrecorded the same without the check record (as the first `mama list`
//                        after a write by the PHP tool): the whole file is parsed to check it
//   floor/lock_read      open + flock + fstat + read the whole file + close: what any reader of
//                        the file pays, the floor of a sweep and of a transaction
//   sweep/memory         the same records on MemoryStateStore: the assess loop without the file
//   sweep/memory_php     PHP-style records on MemoryStateStore: assess + ProcProbe only
//   sweep/original_ps    the PHP tool's check, `ps -p PID` spawned per holder (10 and 100 only;
//                        report.py extrapolates: holders x the measured ps cost)
#include <benchmark/benchmark.h>
#include <sys/file.h>

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

// A store that checks the whole file at its first begin(), as after a write by the PHP tool.
mama::XmlStoreOptions unrecorded() {
  mama::XmlStoreOptions o;
  o.check_record = false;
  return o;
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
    mama::XmlStateStore store(path, unrecorded());
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
    mama::XmlStateStore store(path, unrecorded());
    benchmark::DoNotOptimize(store.begin());
  }
  set_counters(state, n);
}
BENCHMARK(BM_sweep_begin_only)
    ->Name("sweep/xml_begin_only")
    ->RangeMultiplier(10)
    ->Range(10, 10000)
    ->Unit(benchmark::kMicrosecond);

// Reads every machine's fields the way `mama list` shows them, without assessing.
std::size_t read_fields(const mama::XmlStateStore::transaction& tx) {
  std::size_t bytes = 0;
  tx.for_each_machine([&](const mama::MachineInfo& m) {
    bytes += m.name.size() + m.job.job.size() + m.field("arch").size();
  });
  return bytes;
}

enum class fields_store { kept, fresh, fresh_unrecorded };

void BM_sweep_fields(benchmark::State& state, fields_store which) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto path = mama_bench::lab_file("sweep-mama", n, style::mama);
  mama::XmlStateStore kept(path);
  std::size_t machines = 0;
  kept.begin().for_each_machine([&](const mama::MachineInfo&) { ++machines; });
  if (machines != n) {
    state.SkipWithError("for_each_machine did not see every machine");
    return;
  }
  for (auto _ : state) {
    if (which != fields_store::kept) {
      mama::XmlStateStore store(
          path, which == fields_store::fresh ? mama::XmlStoreOptions{} : unrecorded());
      benchmark::DoNotOptimize(read_fields(store.begin()));
    } else {
      benchmark::DoNotOptimize(read_fields(kept.begin()));
    }
  }
  set_counters(state, n);
}
BENCHMARK_CAPTURE(BM_sweep_fields, warm, fields_store::kept)
    ->Name("sweep/xml_fields")
    ->RangeMultiplier(10)
    ->Range(10, 10000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_sweep_fields, cold, fields_store::fresh)
    ->Name("sweep/xml_fields_cold")
    ->RangeMultiplier(10)
    ->Range(10, 10000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_sweep_fields, unrecorded, fields_store::fresh_unrecorded)
    ->Name("sweep/xml_fields_unrecorded")
    ->RangeMultiplier(10)
    ->Range(10, 10000)
    ->Unit(benchmark::kMicrosecond);

// The floor of any transaction on the file: open, flock, fstat, read it whole into a fresh
// string (as begin() does), close.
void BM_floor_lock_read(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto path = mama_bench::lab_file("sweep-mama", n, style::mama);
  for (auto _ : state) {
    mama::detail::unique_fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd || ::flock(fd.get(), LOCK_EX) != 0) {
      state.SkipWithError("cannot open and lock the lab file");
      break;
    }
    std::string content;
    if (!mama::detail::pread_all(fd.get(), content, std::size_t(64) << 20)) {
      state.SkipWithError("cannot read the lab file");
      break;
    }
    benchmark::DoNotOptimize(content.data());
  }
  set_counters(state, n);
}
BENCHMARK(BM_floor_lock_read)
    ->Name("floor/lock_read")
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
