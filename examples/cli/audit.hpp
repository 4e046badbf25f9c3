// examples/cli/audit.hpp — the audit log of the `mama` CLI and the --on-stale hook, put together.
//
// Every event the Reporter sees (claims, releases, stale jobs detected and cleared, forced
// clears, the first wait of a claim and one a minute after it) becomes one JSON line appended to
// the audit log, by default `audit.jsonl` in the state file's runtime directory
// (`<canonical path of the file>.d/`, the same file whichever name of mama.xml is used). A stale
// job cleared and a forced clear also start the --on-stale hook. Writing the log never breaks a
// claim or a command: the first failure is reported once on stderr, later ones are silent.
// `mama stats` (cmd_stats.cpp) reads the log back.
//
// The parts, one concern each:
//   audit_options.hpp  the options and environment variables (AuditOptions, AuditConfig)
//   audit_log.hpp      the file: appending whole lines, the size cap and rotation (AuditLog)
//   audit_json.hpp     an event as a JSON line (audit_json)
//   audit_throttle.hpp which `waiting` events are logged, and the time a claim waited
//   hook.hpp           running the hook (HookRunner), which events run it, its variables
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "audit_json.hpp"
#include "audit_log.hpp"
#include "audit_options.hpp"
#include "audit_throttle.hpp"

namespace mama::cli {

class Context;
class HookRunner;

/// The audit log and the hook of one `mama` process: parses their options, then listens to the
/// context's reporter.
class AuditSettings {
 public:
  AuditSettings();
  ~AuditSettings();  // waits (bounded by the hook timeout) for hooks still running
  AuditSettings(const AuditSettings&) = delete;
  AuditSettings& operator=(const AuditSettings&) = delete;

  /// Adds --audit-log, --no-audit-log, --audit-max-size, --on-stale, --hook-timeout to `app`.
  void add_options(CLI::App& app) { options_.add_options(app); }

  /// Checks the settings (AuditOptions::resolve) and starts listening to ctx.reporter. Throws
  /// mama::error (invalid_argument) for a bad value. Call once, after parsing the command line.
  void attach(Context& ctx);

  /// The audit log file (AuditOptions::log_path); nullopt when there is none.
  std::optional<std::filesystem::path> log_path(Context& ctx) const {
    return options_.log_path(ctx);
  }
  /// Rotated generations kept beside the log.
  static constexpr int generations = 1;

 private:
  void on_event(Context& ctx, const Event& e);
  void report_failure(Context& ctx, const std::string& what);

  AuditOptions options_;
  std::optional<AuditLog> log_;
  std::unique_ptr<HookRunner> hooks_;
  WaitThrottle throttle_;
  Origin origin_;
  bool failure_reported_ = false;
};

}  // namespace mama::cli
