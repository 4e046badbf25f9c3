// tests/integration/fork_check.hpp — what the fork suites check after a child process ran the
// run claim's destructors: the parent's record and its kernel hold are untouched.
#pragma once

#include <mama/runners/harness.hpp>
#include <optional>
#include <string>

namespace mama::test {

/// Empty when the run's claim is intact (the record carries its token and the machine's hold is
/// held); otherwise what is wrong.
inline std::string run_claim_problem() {
  const auto& claim = process_run_claim();
  if (!claim.active() || !claim.guard()) return "MAMA_MACHINE is not set: nothing was claimed";
  const auto& settings = *claim.settings();
  XmlStateStore store(settings.state);
  auto tx = store.begin();
  const auto record = tx.find(settings.machine);
  if (!record) return "machine disappeared from the state file";
  if (record->token != claim.guard()->token())
    return "the record no longer carries the run's claim (job '" + record->job + "')";
  if (tx.try_hold(settings.machine)) return "the machine's hold is free: the lock was released";
  return {};
}

}  // namespace mama::test
