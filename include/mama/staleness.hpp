// mama/staleness.hpp — when is a job stale: the decision table of SPEC §3 as one pure function.
//
// Everything that shows, waits on or clears jobs (the guard, `mama list`, `mama clear`) asks
// mama::assess, so the table lives in exactly one place. assess does no I/O of its own: the
// facts about this host come in an Observation and the process question is asked through a
// callable, at most once, and only when the table needs it.
//
// The table, in order; the first row that matches decides:
//
// | # | the record                                                      | verdict | reason shown |
// |---|-----------------------------------------------------------------|---------|--------------|
// | 1 | `job` empty                                                     | idle    |              |
// | 2 | `job_host` set and not this host                                | remote (running, never probed from here) | `on host H, not checked from here` |
// | 3 | `job_boot_id` set and not this boot                             | stale   | `host rebooted since the job started` |
// | 4 | no `job_pid`, `job_timestamp` older than stale_after (300 s)    | stale   | `no PID, set N min ago` |
// | 5 | no `job_pid`, and a timestamp not yet old                       | running | `no PID recorded` |
// | 6 | `job_pid` <= 0 as PHP 8's `(int)` reads it (`" 12"`, `"+12"`, `"12abc"` read 12) | stale | `invalid PID` |
// | 7 | no process with that PID, or a zombie                           | stale   | `process not running` |
// | 8 | `job_start` set and not the start time of that PID              | stale   | `PID reused by another process` |
// | 9 | otherwise (another user's process included: kill says EPERM)    | running |              |
//
// A PID-less record with no usable timestamp (none, not a number, in the future) is stamped by
// the first claimer that meets it (detail::needs_first_seen_stamp), so rows 4/5 run from then.
//
// Records that carry a claim token also have the machine's hold (a kernel lock the job's
// processes keep for its whole life; a server-kept session lock for PostgreSQL). Two signals
// then decide, and both must say "gone" before a job is stale: a held hold is running whatever
// the PID says (the claimer died, its job's children run on); a free hold is stale only when
// rows 6-8 agree. A free hold with a live holder is running: the lock files were lost, or the
// file was reached by another path (a hard link). A token record kept without a PID (its job
// processes outlived their claimer and none could be named) is decided by the hold alone.
// For server-kept holds (hold_spans_hosts), the hold decides before row 2, for every host.
#pragma once

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mama/detail/text.hpp"
#include "mama/record.hpp"

namespace mama {

/// What a process probe says about a recorded holder.
enum class Liveness {
  alive,    ///< the process exists (possibly another user's) and, if checked, started then
  gone,     ///< no such process, or a zombie
  reused,   ///< a process with that PID exists but started at another time
  unknown,  ///< could not tell (no /proc, permission problems beyond EPERM, ...)
};

/// The state of a claim's kernel lock (SPEC §3: "that lock decides rows 6-9").
enum class HoldState {
  none,  ///< the store keeps no kernel lock for this record: use the PID rules
  held,  ///< a live process holds the machine's job lock: running
  free,  ///< nobody holds it: the job's processes are gone, or the lock was reached by another
         ///< path (so a free hold alone never makes a record stale: see assess)
};

/// The verdict of the staleness table.
enum class Verdict {
  idle,     ///< no job
  running,  ///< a live holder (or one we must not judge): wait
  remote,   ///< held from another host, never probed from here: wait
  stale,    ///< the holder is gone: clear the job
  invalid,  ///< the record holds a value that cannot be interpreted: a human must look
};

/// A verdict and, where the table gives one, the reason shown to users.
struct Assessment {
  mama::Verdict verdict = Verdict::idle;
  std::string reason;

