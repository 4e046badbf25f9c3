// mama/guard.hpp — StaleJobGuard: claim a lab machine for a job, release it at scope exit.
//
// The constructor claims (SPEC §4): lock the state, read the machine, clear a stale job or wait
// while a live one runs, then write this claim's job fields (job, PID, timestamp, host, boot,
// start time, token), keep the machine's kernel hold, save, unlock. The destructor releases:
// if the record still carries this claim's token it is cleared (or the ancestor's record is
// restored for a nested claim); if not, a waiter judged this claim stale and a successor owns
// the machine, which is left alone (invariant I4). The destructor never throws.
//
//   #include <mama/guard.hpp>
//   mama::XmlStateStore store("/usr/share/mama/mama.xml");
//   mama::StaleJobGuard<> guard(store, "test-machine", {.job = "run my-test"});
//   // ... the machine is ours until guard goes out of scope
//
// Policies (each a concept documented in its header): Clock (clock.hpp), ProcessProbe
// (process_probe.hpp), StateStore (state_store.hpp). Defaults: the real ones on mama.xml.
#pragma once

#include <sys/random.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <utility>

#include "mama/clock.hpp"
#include "mama/error.hpp"
#include "mama/events.hpp"
#include "mama/fwd.hpp"
#include "mama/process_probe.hpp"
#include "mama/record.hpp"
#include "mama/staleness.hpp"
#include "mama/state_store.hpp"
#include "mama/xml_state_store.hpp"

namespace mama {

/// How a guard claims and waits.
struct GuardOptions {
  /// The job text written into the record (`job`). Must not be empty.
  std::string job = "mama job";
  /// Give up waiting after this long (mama::error, errc::timeout); nullopt: wait forever.
  std::optional<std::chrono::nanoseconds> timeout{};
  /// The longest wait between two looks at a busy machine. Stores with a wake source (the
  /// mama.xml store) wake the waiter as soon as the holder releases or dies; this bounds the
  /// wait for holders that give no such signal (PHP-written records).
  std::chrono::nanoseconds poll_interval = std::chrono::seconds(1);
  /// Rows 4/5 of SPEC §3: a PID-less job older than this is stale.
  std::chrono::seconds stale_after{300};
  /// Receives every event; empty: mama::default_event_handler (stale-job lines to stderr).
  EventHandler on_event{};
};

namespace detail {
/// 128 random bits as 32 hex digits: unique to one claim.
inline std::string make_token() {
  unsigned char bytes[16];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot make a claim token: getrandom failed");
    }
    got += static_cast<std::size_t>(n);
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string token;
  for (unsigned char b : bytes) {
    token += hex[b >> 4];
    token += hex[b & 15];
  }
  return token;
}

/// Whether `store`'s holds decide for holders on other hosts too (an optional store trait,
/// `s.holds_span_hosts()`; false when the store does not have it).
template <class S>
bool holds_span_hosts(const S& store) noexcept {
  if constexpr (requires {
                  { store.holds_span_hosts() } -> std::convertible_to<bool>;
                })
    return store.holds_span_hosts();
  else
    return false;
}
}  // namespace detail

/// When judge() takes the machine's hold.
enum class hold_probe {
  token_records,  ///< only for records that carry a token (read-only looks: no lock files made)
  always,         ///< also for idle records (leftover job processes keep a machine busy)
};

/// A record judged inside a transaction: the verdict, and the machine's hold when it was free
/// (kept so that the caller can clear or claim in the same critical section).
template <class StateStore>
struct Judgement {
  Assessment assessment;
  std::optional<typename StateStore::hold> hold;
  bool hold_free = false;  ///< the hold was free, or the store keeps none
};

