// examples/cli/audit_json.hpp — one event as the JSON object of an audit log line (and of the
// --on-stale hook's stdin). Strings longer than 1 KiB are cut ("..." at the end), so a line
// stays a few KiB; a PID or start time that is not a number is null.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <mama/events.hpp>
#include <nlohmann/json.hpp>
#include <string>

namespace mama::cli {

/// Who logs: this host, user and process.
struct Origin {
  std::string host;
  std::string user;
  pid_t pid = 0;

  /// This process: the host name `host`, the effective user's name (or its uid), getpid().
  static Origin here(std::string host);
};

/// The object of one line: time, epoch, event, machine, job, job_pid, job_host, job_started,
/// verdict (stale events only), reason, waited_ms, host, user, pid, state.
nlohmann::ordered_json audit_json(const Event& e, std::int64_t waited_ms, const Origin& origin,
                                  std::chrono::system_clock::time_point now);

/// `j` on one line (invalid UTF-8 replaced).
std::string audit_line(const nlohmann::ordered_json& j);

/// "2025-11-13T15:30:45.123Z" for a point in time (UTC).
std::string iso_utc(std::chrono::system_clock::time_point t);

}  // namespace mama::cli
