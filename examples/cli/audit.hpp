// examples/cli/audit.hpp — the audit log of the `mama` CLI and the settings of the --on-stale hook.
//
// Every event the Reporter sees (claims, releases, stale jobs detected and cleared, forced
// clears, the first wait of a claim and one a minute after it) becomes one JSON line appended to
// the audit log, by default `<state file>.d/audit.jsonl`. Many `mama` processes append at once:
// each line is one write(2) on a file opened with O_APPEND, so lines never interleave. The log is
// capped (default 1 MiB): the writer that would pass the cap renames it to `.1` (older
// generations move up, the oldest is dropped) under an flock on `<log>.lock`; writers open the
// log for every line, so nobody keeps writing into a rotated file for long.
//
// Writing the log never breaks a claim or a command: the first failure is reported once on
// stderr, later ones are silent. `mama stats` (cmd_stats.cpp) reads the log back.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mama/events.hpp>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace CLI {
class App;
}

namespace mama::cli {

class Context;
class HookRunner;

/// Appends whole JSON lines to a capped, rotated log file; safe with concurrent writers.
class AuditLog {
 public:
  /// `path`: the log; `max_size`: rotate before a line would make it larger than this;
  /// `generations`: rotated files kept (`path.1` newest ... `path.N`).
  AuditLog(std::filesystem::path path, std::uint64_t max_size, int generations = 1);

  /// Appends `line` (a '\n' is added) with one write(2). Throws mama::error(io_error) naming the
  /// file when it cannot.
  void append(std::string_view line);

  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  void rotate(std::uint64_t incoming);

  std::filesystem::path path_;
  std::uint64_t max_size_;
  int generations_;
};

/// The files of a log, oldest first: `path.N` ... `path.1`, `path` (those that exist).
std::vector<std::filesystem::path> audit_generations(const std::filesystem::path& path,
                                                     int generations);

/// The global options of the audit log and the hook, and what runs them. One per process.
class AuditSettings {
 public:
  AuditSettings();
  ~AuditSettings();  // waits (bounded by the hook timeout) for hooks still running
  AuditSettings(const AuditSettings&) = delete;
  AuditSettings& operator=(const AuditSettings&) = delete;

  /// Adds --audit-log, --no-audit-log, --audit-max-size, --on-stale, --hook-timeout to `app`.
  void add_options(CLI::App& app);

  /// Checks the settings (options, then $MAMA_AUDIT_LOG, $MAMA_AUDIT_MAX_SIZE, $MAMA_ON_STALE,
  /// $MAMA_HOOK_TIMEOUT) and starts listening to ctx.reporter. Throws mama::error
  /// (invalid_argument) for a bad value. Call once, after parsing the command line.
  void attach(Context& ctx);

  /// The audit log file; nullopt when it is turned off. Does not create anything.
  std::optional<std::filesystem::path> log_path(const Context& ctx) const;
  /// Rotated generations kept beside the log.
  static constexpr int generations = 1;

 private:
  void on_event(Context& ctx, const Event& e);
  nlohmann::ordered_json to_json(const Context& ctx, const Event& e, std::int64_t waited_ms) const;
  void report_failure(Context& ctx, const std::string& what);

  std::string log_option_;
  bool no_log_ = false;
  std::string max_size_option_;
  std::string on_stale_option_;
  std::string hook_timeout_option_;

  std::optional<AuditLog> log_;
  std::unique_ptr<HookRunner> hooks_;
  bool failure_reported_ = false;
  std::string host_;
  std::string user_;

  // Per machine: the last `waiting` event logged (waited time, and when it came).
  struct WaitTrack {
    std::chrono::nanoseconds logged{-1};
    std::chrono::nanoseconds last{0};
    std::chrono::steady_clock::time_point last_at{};
  };
  std::map<std::string, WaitTrack, std::less<>> waits_;
};

/// "2025-11-13T15:30:45.123Z" for a point in time (UTC).
std::string iso_utc(std::chrono::system_clock::time_point t);

/// A size such as "1048576", "512K", "1M" (K = 1024); nullopt when it is not one.
std::optional<std::uint64_t> parse_size(std::string_view text);

}  // namespace mama::cli
