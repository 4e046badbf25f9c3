// mama/clear.hpp — clear a machine's job outside a claim (`mama clear`), judged the way a claim
// judges it.
//
//   auto tx = store.begin();
//   auto d = mama::decide_clear(store, tx, "m", here, probe_fn, /*force=*/false);
//   tx.commit();                                  // the decision and the write are one section
//   mama::report_clear(d, store.describe(), handler);   // events after the critical section
//
// decide_clear judges the record inside the caller's transaction with mama::assess (probing the
// hold only for records that carry a token: a read of idle machines makes no lock files) and
// stages the clearing of a stale job, or of a live one when `force` is set. It never commits,
// so several machines can be decided in one critical section (`mama clear all`).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "mama/events.hpp"
#include "mama/guard.hpp"
#include "mama/record.hpp"
#include "mama/staleness.hpp"

namespace mama {

/// What decide_clear did with one machine.
enum class ClearOutcome {
  idle,     ///< no job (or an idle record): nothing to clear
  cleared,  ///< the job was stale (or forced): its clearing is staged in the transaction
  left,     ///< a live job holds the machine and `force` was not set: nothing staged
};

/// The decision for one machine; report it with report_clear after the commit.
struct ClearDecision {
  ClearOutcome what = ClearOutcome::idle;
  std::string machine;
  JobRecord record;       ///< the record as it was before clearing
  Assessment assessment;  ///< why (the staleness reason, or why the job counts as live)
  bool forced = false;    ///< cleared although the job was live
};

/// Judges `machine`'s record in `tx` and stages its clearing when it is stale or `force` is
/// set. `here` gives host, boot, time and stale_after; `probe(pid, start)` answers for records
/// without a token. Does not commit. Throws mama::error from the store.
template <class StateStore, class ProbeFn>
ClearDecision decide_clear(StateStore& store, typename StateStore::transaction& tx,
                           std::string_view machine, const Observation& here, ProbeFn&& probe,
                           bool force) {
  ClearDecision d;
  d.machine = std::string(machine);
  const auto record = tx.find(machine);
  if (!record || record->idle()) return d;
  d.record = *record;
  d.assessment = assess(store, tx, machine, *record, here, std::forward<ProbeFn>(probe),
                       HoldProbe::token_records)
                     .assessment;
  const Verdict v = d.assessment.verdict;
  if (v == Verdict::idle) return d;
  if (v == Verdict::stale || force) {
    tx.write(machine, JobRecord{});
    d.what = ClearOutcome::cleared;
    d.forced = v != Verdict::stale;
    return d;
  }
  d.what = ClearOutcome::left;
  return d;
}

/// After the commit: the event of a cleared decision (EventKind::stale_cleared, or
/// forced_clear) to `handler` (empty: default_event_handler). Nothing for the other outcomes.
inline void report_clear(const ClearDecision& d, std::string_view store_description,
                         const EventHandler& handler) {
  if (d.what != ClearOutcome::cleared) return;
  const Event e{d.forced ? EventKind::forced_clear : EventKind::stale_cleared,
                d.machine,
                store_description,
                d.record,
                d.assessment.reason,
                {}};
  if (handler)
    handler(e);
  else
    default_event_handler(e);
}

}  // namespace mama