  bool busy() const noexcept { return verdict != Verdict::idle && verdict != Verdict::stale; }
  friend bool operator==(const Assessment&, const Assessment&) = default;
};

/// The facts about here and now that the table compares a record with.
struct Observation {
  std::string host;     ///< this host's name
  std::string boot_id;  ///< this boot's id
  std::chrono::system_clock::time_point now;
  std::chrono::seconds stale_after{300};  ///< rows 4/5: PID-less records older than this are stale
  HoldState hold = HoldState::none;     ///< the kernel lock, for records that carry a token
  /// The store's holds are kept by a server for holders on every host (PostgreSQL advisory
  /// locks): then `hold` decides for token records before rows 2-9, remote ones included.
  bool hold_spans_hosts = false;
};

/// A short name for a verdict ("idle", "running", "remote", "stale", "invalid").
constexpr std::string_view to_string(Verdict v) noexcept {
  switch (v) {
    case Verdict::idle:
      return "idle";
    case Verdict::running:
      return "running";
    case Verdict::remote:
      return "remote";
    case Verdict::stale:
      return "stale";
    case Verdict::invalid:
      return "invalid";
  }
  return "?";
}

namespace detail {

/// A PID as the PHP tool reads it: PHP 8's `(int)` cast of the field's text. Leading
/// whitespace (" \t\n\r\v\f") is skipped, a sign is taken, then the longest numeric prefix
/// is read (`" 12"`, `"12 "`, `"+12"`, `"12abc"` read 12; `"1e3"` reads 1000, `"12.9"` 12);
/// text with no numeric prefix reads 0. Values beyond 64 bits saturate. The PHP tool says
/// "stale" at once when this is <= 0, and asks `ps -p` otherwise.
inline std::int64_t php_int_cast(std::string_view text) noexcept {
  std::size_t i = 0;
  const auto ws = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  };
  while (i < text.size() && ws(text[i])) ++i;
  bool negative = false;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) negative = text[i++] == '-';
  const auto digit = [&](std::size_t k) {
    return k < text.size() && text[k] >= '0' && text[k] <= '9';
  };
  // Mantissa digits (with an optional fraction) and an optional exponent, as a long double:
  // exact for every integer a PID field can sensibly hold, and right in sign for the rest.
  long double value = 0;
  bool any = false;
  while (digit(i)) value = value * 10 + (text[i++] - '0'), any = true;
  if (i < text.size() && text[i] == '.') {
    long double scale = 0.1L;
    std::size_t k = i + 1;
    bool frac = false;
    while (digit(k)) value += scale * (text[k++] - '0'), scale /= 10, frac = true;
    if (any || frac) i = k, any = true;
  }
  if (!any) return 0;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    std::size_t k = i + 1;
    bool neg_exp = false;
    if (k < text.size() && (text[k] == '+' || text[k] == '-')) neg_exp = text[k++] == '-';
    if (digit(k)) {
      int exp = 0;
      while (digit(k)) exp = std::min(exp * 10 + (text[k++] - '0'), 9999);
      for (int e = 0; e < exp && value != 0 && value < 1e30L; ++e)
        value = neg_exp ? value / 10 : value * 10;
      if (neg_exp && exp > 30) value = 0;
    }
  }
  if (negative) value = -value;
  if (value >= 9.2e18L) return INT64_MAX;
  if (value <= -9.2e18L) return INT64_MIN;
  return static_cast<std::int64_t>(value);  // truncates toward zero, as PHP does
}

/// True for a PID-less record whose job_timestamp cannot start the stale_after clock: none, not
/// a number, or in the future. The first claimer that meets such a record stamps it with its
/// own time (SPEC §3), so a phantom job without a PID is never waited on forever.
inline bool needs_first_seen_stamp(const JobRecord& record,
                                   std::chrono::system_clock::time_point now) noexcept {
  if (record.idle() || !record.pid.empty()) return false;
  const auto stamp = parse_decimal<std::int64_t>(record.timestamp);
  if (!stamp) return true;
  return *stamp > std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
}

}  // namespace detail

