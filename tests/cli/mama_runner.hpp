// tests/cli/mama_runner.hpp — running the real `mama` binary (MAMA_CLI, the path CMake passes)
// from the CLI tests: to completion with its output captured, in the background, or exec'd
// from a test's own child process. Every run gets TZ=UTC and none of the caller's NO_COLOR or
// MAMA_* variables, then the test's own `env` edits ("NAME=value", or "NAME" to unset).
#pragma once

#include <string>
#include <vector>

#include "support.hpp"

namespace mama::test {

using Result = RunResult;

inline std::vector<std::string> run_env(const std::vector<std::string>& env) {
  std::vector<std::string> all{"TZ=UTC",        "NO_COLOR",         "MAMA_STATE",
                               "MAMA_PATH",     "MAMA_AUDIT_LOG",   "MAMA_AUDIT_MAX_SIZE",
                               "MAMA_ON_STALE", "MAMA_HOOK_TIMEOUT"};
  all.insert(all.end(), env.begin(), env.end());
  return all;
}

/// In a test's own child: the environment of a run.
inline void prepare_child_env(const std::vector<std::string>& env) { apply_env(run_env(env)); }

inline std::vector<std::string> mama_argv(const std::vector<std::string>& args) {
  std::vector<std::string> argv{MAMA_CLI};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

/// In a test's own child, after prepare_child_env: becomes `mama args...`.
[[noreturn]] inline void exec_mama(const std::vector<std::string>& args) {
  exec_with_env(mama_argv(args), {});
}

/// Runs `mama args...` to completion, capturing stdout and stderr (pipes: not a terminal).
inline Result run_mama(const std::vector<std::string>& args,
                       const std::vector<std::string>& env = {}) {
  return run_capture(mama_argv(args), run_env(env));
}

/// `mama args...` in the background, output to files; killed with SIGKILL if still running.
struct BackgroundMama : Background {
  BackgroundMama(const std::vector<std::string>& args, const std::filesystem::path& out,
                 const std::filesystem::path& err)
      : Background(mama_argv(args), run_env({}), out, err) {}
};

}  // namespace mama::test
