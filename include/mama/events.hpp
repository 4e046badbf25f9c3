// mama/events.hpp — what the guard reports while it works.
//
// The guard calls an event handler for each step of a claim and a release. Nobody has to
// listen: with no handler set, the default writes the lines a user must see (the SPEC's
// "Detected stale job: ..." and release problems) to stderr and costs nothing else.
//
// When: every event is delivered after the guard's transaction has ended, never while the
// state lock is held, so a handler may open the same store (a lab log, a notifier) without
// deadlocking. hold_lost is the exception in thread, not in locking: the store's watcher thread
// delivers it, so a handler that sees it must be safe to call from another thread.
//
// Text: the reasons of stale_detected, stale_cleared and waiting are safe to print as they are
// (assess escapes what it quotes from a record); other reasons (errors) and
// record fields, machine names and store names are raw: print them through
// detail::escape_control, as default_event_handler does.
#pragma once

#include <chrono>
#include <functional>
#include <iostream>
#include <string>
#include <string_view>

#include "mama/detail/text.hpp"
#include "mama/record.hpp"

namespace mama {

/// What happened.
enum class EventKind {
  claimed,           ///< the machine is ours (record = what we wrote)
  nested,            ///< an ancestor holds the machine; we run inside its claim (record = its)
  waiting,           ///< busy: about to wait (record = holder, reason = why it counts as busy)
  stale_detected,    ///< a stale job was found (record = the stale job, reason = why)
  stale_cleared,     ///< that stale job was cleared, in the same critical section
  released,          ///< our claim was cleared (or the ancestor's record restored)
  successor_found,   ///< on release the record was no longer ours: left alone (record = new holder)
  release_failed,    ///< the release could not be saved (reason = the error)
  forced_clear,      ///< a live job was cleared on request (CLI `clear --force`)
  leftover_holders,  ///< on release, job processes still hold the machine's lock: the record is
                     ///< kept, naming one of them (record = what was kept)
  hold_lost,         ///< the store could not confirm this claim's hold in time: the job must stop
                     ///< (delivered from the store's watcher thread; reason = why)
};

/// A short name for an event kind ("claimed", "stale_detected", ...), as used in logs.
constexpr std::string_view to_string(EventKind k) noexcept {
  switch (k) {
    case EventKind::claimed:
      return "claimed";
    case EventKind::nested:
      return "nested";
    case EventKind::waiting:
      return "waiting";
    case EventKind::stale_detected:
      return "stale_detected";
    case EventKind::stale_cleared:
      return "stale_cleared";
    case EventKind::released:
      return "released";
    case EventKind::successor_found:
      return "successor_found";
    case EventKind::release_failed:
      return "release_failed";
    case EventKind::forced_clear:
      return "forced_clear";
    case EventKind::leftover_holders:
      return "leftover_holders";
    case EventKind::hold_lost:
      return "hold_lost";
  }
  return "?";
}

/// One event. References are valid only during the handler call.
struct Event {
  EventKind kind;
  std::string_view machine;
  std::string_view store;              ///< the store's description (the file)
  const JobRecord& record;             ///< the record concerned (see event_kind)
  std::string_view reason;             ///< the staleness reason or error text, when there is one
  std::chrono::nanoseconds waited{0};  ///< time spent waiting so far in this claim
};

/// An event handler. An empty one means "the default" (see default_event_handler).
using EventHandler = std::function<void(const Event&)>;

/// The line printed when a stale job is found: `Detected stale job: <job> (PID: <pid>, <reason>)`.
/// Control characters of the job text are escaped.
inline std::string stale_job_line(const JobRecord& r, std::string_view reason) {
  std::string line = "Detected stale job: " + detail::escape_control(r.job) + " (PID: ";
  line += r.pid.empty() ? std::string("none") : detail::escape_control(r.pid);
  if (!reason.empty()) {
    line += ", ";
    line += reason;
  }
  line += ")";
  return line;
}

/// What happens when no handler is set: the stale-job line, a successor found on release, and
/// release failures go to `out` (stderr); everything else is silent.
inline void default_event_handler(const Event& e, std::ostream& out = std::cerr) {
  switch (e.kind) {
    case EventKind::stale_detected:
      out << stale_job_line(e.record, e.reason) << '\n';
      break;
    case EventKind::successor_found:
      out << "mama: machine '" << detail::escape_control(e.machine) << "' in "
          << detail::escape_control(e.store)
          << " was cleared as stale while this job ran and is now held by job '"
          << detail::escape_control(e.record.job) << "' (PID "
          << detail::escape_control(e.record.pid) << "); leaving it alone\n";
      break;
    case EventKind::release_failed:
      out << "mama: could not release machine '" << detail::escape_control(e.machine) << "' in "
          << detail::escape_control(e.store) << ": " << detail::escape_control(e.reason)
          << "; the next claim will detect the job as stale\n";
      break;
    case EventKind::leftover_holders:
      out << "mama: processes of job '" << detail::escape_control(e.record.job)
          << "' still hold machine '" << detail::escape_control(e.machine) << "' in "
          << detail::escape_control(e.store) << " (PID " << detail::escape_control(e.record.pid)
          << "); it stays busy until they end\n";
      break;
    case EventKind::hold_lost:
      out << "mama: lost the hold on machine '" << detail::escape_control(e.machine) << "' in "
          << detail::escape_control(e.store) << ": " << detail::escape_control(e.reason)
          << "; the job must stop\n";
      break;
    default:
      break;
  }
}

}  // namespace mama