/// Decides whether `record` is idle, running or stale (SPEC §3, rows in order).
///
/// `probe(pid, start)` is called at most once, only for rows 7-9; `start` is nullopt when the
/// record has no job_start. It returns a liveness. Never throws unless `probe` does.
///
/// Two signals decide a record that carries a token: the machine's hold (a kernel lock held for
/// the job's life) and the recorded process. A held hold means running. A free hold means stale
/// only when the process rules agree (the process is gone, or its PID was reused); a free hold
/// with a live holder is running: the lock files were lost or reached by another path, and no
/// single signal may clear a live job.
///
/// Every reason is safe to print: text from the record in it is escaped (escape_control).
template <class ProbeFn>
Assessment assess(const JobRecord& record, const Observation& here, ProbeFn&& probe) {
  using std::chrono::duration_cast;
  using std::chrono::seconds;
  // Row 1.
  if (record.idle()) return {Verdict::idle, {}};
  // A server-kept hold knows about holders on every host: no PID, host or clock comparison.
  if (here.hold_spans_hosts && !record.token.empty() && here.hold != HoldState::none) {
    if (here.hold == HoldState::held) return {Verdict::running, {}};
    if (record.host.empty() || record.host == here.host)
      return {Verdict::stale, "process not running"};
    return {Verdict::stale, "holder on host " + detail::escape_control(record.host) +
                                " is gone (its job lock was freed)"};
  }
  // Row 2.
  if (!record.host.empty() && record.host != here.host)
    return {Verdict::remote,
            "on host " + detail::escape_control(record.host) + ", not checked from here"};
  // Row 3.
  if (!record.boot_id.empty() && !here.boot_id.empty() && record.boot_id != here.boot_id)
    return {Verdict::stale, "host rebooted since the job started"};
  // Rows 4 and 5: no PID. A record without a usable timestamp is stamped by the first claimer
  // (detail::needs_first_seen_stamp) and runs until stale_after has passed from then.
  if (record.pid.empty()) {
    // A claim's record kept for job processes that outlived their claimer, when none of them
    // could be named: the hold is the only signal there is.
    if (!record.token.empty() && here.hold == HoldState::held)
      return {Verdict::running, "held by processes of the job"};
    if (!record.token.empty() && here.hold == HoldState::free)
      return {Verdict::stale, "processes of the job ended"};
    const auto stamp = detail::parse_decimal<std::int64_t>(record.timestamp);
    if (!stamp) return {Verdict::running, "no PID recorded"};
    const auto now = duration_cast<seconds>(here.now.time_since_epoch()).count();
    const auto age = now - *stamp;
    if (age > here.stale_after.count())
      return {Verdict::stale, "no PID, set " + std::to_string(age / 60) + " min ago"};
    return {Verdict::running, "no PID recorded"};
  }
  // The hold, the first of two signals for records that carry a token.
  const bool hold_decides = !record.token.empty() && here.hold != HoldState::none;
  if (hold_decides && here.hold == HoldState::held) return {Verdict::running, {}};
  // Row 6: the PID as the PHP tool reads it.
  const std::int64_t pid64 = detail::php_int_cast(record.pid);
  if (pid64 <= 0) return {Verdict::stale, "invalid PID"};
  if (pid64 > INT32_MAX) return {Verdict::stale, "process not running"};
  const int pid = static_cast<int>(pid64);
  std::optional<std::uint64_t> start;
  if (!record.start.empty()) {
    start = detail::parse_decimal<std::uint64_t>(record.start);
    if (!start)
      return {Verdict::invalid, "job_start is not a number of clock ticks: '" +
                                    detail::escape_control(record.start) +
                                    "'; clear the job with `mama clear --force` if it is dead"};
  }
  // Rows 7-9.
  switch (static_cast<Liveness>(probe(pid, start))) {
    case Liveness::gone:
      return {Verdict::stale, "process not running"};
    case Liveness::reused:
      return start ? Assessment{Verdict::stale, "PID reused by another process"}
                   : Assessment{Verdict::running, {}};
    case Liveness::unknown:
      return {Verdict::running, "cannot check the process"};
    case Liveness::alive:
      break;
  }
  if (hold_decides)  // free hold, live process: the signals disagree, so it runs
    return {Verdict::running, "job lock free but process " + std::to_string(pid) +
                                  " is alive (lock files lost or reached by another path)"};
  return {Verdict::running, {}};
}

}  // namespace mama
