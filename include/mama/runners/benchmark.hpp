// mama/runners/benchmark.hpp — run Google Benchmark benchmarks while holding a lab machine.
//
//   #include <mama/runners/benchmark.hpp>
//   BENCHMARK(BM_something);
//   MAMA_BENCHMARK_MAIN();                       // instead of BENCHMARK_MAIN()
// or, in your own main():
//   return mama::run_benchmarks_claimed(argc, argv);
//
// When MAMA_MACHINE is set, the machine is claimed in the state file ($MAMA_STATE, else
// $MAMA_PATH/mama.xml) after the command line is parsed and before the first benchmark, with
// the job text $MAMA_JOB (default: the program's name), and released after the last. Without
// MAMA_MACHINE the benchmarks simply run. A failed claim runs no benchmark: the message (naming
// the machine and the file) goes to stderr and the exit status is 1. See mama/runners/harness.hpp.
#pragma once

#include <benchmark/benchmark.h>

#include <exception>
#include <iostream>

#include "mama/runners/harness.hpp"

namespace mama {

/// Initializes Google Benchmark with the command line, claims the machine named by
/// MAMA_MACHINE (if set), runs the selected benchmarks, releases. Returns the exit status:
/// 0 on success, 1 for an unknown argument, a failed claim or a failed release.
inline int run_benchmarks_claimed(int argc, char** argv) {
  ::benchmark::Initialize(&argc, argv);
  if (::benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RunClaim& claim = process_run_claim();
  bool owner = false;
  try {
    owner = claim.acquire();
  } catch (const std::exception& e) {
    std::cerr << e.what() << '\n';
    ::benchmark::Shutdown();
    return 1;
  }
  ::benchmark::RunSpecifiedBenchmarks();
  ::benchmark::Shutdown();
  if (!owner) return 0;
  try {
    claim.release();
  } catch (const std::exception& e) {
    std::cerr << "mama: releasing the machine after the benchmarks failed: " << e.what() << '\n';
    return 1;
  }
  return 0;
}

}  // namespace mama

/// A main() that runs the benchmarks under a claim (see mama::run_benchmarks_claimed).
#define MAMA_BENCHMARK_MAIN()                                                            \
  int main(int argc, char** argv) { return ::mama::run_benchmarks_claimed(argc, argv); } \
  static_assert(true, "")
