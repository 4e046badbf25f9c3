// examples/cli/audit_options.hpp — the global options of the audit log and the --on-stale hook:
// --audit-log, --no-audit-log, --audit-max-size, --on-stale, --hook-timeout, each with its
// environment variable ($MAMA_AUDIT_LOG, $MAMA_AUDIT_MAX_SIZE, $MAMA_ON_STALE,
// $MAMA_HOOK_TIMEOUT) when the option is not given.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace CLI {
class App;
}

namespace mama::cli {

class Context;

/// What the options and the environment say.
struct AuditConfig {
  std::optional<std::filesystem::path> log;  ///< the audit log; nullopt: none
  std::uint64_t max_size = 1024 * 1024;      ///< rotate before the log passes this
  std::string hook;                          ///< the --on-stale command; empty: none
  std::chrono::nanoseconds hook_timeout = std::chrono::seconds(10);
};

class AuditOptions {
 public:
  /// Adds the options to `app`.
  void add_options(CLI::App& app);

  /// The audit log file; nullopt when it is turned off, or when the state is a database and no
  /// log is given. By default `audit.jsonl` in the state file's runtime directory
  /// (XmlStateStore::runtime_dir: `<canonical path of the file>.d`), so every name of one
  /// mama.xml, symbolic links included, logs to one file. Creates nothing.
  std::optional<std::filesystem::path> log_path(Context& ctx) const;

  /// The whole configuration. Throws mama::error (invalid_argument) for a bad environment value
  /// (bad option values are refused by the command-line parser).
  AuditConfig resolve(Context& ctx) const;

 private:
  std::string log_option_;
  bool no_log_ = false;
  std::string max_size_option_;
  std::string on_stale_option_;
  std::string hook_timeout_option_;
};

/// A size such as "1048576", "512K", "1M" (K = 1024); nullopt when it is not one.
std::optional<std::uint64_t> parse_size(std::string_view text);

}  // namespace mama::cli
