// mama/runners/harness.hpp — claim a machine for a whole test or benchmark run, configured by the
// environment. Runner-independent; catch2.hpp, gtest.hpp and benchmark.hpp build on it.
//
// Environment (read when the run starts):
//   MAMA_MACHINE   the machine to claim; unset or empty: do nothing (the suite runs anywhere)
//   MAMA_JOB       the job text; default: the name of the test program
//   MAMA_STATE     the state file; else $MAMA_PATH/mama.xml, MAMA_PATH defaulting to
//                  /usr/share/mama (the PHP tool's default) — see mama/lookup.hpp
//   MAMA_TIMEOUT   give up waiting for a busy machine after this many seconds; default: wait
//
// Contract: RunClaim::acquire() claims (waiting and clearing stale jobs like any JobGuard) or
// throws mama::error whose message names the machine, the file and what to do; release() gives
// the machine back. One RunClaim per process is enough: the runner adapters share one.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "mama/detail/text.hpp"
#include "mama/error.hpp"
#include "mama/guard.hpp"
#include "mama/lookup.hpp"
#include "mama/record.hpp"
#include "mama/xml_state_store.hpp"

namespace mama {

namespace detail {
inline std::string getenv_text(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}
}  // namespace detail

/// The name of the running program (basename of /proc/self/exe), or "test run" when unknown.
inline std::string program_name() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) {
    const std::string path(buf, static_cast<std::size_t>(n));
    auto name = std::filesystem::path(path).filename().string();
    if (!name.empty()) return name;
  }
  return "test run";
}

/// What a harness run claims, as read from the environment.
struct HarnessSettings {
  std::string machine;                          ///< MAMA_MACHINE
  std::string job;                              ///< MAMA_JOB, else the program name
  std::filesystem::path state;                  ///< default_state_path()
  std::optional<std::chrono::seconds> timeout;  ///< MAMA_TIMEOUT

  /// Reads the environment. nullopt when MAMA_MACHINE is unset or empty. `default_job` is the
  /// job text when MAMA_JOB is unset (empty: program_name()). Throws mama::error
  /// (invalid_argument) for a MAMA_TIMEOUT that is not a whole number of seconds.
  static std::optional<HarnessSettings> from_environment(std::string_view default_job = {}) {
    HarnessSettings s;
    s.machine = detail::getenv_text("MAMA_MACHINE");
    if (s.machine.empty()) return std::nullopt;
    s.job = detail::getenv_text("MAMA_JOB");
    if (s.job.empty()) s.job = default_job.empty() ? program_name() : std::string(default_job);
    s.state = default_state_path();
    if (const auto t = detail::getenv_text("MAMA_TIMEOUT"); !t.empty()) {
      const auto secs = detail::parse_decimal<std::int64_t>(t);
      if (!secs)
        throw error(errc::invalid_argument,
                    "MAMA_TIMEOUT='" + detail::escape_control(t) +
                        "' is not a whole number of seconds; set it to e.g. 600 or unset it");
      s.timeout = std::chrono::seconds(*secs);
    }
    return s;
  }
};

/// A claim held for a whole run. acquire() at the start, release() (or destruction) at the end.
class RunClaim {
 public:
  RunClaim() = default;
  RunClaim(const RunClaim&) = delete;
  RunClaim& operator=(const RunClaim&) = delete;

  /// Claims the machine named by the environment (see the top of this header). Returns false,
  /// doing nothing, when MAMA_MACHINE is not set, or when this object already holds a claim.
  /// Throws mama::error naming the machine and the state file when the claim fails.
  bool acquire(std::string_view default_job = {}) {
    if (guard_) return false;
    const auto settings = HarnessSettings::from_environment(default_job);
    if (!settings) return false;
    return acquire(*settings);
  }

  /// Claims `settings.machine` in `settings.state`. Throws as acquire() above.
  bool acquire(const HarnessSettings& settings) {
    if (guard_) return false;
    try {
      // The runner integrations work on mama.xml. A PostgreSQL lab runs the suite under
      // `mama run` (CTest: mama_add_test), which ends the run if its hold is lost (issue 13):
      // a test binary must not hold a server lease that nothing watches.
      if (settings.state.string().starts_with("postgresql://") ||
          settings.state.string().starts_with("postgres://"))
        throw error(errc::invalid_argument,
                    "MAMA_STATE names a PostgreSQL lab; the test-runner integrations claim on "
                    "mama.xml only. Run the suite under `mama run " +
                        detail::escape_control(settings.machine) +
                        " -- <suite>` (CTest: mama_add_test), which stops it if the hold is lost");
      XmlStateStore store(settings.state);
      GuardOptions options;
      options.job = settings.job;
      if (settings.timeout) options.timeout = *settings.timeout;
      guard_.emplace(std::move(store), settings.machine, std::move(options));
    } catch (const error& e) {
      throw e.with_prefix("mama: cannot claim machine '" +
                          detail::escape_control(settings.machine) + "' in " +
                          settings.state.string() + " for this run (MAMA_MACHINE): ");
    }
    settings_ = settings;
    return true;
  }

  /// Releases the machine now. Throws mama::error when the state file cannot be saved (the
  /// machine's kernel lock is dropped anyway, so the next claim sees the job as stale).
  void release() {
    if (!guard_) return;
    auto g = std::move(guard_);
    guard_.reset();
    g->release();
  }

  /// True while a claim is held.
  bool active() const noexcept { return guard_.has_value() && guard_->active(); }
  /// The settings of the held claim (nullopt when none was made).
  const std::optional<HarnessSettings>& settings() const noexcept { return settings_; }
  /// The guard of the held claim, or nullptr.
  const JobGuard* guard() const noexcept { return guard_ ? &*guard_ : nullptr; }

 private:
  std::optional<JobGuard> guard_;
  std::optional<HarnessSettings> settings_;
};

/// The one RunClaim of this process, shared by the runner adapters (so a listener registered
/// from several translation units claims once).
inline RunClaim& process_run_claim() {
  static RunClaim claim;
  return claim;
}

}  // namespace mama
