// claim/release: one StaleJobGuard constructed and destroyed on an idle machine in the middle
// of a lab of 10 .. 10,000 machines (the rest a third dead, a third running, a third idle).
//
//   claim/memory      MemoryStateStore, ManualClock, FakeProbe: the guard's own logic
//   claim/xml_nosync  mama.xml on disk, SystemClock, ProcProbe, XmlStoreOptions::sync = false
//   claim/xml_sync    the same with sync = true (the default: fsync journal, file, directory)
//   claim/xml_nosync_tmpfs  no sync, the file on tmpfs: the software's share without the disk
//
// A cycle on mama.xml is two transactions, each: open + flock, journal check, read, check (a
// memcmp against the bytes the store saved last), then (claim) the machine's lock file, and a
// save: splice one machine, journal the tail after the first changed byte, rewrite it, unlink.
// Floors beside it (same run): floor/lock_read/N (sweep_bench.cpp) and floor/six_fdatasync.
#include <benchmark/benchmark.h>

#include "bench_support.hpp"

namespace {

using mama_bench::style;

// An idle machine near the middle.
std::string target(std::size_t n) {
  std::size_t i = n / 2;
  while (mama_bench::role_of(i) != mama_bench::role::idle) ++i;
  return mama_bench::machine_name(i);
}

mama::GuardOptions options() {
  mama::GuardOptions o;
  o.job = "benchmark claim";
  o.on_event = mama_bench::ignore_event;
  return o;
}

void BM_claim_memory(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto store = mama_bench::memory_lab(n, style::mama);
  const std::string machine = target(n);
  mama::ManualClock clock;
  mama::FakeProbe probe;
  const auto opts = options();
  for (auto _ : state) {
    mama::StaleJobGuard<mama::ManualClock, mama::FakeProbe, mama::MemoryStateStore> guard(
        store, machine, opts, clock, probe);
    benchmark::DoNotOptimize(guard.active());
  }
  if (!store.record(machine).idle()) state.SkipWithError("the machine was not released");
  state.counters["machines"] = static_cast<double>(n);
}
BENCHMARK(BM_claim_memory)
    ->Name("claim/memory")
    ->RangeMultiplier(10)
    ->Range(10, 10000)
    ->Unit(benchmark::kMicrosecond);

void BM_claim_xml(benchmark::State& state, bool sync, bool on_tmpfs) {
  const auto n = static_cast<std::size_t>(state.range(0));
  if (on_tmpfs && mama_bench::tmpfs_dir().empty()) {
    state.SkipWithError("no tmpfs directory (--mama_tmpfs_dir)");
    return;
  }
  // Each variant its own file, so the sync runs do not inherit the page cache state of the
  // others more than a lab's file would.
  const auto path =
      mama_bench::lab_file(sync ? "claim-sync" : "claim-nosync", n, style::mama, on_tmpfs);
  mama::XmlStateStore store(path, mama_bench::xml_options(sync));
  const std::string machine = target(n);
  const auto opts = options();
  {
    mama::JobGuard first(store, machine, opts);  // create the lock file and runtime dir once
    if (first.store().begin().find(machine)->token != first.token()) {
      state.SkipWithError("the claim is not in mama.xml");
      return;
    }
  }
  for (auto _ : state) {
    mama::JobGuard guard(store, machine, opts);
    benchmark::DoNotOptimize(guard.active());
  }
  if (!mama::XmlStateStore(path).begin().find(machine)->idle())
    state.SkipWithError("the machine was not released");
  state.counters["machines"] = static_cast<double>(n);
  state.counters["file_KiB"] = static_cast<double>(std::filesystem::file_size(path)) / 1024.0;
}
BENCHMARK_CAPTURE(BM_claim_xml, nosync, false, false)
    ->Name("claim/xml_nosync")
    ->RangeMultiplier(10)
    ->Range(10, 10000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_claim_xml, sync, true, false)
    ->Name("claim/xml_sync")
    ->RangeMultiplier(10)
    ->Range(10, 10000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_claim_xml, nosync_tmpfs, false, true)
    ->Name("claim/xml_nosync_tmpfs")
    ->RangeMultiplier(10)
    ->Range(10, 10000)
    ->Unit(benchmark::kMicrosecond);

}  // namespace

namespace {

// The disk's floor for durable saves: `writes` 4 KiB in-place writes, each made durable with
// fdatasync, in one file on the same file system as claim/xml_sync.
void run_fdatasync_floor(benchmark::State& state, const char* file, int writes) {
  const auto path = mama_bench::scratch_dir() / file;
  std::filesystem::create_directories(mama_bench::scratch_dir());
  mama::detail::unique_fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) {
    state.SkipWithError("cannot create the floor file");
    return;
  }
  const std::string block(4096, 'x');
  for (auto _ : state) {
    for (int i = 0; i < writes; ++i) {
      if (!mama::detail::pwrite_all(fd.get(), block, 4096 * i) || ::fdatasync(fd.get()) != 0) {
        state.SkipWithError("write or fdatasync failed");
        return;
      }
    }
  }
}

// One flush. A synced claim/release cycle needs six (per save: the journal, its directory
// entry, mama.xml), so 6 × this is the least a synced cycle can cost on this disk.
void BM_floor_fdatasync(benchmark::State& state) {
  run_fdatasync_floor(state, "floor-fdatasync", 1);
}
BENCHMARK(BM_floor_fdatasync)->Name("floor/fdatasync_4KiB")->Unit(benchmark::kMicrosecond);

// The six flushes of a synced cycle measured together. No synced claim + release can beat it.
void BM_floor_six_fdatasync(benchmark::State& state) {
  run_fdatasync_floor(state, "floor-six-fdatasync", 6);
}
BENCHMARK(BM_floor_six_fdatasync)->Name("floor/six_fdatasync")->Unit(benchmark::kMicrosecond);

}  // namespace
