// handoff and crash recovery, across processes, on a real mama.xml with real guards.
//
// Each iteration forks a holder, which claims the machine (mama::JobGuard), and then a waiter,
// which blocks in the JobGuard constructor on the same machine. Once the waiter is waiting
// (its second `waiting` event: it has subscribed to wake-ups and is about to sleep):
//   handoff/release  the holder takes a CLOCK_MONOTONIC timestamp right before its guard's
//                    destructor runs (the release: lock, clear, save, drop the hold);
//   handoff/sigkill  the parent takes the timestamp right before kill(holder, SIGKILL).
// The waiter takes a timestamp right after its constructor returns. The difference is the
// iteration's (manual) time; the counters give the median, p90 and max over the iterations.
// Timestamps travel through a shared anonymous mapping; the steps are sequenced with pipes.
// Variants: sync off / on (XmlStoreOptions::sync), and the file on tmpfs (no disk at all).
#include <benchmark/benchmark.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include <algorithm>
#include <atomic>

#include "bench_support.hpp"

namespace {

struct Stamps {
  std::atomic<std::int64_t> released{0};
  std::atomic<std::int64_t> claimed{0};
};

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) == 0) r = fds[0], w = fds[1];
  }
  ~Pipe() {
    if (r >= 0) ::close(r);
    if (w >= 0) ::close(w);
  }
  void send(char c) const { (void)!::write(w, &c, 1); }
  // Waits up to `ms` for `expect`; false on timeout, EOF or another byte.
  bool expect(char want, int ms) const {
    pollfd p{r, POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0) return false;
    char c = 0;
    return ::read(r, &c, 1) == 1 && c == want;
  }
};

enum class ending { release, sigkill };

mama::GuardOptions options(const char* job) {
  mama::GuardOptions o;
  o.job = job;
  o.on_event = mama_bench::ignore_event;
  return o;
}

void reap(pid_t pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGKILL);
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

void BM_handoff(benchmark::State& state, ending how, bool sync, bool on_tmpfs) {
  if (on_tmpfs && mama_bench::tmpfs_dir().empty()) {
    state.SkipWithError("no tmpfs directory (--mama_tmpfs_dir)");
    return;
  }
  const auto path = mama_bench::lab_file(sync ? "handoff-sync" : "handoff-nosync", 10,
                                         mama_bench::style::mama, on_tmpfs);
  const std::string machine = mama_bench::machine_name(2);  // idle
  void* mem =
      ::mmap(nullptr, sizeof(Stamps), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    state.SkipWithError("mmap failed");
    return;
  }
  auto* stamps = new (mem) Stamps;
  std::vector<double> samples;

  for (auto _ : state) {
    Pipe to_holder, from_holder, from_waiter;
    stamps->released = 0;
    stamps->claimed = 0;

    const pid_t holder = ::fork();
    if (holder == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      try {
        mama::XmlStateStore store(path, mama_bench::xml_options(sync));
        std::optional<mama::JobGuard> guard(std::in_place, store, machine,
                                            options("benchmark holder"));
        from_holder.send('h');
        to_holder.expect('g', 60'000);
        stamps->released = mama_bench::mono_ns();
        guard.reset();
      } catch (...) {
        ::_exit(1);
      }
      ::_exit(0);
    }
    if (!from_holder.expect('h', 10'000)) {
      reap(holder);
      state.SkipWithError("the holder did not claim the machine");
      break;
    }

    const pid_t waiter = ::fork();
    if (waiter == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      try {
        int waits = 0;
        auto opts = options("benchmark waiter");
        opts.on_event = [&](const mama::Event& e) {
          if (e.kind == mama::EventKind::waiting && ++waits == 2) from_waiter.send('w');
        };
        mama::XmlStateStore store(path, mama_bench::xml_options(sync));
        mama::JobGuard guard(store, machine, opts);
        stamps->claimed = mama_bench::mono_ns();
        from_waiter.send('c');
      } catch (...) {
        ::_exit(1);
      }
      ::_exit(0);
    }

    bool ok = from_waiter.expect('w', 10'000);
    if (ok) {
      if (how == ending::release) {
        to_holder.send('g');
      } else {
        stamps->released = mama_bench::mono_ns();
        ::kill(holder, SIGKILL);
      }
      ok = from_waiter.expect('c', 10'000);
    }
    int status = 0;
    while (::waitpid(waiter, &status, 0) < 0 && errno == EINTR) {
    }
    if (how == ending::release) {
      while (::waitpid(holder, nullptr, 0) < 0 && errno == EINTR) {
      }
    } else {
      reap(holder);
    }
    if (!ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || stamps->released == 0) {
      state.SkipWithError("the waiter did not get the machine");
      break;
    }
    const double seconds = static_cast<double>(stamps->claimed - stamps->released) / 1e9;
    state.SetIterationTime(seconds);
    samples.push_back(seconds);
  }
  ::munmap(mem, sizeof(Stamps));
  if (samples.empty()) return;
  std::sort(samples.begin(), samples.end());
  const auto at = [&](double q) {
    return samples[static_cast<std::size_t>(q * static_cast<double>(samples.size() - 1) + 0.5)];
  };
  state.counters["median_us"] = at(0.5) * 1e6;
  state.counters["p90_us"] = at(0.9) * 1e6;
  state.counters["min_us"] = samples.front() * 1e6;
  state.counters["max_us"] = samples.back() * 1e6;
  state.counters["samples"] = static_cast<double>(samples.size());
}

}  // namespace

namespace mama_bench {

/// Registers the handoff benchmarks with a fixed number of iterations (from
/// --mama_handoff_iterations).
void register_handoff(int iterations) {
  struct Variant {
    const char* suffix;
    bool sync, tmpfs;
  };
  for (const Variant v : {Variant{"_nosync", false, false}, Variant{"_sync", true, false},
                          Variant{"_nosync_tmpfs", false, true}}) {
    benchmark::RegisterBenchmark((std::string("handoff/release") + v.suffix).c_str(), BM_handoff,
                                 ending::release, v.sync, v.tmpfs)
        ->UseManualTime()
        ->Iterations(iterations)
        ->Repetitions(1)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark((std::string("handoff/sigkill") + v.suffix).c_str(), BM_handoff,
                                 ending::sigkill, v.sync, v.tmpfs)
        ->UseManualTime()
        ->Iterations(iterations)
        ->Repetitions(1)
        ->Unit(benchmark::kMicrosecond);
  }
}

}  // namespace mama_bench
