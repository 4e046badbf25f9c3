// probe: deciding one holder's liveness.
//   mama ProcProbe::check(pid, start)  — /proc/PID/stat, zombie and PID-reuse check
//   kill(pid, 0)                       — the floor: one system call, no reuse detection
//   ps -p PID                          — the PHP tool's method (spawned, waited, output dropped)
//   /bin/sh -c "ps -p PID"             — what PHP's exec() really runs (popen goes through sh)
// The probed process is a live child that sleeps, so it is "another process", not ourselves.
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_support.hpp"

namespace {

// A child process that sleeps until killed; killed and reaped at exit.
struct Sleeper {
  pid_t pid = -1;
  std::uint64_t start = 0;
  Sleeper() {
    pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      for (;;) ::pause();
    }
    // Wait until /proc shows it with its start time.
    for (int i = 0; i < 1000; ++i) {
      if (auto st = mama::detail::read_proc_stat(pid)) {
        start = st->start;
        break;
      }
      ::usleep(1000);
    }
  }
  ~Sleeper() {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
};

Sleeper& sleeper() {
  static Sleeper s;
  return s;
}

void BM_probe_mama_proc(benchmark::State& state) {
  const mama::ProcProbe probe;
  const int pid = sleeper().pid;
  const std::optional<std::uint64_t> start = sleeper().start;
  if (probe.check(pid, start) != mama::Liveness::alive ||
      probe.check(pid, *start + 1) != mama::Liveness::reused) {
    state.SkipWithError("ProcProbe does not see the live child or its start time");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(probe.check(pid, start));
}
BENCHMARK(BM_probe_mama_proc)->Name("probe/mama_proc_reuse_check");

void BM_probe_mama_gone(benchmark::State& state) {
  const mama::ProcProbe probe;
  const int pid = mama_bench::dead_pids(1)[0];
  if (probe.check(pid, 4242) != mama::Liveness::gone) {
    state.SkipWithError("ProcProbe does not see the dead PID as gone");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(probe.check(pid, 4242));
}
BENCHMARK(BM_probe_mama_gone)->Name("probe/mama_proc_dead_pid");

void BM_probe_kill0(benchmark::State& state) {
  const int pid = sleeper().pid;
  for (auto _ : state) benchmark::DoNotOptimize(::kill(pid, 0));
}
BENCHMARK(BM_probe_kill0)->Name("probe/kill0_floor");

void BM_probe_ps(benchmark::State& state) {
  const int pid = sleeper().pid;
  if (!mama_bench::ps_says_alive(pid)) {
    state.SkipWithError("ps -p does not see the live child (is procps installed?)");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(mama_bench::ps_says_alive(pid));
}
BENCHMARK(BM_probe_ps)->Name("probe/original_ps_spawn")->Unit(benchmark::kMicrosecond);

void BM_probe_ps_shell(benchmark::State& state) {
  const std::string cmd = "ps -p " + std::to_string(sleeper().pid);
  for (auto _ : state)
    benchmark::DoNotOptimize(mama_bench::spawn_and_wait({"/bin/sh", "-c", cmd.c_str()}));
}
BENCHMARK(BM_probe_ps_shell)->Name("probe/original_ps_via_sh")->Unit(benchmark::kMicrosecond);

}  // namespace
