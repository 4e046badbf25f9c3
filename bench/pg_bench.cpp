// claim/release on the PostgreSQL store, beside claim/xml_* (claim_bench.cpp): one StaleJobGuard
// constructed and destroyed on an idle machine in the middle of a lab of 10 .. 1000 machines (the
// same generated lab, imported into a schema of its own with import_xml).
//
//   claim/pg_sync   every commit waits for the server's WAL flush (synchronous_commit=on, the
//                   server's default); durable like claim/xml_sync when the server runs fsync=on
//   claim/pg_async  synchronous_commit=off for the benchmark's sessions: the commit does not
//                   wait for the flush (comparable with claim/xml_nosync)
//
// A cycle is two transactions (claim: row lock, read, advisory lock on the hold session, write,
// notify, commit; release: the same with the token check) plus the unlock of the hold.
//
// Needs a running server: MAMA_BENCH_PG is its libpq connection string (key=value or URL; the
// user must be allowed to create schemas). Unset, the benchmarks are skipped with a message.
// bench/run_pg.sh starts a throw-away server and runs them beside claim/xml_*. The schemas
// mama_bench_<n> are created (and replaced) in that database.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <mama/pg_import_export.hpp>
#include <mama/pg_state_store.hpp>

#include "bench_support.hpp"

namespace {

using mama_bench::style;

// An idle machine near the middle (as claim_bench.cpp).
std::string target(std::size_t n) {
  std::size_t i = n / 2;
  while (mama_bench::role_of(i) != mama_bench::role::idle) ++i;
  return mama_bench::machine_name(i);
}

// `conninfo` with server options for its sessions (`-c name=value ...`).
std::string with_options(const std::string& conninfo, const std::string& options) {
  if (conninfo.starts_with("postgresql://") || conninfo.starts_with("postgres://")) {
    std::string encoded;
    for (char c : options)
      encoded += c == ' ' ? std::string("%20") : c == '=' ? "%3D" : std::string(1, c);
    return conninfo + (conninfo.find('?') == std::string::npos ? "?" : "&") + "options=" + encoded;
  }
  return conninfo + " options='" + options + "'";
}

void BM_claim_pg(benchmark::State& state, bool sync) {
  const char* server = std::getenv("MAMA_BENCH_PG");
  if (!server || !*server) {
    state.SkipWithError(
        "MAMA_BENCH_PG is not set (a libpq connection string); see bench/run_pg.sh");
    return;
  }
  const auto n = static_cast<std::size_t>(state.range(0));
  const std::string schema = "mama_bench_" + std::to_string(n);
  std::string options = "-csearch_path=" + schema;
  if (!sync) options += " -csynchronous_commit=off";
  try {
    mama::PgStateStore admin(server);
    mama::detail::PgSql(admin).exec("CREATE SCHEMA IF NOT EXISTS " + schema);
    mama::PgStateStore store(with_options(server, options));
    {
      const auto path = mama_bench::lab_file("claim-pg", n, style::mama);
      mama::XmlStateStore xml(path);
      mama::import_xml(xml, store, mama::ImportOptions{.replace = true});
    }
    const std::string machine = target(n);
    mama::GuardOptions opts;
    opts.job = "benchmark claim";
    opts.on_event = mama_bench::ignore_event;
    {
      mama::StaleJobGuard<mama::SystemClock, mama::ProcProbe, mama::PgStateStore> first(
          store, machine, opts);  // connect the pool once
      if (first.store().begin().find(machine)->token != first.token()) {
        state.SkipWithError("the claim is not in the database");
        return;
      }
    }
    for (auto _ : state) {
      mama::StaleJobGuard<mama::SystemClock, mama::ProcProbe, mama::PgStateStore> guard(
          store, machine, opts);
      benchmark::DoNotOptimize(guard.active());
    }
    if (!store.begin().find(machine)->idle()) state.SkipWithError("the machine was not released");
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  state.counters["machines"] = static_cast<double>(n);
}
// Registered only when a server is given, so a run without one (bench/run.sh) lists nothing
// that cannot run; bench/run_pg.sh starts a server and sets MAMA_BENCH_PG.
const bool registered = [] {
  if (!std::getenv("MAMA_BENCH_PG")) return false;
  for (const bool sync : {true, false})
    benchmark::RegisterBenchmark(sync ? "claim/pg_sync" : "claim/pg_async",
                                 [sync](benchmark::State& s) { BM_claim_pg(s, sync); })
        ->RangeMultiplier(10)
        ->Range(10, 1000)
        ->Unit(benchmark::kMicrosecond);
  return true;
}();

}  // namespace