/// Judges `record` of `machine` inside `tx` the one way every claim and every view does: the
/// machine's hold (tx.try_hold) decides rows 6-9 for records that carry a token (for holders on
/// any host when the store's holds span hosts), `probe(pid, start)` for the others. `here`
/// gives host, boot, time and stale_after; its hold fields are filled in here.
template <class StateStore, class ProbeFn>
Judgement<StateStore> judge(StateStore& store, typename StateStore::transaction& tx,
                            std::string_view machine, const JobRecord& record, Observation here,
                            ProbeFn&& probe, hold_probe when = hold_probe::always) {
  Judgement<StateStore> j;
  hold_state hs = hold_state::none;
  if (store.exact_liveness() && (when == hold_probe::always || !record.token.empty())) {
    j.hold = tx.try_hold(machine);
    hs = j.hold ? hold_state::free : hold_state::held;
  }
  j.hold_free = !store.exact_liveness() || j.hold.has_value();
  // A PHP-written record has no token: the lock file says nothing about its holder.
  here.hold = record.token.empty() ? hold_state::none : hs;
  here.hold_spans_hosts = detail::holds_span_hosts(store);
  j.assessment = assess(record, here, std::forward<ProbeFn>(probe));
  return j;
}

/// RAII claim of one machine for one job. Move-only. See the top of this header.
template <class Clock, class ProcessProbe, class StateStore>
class StaleJobGuard {
  // Checked here rather than in the template head so that fwd.hpp can name the defaults.
  static_assert(guard_clock<Clock>, "Clock must model mama::guard_clock (see mama/clock.hpp)");
  static_assert(process_probe<ProcessProbe>,
                "ProcessProbe must model mama::process_probe (see mama/process_probe.hpp)");
  static_assert(state_store<StateStore>,
                "StateStore must model mama::state_store (see mama/state_store.hpp)");

 public:
  using clock_type = Clock;
  using probe_type = ProcessProbe;
  using store_type = StateStore;

  /// Claims `machine`, waiting (and clearing stale jobs) until it is free.
  /// Throws mama::error: unknown_machine, timeout, bad_record (a record nobody can judge),
  /// bad_state_file / io_error from the store, invalid_argument for an empty job text.
  StaleJobGuard(StateStore store, std::string machine, GuardOptions options = {}, Clock clock = {},
                ProcessProbe probe = {})
      : StaleJobGuard(std::move(store), std::move(machine), std::move(options), std::move(clock),
                      std::move(probe), mode::wait) {}

  /// Tries once: clears a stale job if there is one, claims a free machine, and returns nullopt
  /// without waiting when a live job holds it. Throws what the constructor throws, except timeout.
  static std::optional<StaleJobGuard> try_claim(StateStore store, std::string machine,
                                                GuardOptions options = {}, Clock clock = {},
                                                ProcessProbe probe = {}) {
    StaleJobGuard g(std::move(store), std::move(machine), std::move(options), std::move(clock),
                    std::move(probe), mode::once);
    if (!g.active_) return std::nullopt;
    return std::optional<StaleJobGuard>(std::move(g));
  }

  StaleJobGuard(StaleJobGuard&& other) noexcept
      : store_(std::move(other.store_)),
        clock_(std::move(other.clock_)),
        probe_(std::move(other.probe_)),
        machine_(std::move(other.machine_)),
        options_(std::move(other.options_)),
        mine_(std::move(other.mine_)),
        previous_(std::move(other.previous_)),
        hold_(std::move(other.hold_)),
        active_(std::exchange(other.active_, false)) {
    other.hold_.reset();
  }
  StaleJobGuard& operator=(StaleJobGuard&&) = delete;
  StaleJobGuard(const StaleJobGuard&) = delete;
  StaleJobGuard& operator=(const StaleJobGuard&) = delete;

  /// Releases the machine; errors go to the event handler (release_failed), never out.
  ~StaleJobGuard() {
    if (!active_) return;
    try {
      release();
    } catch (const std::exception& e) {
      emit(event_kind::release_failed, mine_, e.what());
    } catch (...) {
      emit(event_kind::release_failed, mine_, "unknown error");
    }
  }

  /// Releases now instead of at scope exit. Throws mama::error when the store fails; the guard
  /// is inactive afterwards either way (the kernel hold is dropped, so the job reads as stale).
  void release() {
    if (!active_) return;
    active_ = false;
    auto hold = std::move(hold_);
    hold_.reset();
    auto tx = store_.begin();
    const auto current = tx.find(machine_);
    if (!current) {
      emit(event_kind::successor_found, JobRecord{}, "machine no longer in the state");
      return;
    }
    if (!is_mine(*current)) {
      emit(event_kind::successor_found, *current, {});
      return;
    }
    tx.write(machine_, previous_ ? *previous_ : JobRecord{});
    tx.commit();
    hold.reset();  // inside the critical section: a waiter never sees our record with a free hold
    emit(event_kind::released, mine_, {});
  }

