// examples/cli/hook.hpp — runs the --on-stale notification hook.
//
// The hook is `/bin/sh -c CMD` with the event in MAMA_* environment variables and as one JSON
// line on its stdin; its stdout goes to mama's stderr (mama's stdout stays the command's output).
// It never delays the claim: start() forks a small supervisor process and returns at once. The
// supervisor closes every inherited descriptor above 2 (so neither the hook nor anything it
// leaves in the background holds the machine's job lock or the state file's lock), starts the
// hook in a process group of its own, and kills that whole group when the hook has not ended
// within the timeout. It reports a hook that failed or was killed on stderr; mama goes on.
// At exit, mama waits for its supervisors, which is bounded by the timeout.
// Which events run it and what it is told: runs_hook, hook_environment.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <mama/events.hpp>
#include <string>
#include <utility>
#include <vector>

#include "audit_json.hpp"

namespace mama::cli {

/// Whether an event of this kind runs the hook: a stale job cleared, a job cleared with --force.
bool runs_hook(EventKind kind) noexcept;

/// The MAMA_* variables of the hook for `e`: MAMA_EVENT, MAMA_MACHINE, MAMA_JOB, MAMA_JOB_PID,
/// MAMA_JOB_HOST, MAMA_JOB_STARTED, MAMA_REASON, MAMA_STATE, MAMA_HOST, MAMA_USER and MAMA_TIME
/// (`time`, as in the event's JSON line).
std::vector<std::pair<std::string, std::string>> hook_environment(const Event& e,
                                                                  const Origin& origin,
                                                                  const std::string& time);

class HookRunner {
 public:
  HookRunner(std::string command, std::chrono::nanoseconds timeout)
      : command_(std::move(command)), timeout_(timeout) {}
  ~HookRunner() { wait_all(); }
  HookRunner(const HookRunner&) = delete;
  HookRunner& operator=(const HookRunner&) = delete;

  /// Starts the hook for one event: `stdin_text` on its stdin, `env` added to its environment.
  /// Never throws; a hook that cannot be started is reported on stderr.
  void start(const std::string& stdin_text,
             const std::vector<std::pair<std::string, std::string>>& env) noexcept;

  /// Waits until every started hook has ended or was killed.
  void wait_all() noexcept;

  const std::string& command() const noexcept { return command_; }

 private:
  std::string command_;
  std::chrono::nanoseconds timeout_;
  std::vector<pid_t> supervisors_;
};

}  // namespace mama::cli
