// mama/staleness.hpp — when is a job stale: the decision table of SPEC §3 as one pure function.
//
// Everything that shows, waits on or clears jobs (the guard, `mama list`, `mama clear`) asks
// mama::assess, so the table lives in exactly one place. assess does no I/O of its own: the
// facts about this host come in an Observation and the process question is asked through a
// callable, at most once, and only when the table needs it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mama/record.hpp"

namespace mama {

/// What a process probe says about a recorded holder.
enum class liveness {
  alive,    ///< the process exists (possibly another user's) and, if checked, started then
  gone,     ///< no such process, or a zombie
  reused,   ///< a process with that PID exists but started at another time
  unknown,  ///< could not tell (no /proc, permission problems beyond EPERM, ...)
};

/// The state of a claim's kernel lock (SPEC §3: "that lock decides rows 6-9").
enum class hold_state {
  none,  ///< the store keeps no kernel lock for this record: use the PID rules
  held,  ///< a live process holds the machine's job lock: running
  free,  ///< nobody holds it: the claimer and all its job processes are gone
};

/// The verdict of the staleness table.
enum class verdict {
  idle,     ///< no job
  running,  ///< a live holder (or one we must not judge): wait
  remote,   ///< held from another host, never probed from here: wait
  stale,    ///< the holder is gone: clear the job
  invalid,  ///< the record holds a value that cannot be interpreted: a human must look
};

/// A verdict and, where the table gives one, the reason shown to users.
struct Assessment {
  mama::verdict verdict = verdict::idle;
  std::string reason;

  bool busy() const noexcept { return verdict != verdict::idle && verdict != verdict::stale; }
  friend bool operator==(const Assessment&, const Assessment&) = default;
};

/// The facts about here and now that the table compares a record with.
struct Observation {
  std::string host;     ///< this host's name
  std::string boot_id;  ///< this boot's id
  std::chrono::system_clock::time_point now;
  std::chrono::seconds stale_after{300};  ///< rows 4/5: PID-less records older than this are stale
  hold_state hold = hold_state::none;     ///< the kernel lock, for records that carry a token
  /// The store's holds are kept by a server for holders on every host (PostgreSQL advisory
  /// locks): then `hold` decides for token records before rows 2-9, remote ones included.
  bool hold_spans_hosts = false;
};

/// A short name for a verdict ("idle", "running", "remote", "stale", "invalid").
constexpr std::string_view to_string(verdict v) noexcept {
  switch (v) {
    case verdict::idle:
      return "idle";
    case verdict::running:
      return "running";
    case verdict::remote:
      return "remote";
    case verdict::stale:
      return "stale";
    case verdict::invalid:
      return "invalid";
  }
  return "?";
}

/// Decides whether `record` is idle, running or stale (SPEC §3, rows in order).
///
/// `probe(pid, start)` is called at most once, only for rows 7-9 and only when the kernel lock
/// does not decide; `start` is nullopt when the record has no job_start. It returns a liveness.
/// Never throws unless `probe` does.
template <class ProbeFn>
Assessment assess(const JobRecord& record, const Observation& here, ProbeFn&& probe) {
  using std::chrono::duration_cast;
  using std::chrono::seconds;
  // Row 1.
  if (record.idle()) return {verdict::idle, {}};
  // A server-kept hold knows about holders on every host: no PID, host or clock comparison.
  if (here.hold_spans_hosts && !record.token.empty() && here.hold != hold_state::none) {
    if (here.hold == hold_state::held) return {verdict::running, {}};
    if (record.host.empty() || record.host == here.host)
      return {verdict::stale, "process not running"};
    return {verdict::stale, "holder on host " + record.host + " is gone (its job lock was freed)"};
  }
  // Row 2.
  if (!record.host.empty() && record.host != here.host)
    return {verdict::remote, "on host " + record.host + ", not checked from here"};
  // Row 3.
  if (!record.boot_id.empty() && !here.boot_id.empty() && record.boot_id != here.boot_id)
    return {verdict::stale, "host rebooted since the job started"};
  // Rows 4 and 5: no PID.
  if (record.pid.empty()) {
    if (record.timestamp.empty()) return {verdict::running, "no PID recorded"};
    const auto stamp = detail::parse_decimal<std::int64_t>(record.timestamp);
    if (!stamp)
      return {verdict::invalid, "job_timestamp is not a number of seconds: '" + record.timestamp +
                                    "'; clear the job with `mama clear --force` if it is dead"};
    const auto now = duration_cast<seconds>(here.now.time_since_epoch()).count();
    const auto age = now - *stamp;
    if (age > here.stale_after.count())
      return {verdict::stale, "no PID, set " + std::to_string(age / 60) + " min ago"};
    return {verdict::running, "no PID recorded"};
  }
  // A kernel lock held for the job's lifetime decides rows 6-9 for the records that carry one.
  if (!record.token.empty() && here.hold != hold_state::none) {
    if (here.hold == hold_state::free) return {verdict::stale, "process not running"};
    return {verdict::running, {}};
  }
  // Row 6.
  const auto pid = detail::parse_decimal<std::int32_t>(record.pid);
  if (!pid || *pid <= 0) return {verdict::stale, "invalid PID"};
  std::optional<std::uint64_t> start;
  if (!record.start.empty()) {
    start = detail::parse_decimal<std::uint64_t>(record.start);
    if (!start)
      return {verdict::invalid, "job_start is not a number of clock ticks: '" + record.start +
                                    "'; clear the job with `mama clear --force` if it is dead"};
  }
  // Rows 7-9.
  switch (static_cast<liveness>(probe(*pid, start))) {
    case liveness::gone:
      return {verdict::stale, "process not running"};
    case liveness::reused:
      return start ? Assessment{verdict::stale, "PID reused by another process"}
                   : Assessment{verdict::running, {}};
    case liveness::unknown:
      return {verdict::running, "cannot check the process"};
    case liveness::alive:
      break;
  }
  return {verdict::running, {}};
}

}  // namespace mama