  /// The machine this guard claimed.
  const std::string& machine() const noexcept { return machine_; }
  /// The job fields this claim wrote.
  const JobRecord& record() const noexcept { return mine_; }
  /// This claim's token.
  const std::string& token() const noexcept { return mine_.token; }
  /// True when an ancestor held the machine and this claim runs inside it.
  bool nested() const noexcept { return previous_.has_value(); }
  /// False after release() or a move.
  bool active() const noexcept { return active_; }

  StateStore& store() noexcept { return store_; }
  Clock& clock() noexcept { return clock_; }
  ProcessProbe& probe() noexcept { return probe_; }

 private:
  enum class mode { wait, once };

  StaleJobGuard(StateStore store, std::string machine, GuardOptions options, Clock clock,
                ProcessProbe probe, mode m)
      : store_(std::move(store)),
        clock_(std::move(clock)),
        probe_(std::move(probe)),
        machine_(std::move(machine)),
        options_(std::move(options)) {
    if (machine_.empty())
      throw error(errc::invalid_argument, "no machine name given for " + store_.describe());
    if (options_.job.empty())
      throw error(errc::invalid_argument,
                  "empty job text for machine '" + machine_ + "': give the job a description");
    claim(m);
  }

  void claim(mode m) {
    const ProcessIdentity self = probe_.self();
    const std::string host = probe_.host_name();
    const std::string boot = probe_.boot_id();
    const auto started = clock_.steady_now();
    std::optional<typename StateStore::watcher> watcher;

    for (;;) {
      auto tx = store_.begin();
      const auto found = tx.find(machine_);
      if (!found)
        throw error(errc::unknown_machine, "machine '" + detail::escape_control(machine_) +
                                               "' not found in " + store_.describe() +
                                               "; check the name with `mama list`");
      JobRecord record = *found;

      auto [verdict, hold, hold_free] = judge(
          store_, tx, machine_, record, Observation{host, boot, clock_.now(), options_.stale_after},
          [this](int pid, std::optional<std::uint64_t> start) { return probe_.check(pid, start); });

      // Nest only inside a live claim: a claim record whose hold we just got is dead (e.g. our
      // own earlier claim whose release failed), and nesting takes no hold of its own.
      const bool ancestor_claim_dead = hold && !record.token.empty();
      if (!record.idle() && !ancestor_claim_dead && held_by_ancestor(record, host, boot)) {
        hold.reset();
        previous_ = record;
        mine_ = make_record(self, host, boot);
        tx.write(machine_, mine_);
        tx.commit();
        active_ = true;
        emit(event_kind::nested, record, {});
        return;
      }
      std::string wait_reason;
      if (verdict.verdict == verdict::invalid) {
        throw error(errc::bad_record, "machine '" + detail::escape_control(machine_) + "' in " +
                                          store_.describe() + ": " + verdict.reason);
      } else if (verdict.verdict == verdict::stale) {
        emit(event_kind::stale_detected, record, verdict.reason);
        record = JobRecord{};
        tx.write(machine_, record);
        if (hold_free) {
          claim_in(tx, std::move(hold), self, host, boot);
          emit(event_kind::stale_cleared, *found, verdict.reason);
          emit(event_kind::claimed, mine_, {}, clock_.steady_now() - started);
          return;
        }
        tx.commit();  // the clearing stands even though leftovers keep us waiting
        emit(event_kind::stale_cleared, *found, verdict.reason);
        wait_reason = "job lock held by leftover processes of the previous job";
      } else if (verdict.verdict == verdict::idle) {
        if (hold_free) {
          claim_in(tx, std::move(hold), self, host, boot);
          emit(event_kind::claimed, mine_, {}, clock_.steady_now() - started);
          return;
        }
        wait_reason = "job lock held by leftover processes of the previous job";
      } else {
        wait_reason = verdict.reason.empty() ? std::string("running") : verdict.reason;
      }

      // Busy: leave the critical section, then wait.
      hold.reset();
      { auto done = std::move(tx); }
      if (m == mode::once) return;
      const auto waited = clock_.steady_now() - started;
      if (options_.timeout && waited >= *options_.timeout)
        throw error(
            errc::timeout,
            "timed out after " + seconds_text(waited) + " waiting for machine '" +
                detail::escape_control(machine_) + "' in " + store_.describe() + ": held by job '" +
                detail::escape_control(record.job) + "' (PID " +
                (record.pid.empty() ? std::string("none") : detail::escape_control(record.pid)) +
                ", " + wait_reason + "); wait longer or check that job");
      emit(event_kind::waiting, record, wait_reason, waited);
      if (!watcher) {
        // Look once more right after subscribing, so a release between our look and the
        // subscription is not missed.
        watcher.emplace(store_.watch(machine_));
        continue;
      }
      auto slice = options_.poll_interval;
      if (options_.timeout)
        slice = std::min<std::chrono::nanoseconds>(slice, *options_.timeout - waited);
      clock_.wait_for(slice, watcher->fd());
      watcher->drain();
    }
  }

