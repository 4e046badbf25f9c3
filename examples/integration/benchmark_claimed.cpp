// benchmark_claimed — Google Benchmark benchmarks that run while holding a lab machine.
//   MAMA_MACHINE=test-machine MAMA_STATE=/path/to/mama.xml ./benchmark_claimed
// The lines that do it: `#include <mama/runners/benchmark.hpp>` and MAMA_BENCHMARK_MAIN().
#include <unistd.h>

#include <mama/runners/benchmark.hpp>
#include <string>

// A benchmark of your own: here, judging a running job's record (pure, no I/O).
static void BM_assess_running_record(benchmark::State& state) {
  mama::JobRecord record;
  record.job = "nightly regression";
  record.pid = std::to_string(::getpid());
  record.timestamp = "1763047845";
  mama::Observation here;
  here.now = std::chrono::system_clock::now();
  for (auto _ : state) {
    auto verdict = mama::assess(record, here, [](int, auto) { return mama::Liveness::alive; });
    benchmark::DoNotOptimize(verdict);
  }
}
BENCHMARK(BM_assess_running_record);

// Reads the claimed machine's record under the state file's lock: fails (error_occurred) when
// this process does not hold it.
static void BM_locked_read_of_claim(benchmark::State& state) {
  const auto& claim = mama::process_run_claim();
  if (!claim.active()) {
    state.SkipWithError("MAMA_MACHINE is not set: no claimed machine to read");
    return;
  }
  mama::XmlStateStore store(claim.settings()->state);
  const auto& machine = claim.settings()->machine;
  const auto first = store.begin().find(machine);
  if (!first || first->pid != std::to_string(::getpid()) || first->job != claim.settings()->job) {
    state.SkipWithError("the state file does not show this process holding the machine");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(store.begin().find(machine));
}
BENCHMARK(BM_locked_read_of_claim);

MAMA_BENCHMARK_MAIN();