  void claim_in(typename StateStore::transaction& tx, std::optional<typename StateStore::hold> hold,
                const ProcessIdentity& self, const std::string& host, const std::string& boot) {
    mine_ = make_record(self, host, boot);
    tx.write(machine_, mine_);
    tx.commit();
    hold_ = std::move(hold);
    active_ = true;
  }

  JobRecord make_record(const ProcessIdentity& self, const std::string& host,
                        const std::string& boot) const {
    JobRecord r;
    r.job = options_.job;
    r.pid = std::to_string(self.pid);
    r.timestamp = std::to_string(
        std::chrono::duration_cast<std::chrono::seconds>(clock_.now().time_since_epoch()).count());
    r.host = host;
    r.boot_id = boot;
    r.start = self.start ? std::to_string(self.start) : std::string();
    r.token = detail::make_token();
    return r;
  }

  // mama's is_ancestor rule: a job recorded by this process or one of its ancestors (on this
  // host and boot, started when recorded) is one we run inside of.
  bool held_by_ancestor(const JobRecord& r, const std::string& host, const std::string& boot) {
    if (!r.host.empty() && r.host != host) return false;
    if (!r.boot_id.empty() && r.boot_id != boot) return false;
    const auto pid = detail::parse_decimal<std::int32_t>(r.pid);
    if (!pid || *pid <= 0) return false;
    std::optional<std::uint64_t> start;
    if (!r.start.empty()) {
      start = detail::parse_decimal<std::uint64_t>(r.start);
      if (!start) return false;
    }
    return probe_.is_ancestor(*pid, start);
  }

  // Ours: our token; or, when a PHP save dropped the fields it does not know, our PID and job.
  bool is_mine(const JobRecord& r) const {
    if (!r.token.empty()) return r.token == mine_.token;
    return !r.job.empty() && r.job == mine_.job && r.pid == mine_.pid;
  }

  void emit(event_kind kind, const JobRecord& r, std::string_view reason,
            std::chrono::nanoseconds waited = {}) noexcept {
    // Nobody listens and the default prints nothing for this kind: no work at all.
    if (!options_.on_event && kind != event_kind::stale_detected &&
        kind != event_kind::successor_found && kind != event_kind::release_failed)
      return;
    try {
      const std::string store = store_.describe();
      const Event e{kind, machine_, store, r, reason, waited};
      if (options_.on_event)
        options_.on_event(e);
      else
        default_event_handler(e);
    } catch (...) {
      // A failing listener must not break a claim or a release.
    }
  }

  static std::string seconds_text(std::chrono::nanoseconds d) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    return std::to_string(ms / 1000) + "." + std::to_string(ms % 1000 / 100) + " s";
  }

  [[no_unique_address]] StateStore store_;
  [[no_unique_address]] Clock clock_;
  [[no_unique_address]] ProcessProbe probe_;
  std::string machine_;
  GuardOptions options_;
  JobRecord mine_;
  std::optional<JobRecord> previous_;
  std::optional<typename StateStore::hold> hold_;
  bool active_ = false;
};

}  // namespace mama
