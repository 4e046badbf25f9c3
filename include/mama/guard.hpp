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
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <map>
#include <set>
#include <thread>
#include <string>
#include <utility>
#include <vector>

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

// The mama.xml store models every refinement of the StateStore concept (state_store.hpp).
static_assert(holding_state_store<XmlStateStore> && watchable_state_store<XmlStateStore> &&
              listing_state_store<XmlStateStore>);

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
  /// Events are delivered after the state lock is released, never inside the critical section,
  /// so a handler may open the same store.
  EventHandler on_event{};
  /// Called once, from the store's own watcher thread, when a store whose holds can be lost
  /// (the PostgreSQL store: its session could not be confirmed within the deadline) reports
  /// that this claim lost its hold. The job must stop: another host may take the machine once
  /// the holder's margin has passed. Also reported as EventKind::hold_lost.
  std::function<void(std::string_view reason)> on_lost{};
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

/// The claims that live guards of this process hold, by token: a record that names this
/// process but carries none of them is a leftover of an earlier claim of this process (its
/// release failed), not a live job. Copied into a fork child, where it names the parent's
/// claims, whose records name the parent, not the child.
class live_claims {
 public:
  static void add(const std::string& token) {
    std::lock_guard lock(mutex());
    tokens().insert_or_assign(token, std::this_thread::get_id());
  }
  static void remove(const std::string& token) noexcept {
    std::lock_guard lock(mutex());
    tokens().erase(token);
  }
  static bool contains(const std::string& token) {
    std::lock_guard lock(mutex());
    return tokens().count(token) != 0;
  }
  /// True when a live guard of another thread of this process holds `token`.
  static bool held_by_other_thread(const std::string& token) {
    std::lock_guard lock(mutex());
    const auto it = tokens().find(token);
    return it != tokens().end() && it->second != std::this_thread::get_id();
  }

 private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static std::map<std::string, std::thread::id>& tokens() {
    static std::map<std::string, std::thread::id> t;
    return t;
  }
};

/// Calls `h.on_lost(fn)` when the store's hold can report its loss (an optional refinement).
template <class Hold, class Fn>
void watch_loss(Hold& h, Fn&& fn) {
  if constexpr (requires { h.on_lost(std::function<void(std::string)>(fn)); })
    h.on_lost(std::function<void(std::string)>(std::forward<Fn>(fn)));
}

/// A live process other than this one that holds `machine`'s hold, when the store can tell
/// (an optional refinement of the transaction, `t.hold_owner(m)`).
template <class Tx>
std::optional<ProcessIdentity> hold_owner(Tx& tx, std::string_view machine) {
  if constexpr (requires {
                  { tx.hold_owner(machine) } -> std::same_as<std::optional<ProcessIdentity>>;
                })
    return tx.hold_owner(machine);
  else
    return std::nullopt;
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

/// When assess() takes the machine's hold.
enum class HoldProbe {
  token_records,  ///< only for records that carry a token (read-only looks: no lock files made)
  always,         ///< also for idle records (leftover job processes keep a machine busy)
};

/// A record judged inside a transaction: the verdict, and the machine's hold when it was free
/// (kept so that the caller can clear or claim in the same critical section).
template <class StateStore>
struct StoreAssessment {
  Assessment assessment;
  std::optional<typename StateStore::hold> hold;
  bool hold_free = false;  ///< the hold was free, or the store keeps none
};

/// Judges `record` of `machine` inside `tx` the one way every claim and every view does: the
/// machine's hold (tx.try_hold) decides rows 6-9 for records that carry a token (for holders on
/// any host when the store's holds span hosts), `probe(pid, start)` for the others. `here`
/// gives host, boot, time and stale_after; its hold fields are filled in here.
template <class StateStore, class ProbeFn>
StoreAssessment<StateStore> assess(StateStore& store, typename StateStore::transaction& tx,
                            std::string_view machine, const JobRecord& record, Observation here,
                            ProbeFn&& probe, HoldProbe when = HoldProbe::always) {
  StoreAssessment<StateStore> j;
  HoldState hs = HoldState::none;
  if (store.exact_liveness() && (when == HoldProbe::always || !record.token.empty())) {
    j.hold = tx.try_hold(machine);
    hs = j.hold ? HoldState::free : HoldState::held;
  }
  j.hold_free = !store.exact_liveness() || j.hold.has_value();
  // A PHP-written record has no token: the lock file says nothing about its holder.
  here.hold = record.token.empty() ? HoldState::none : hs;
  here.hold_spans_hosts = detail::holds_span_hosts(store);
  j.assessment = assess(record, here, std::forward<ProbeFn>(probe));
  return j;
}

/// RAII claim of one machine for one job. Move-only. See the top of this header.
///
/// Threads: a guard object belongs to one thread at a time. Claims from two threads of one
/// process exclude each other (the second waits); a claim nests only inside a claim of its own
/// thread or of an ancestor process.
///
/// Only the process that claimed may release: a guard whose destructor or release() runs in
/// another process (a fork child leaving the guard's scope, a GoogleTest death test, `exit()`
/// in a child) does nothing to the record or to the claim's locks.
template <class Clock, class ProcessProbe, class StateStore>
class StaleJobGuard {
  // Checked here rather than in the template head so that fwd.hpp can name the defaults.
  static_assert(guard_clock<Clock>, "Clock must model mama::guard_clock (see mama/clock.hpp)");
  static_assert(process_probe<ProcessProbe>,
                "ProcessProbe must model mama::process_probe (see mama/process_probe.hpp)");
  // The claim judges by holds (try_hold, exact_liveness) and waits on watch(): it requires both
  // refinements of the core concept.
  static_assert(state_store<StateStore>,
                "StateStore must model mama::state_store (see mama/state_store.hpp)");
  static_assert(holding_state_store<StateStore>,
                "StateStore must model mama::holding_state_store (see mama/state_store.hpp)");
  static_assert(watchable_state_store<StateStore>,
                "StateStore must model mama::watchable_state_store (see mama/state_store.hpp)");

 public:
  using clock_type = Clock;
  using probe_type = ProcessProbe;
  using store_type = StateStore;

  /// Claims `machine`, waiting (and clearing stale jobs) until it is free.
  /// Throws mama::error: unknown_machine, timeout, bad_record (a record nobody can judge),
  /// bad_state_file / io_error from the store, invalid_argument for a job text that is empty,
  /// not valid UTF-8 or holds control characters (checked before any waiting).
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

  /// Waits until `machine` is free, clearing stale jobs on the way exactly as a claim does, but
  /// claims nothing (`mama wait`): the file is written only to clear or stamp a job. Returns
  /// when the record is idle and its hold free. Throws what the constructor throws.
  static void wait_until_free(StateStore store, std::string machine, GuardOptions options = {},
                              Clock clock = {}, ProcessProbe probe = {}) {
    StaleJobGuard g(std::move(store), std::move(machine), std::move(options), std::move(clock),
                    std::move(probe), mode::until_free);
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
        lost_(std::move(other.lost_)),
        owner_pid_(other.owner_pid_),
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
      deliver({{EventKind::release_failed, mine_, e.what()}});
    } catch (...) {
      deliver({{EventKind::release_failed, mine_, "unknown error"}});
    }
  }

  /// Releases now instead of at scope exit. Throws mama::error when the store fails; the guard
  /// is inactive afterwards either way (the kernel hold is dropped, so the job reads as stale
  /// once its processes are gone).
  ///
  /// When processes of the job still hold the machine's hold after this claim dropped its own
  /// (children that left the job's process group and kept the inherited lock), the record is
  /// kept, naming one of them when the store can tell (EventKind::leftover_holders): the
  /// machine reads busy to this library and to the PHP tool until they end.
  ///
  /// In a process other than the one that claimed (a fork child), it only forgets the claim.
  void release() {
    if (!active_) return;
    active_ = false;
    detail::live_claims::remove(mine_.token);
    auto hold = std::move(hold_);
    hold_.reset();
    if (!claimed_here()) {
      abandon(hold);
      return;
    }
    std::vector<pending> events;
    {
      auto tx = store_.begin();
      const auto current = tx.find(machine_);
      if (!current) {
        events.push_back(
            {EventKind::successor_found, JobRecord{}, "machine no longer in the state"});
      } else if (!is_mine(*current)) {
        events.push_back({EventKind::successor_found, *current, {}});
      } else {
        std::optional<typename StateStore::hold> again;
        // Only holds that the job's processes inherit (kernel locks) can outlive the claimer; a
        // server-kept hold is this process's session, and its waiters' margin would refuse it.
        if (hold && store_.exact_liveness() && !detail::holds_span_hosts(store_)) {
          hold.reset();  // our own descriptor; job processes may share the lock
          again = tx.try_hold(machine_);
          if (!again) {
            // Name a process that holds it; when the store cannot tell, name none: the hold
            // alone then decides (never this process, which goes on living and claiming, so
            // two processes would wait on each other's leftovers forever).
            JobRecord kept = *current;
            kept.pid.clear();
            kept.start.clear();
            if (const auto owner = detail::hold_owner(tx, machine_)) {
              kept.pid = std::to_string(owner->pid);
              kept.start = owner->start ? std::to_string(owner->start) : std::string();
            }
            tx.write(machine_, kept);
            tx.commit();
            events.push_back({EventKind::leftover_holders, kept,
                              "processes of the job still hold the machine's lock; the record "
                              "is kept until they end"});
          }
        }
        if (events.empty()) {
          tx.write(machine_, previous_ ? *previous_ : JobRecord{});
          tx.commit();
          // Inside the critical section: a waiter never sees our record with a free hold.
          hold.reset();
          again.reset();
          events.push_back({EventKind::released, mine_, {}});
        }
      }
    }
    deliver(events);
  }

  /// Records `who` as the job's process in this claim's record (job_pid, job_start), keeping
  /// the token: a wrapper that runs the job as a child (`mama run`) names the process most likely
  /// to live as long as the job, so the PHP tool's `ps -p job_pid` stays true to the job if the
  /// wrapper is killed. `who` must have inherited the claim's hold. Returns false, changing
  /// nothing, when the record is no longer this claim's. Throws mama::error from the store.
  bool hand_over(ProcessIdentity who) {
    if (!active_ || !claimed_here()) return false;
    std::vector<pending> events;
    bool done = false;
    {
      auto tx = store_.begin();
      const auto current = tx.find(machine_);
      if (current && is_mine(*current)) {
        JobRecord r = mine_;
        r.pid = std::to_string(who.pid);
        r.start = who.start ? std::to_string(who.start) : std::string();
        tx.write(machine_, r);
        tx.commit();
        mine_ = std::move(r);
        done = true;
      } else {
        events.push_back({EventKind::successor_found, current ? *current : JobRecord{}, {}});
      }
    }
    deliver(events);
    return done;
  }

  /// The machine this guard claimed.
  const std::string& machine() const noexcept { return machine_; }
  /// The job fields of this claim's record.
  const JobRecord& record() const noexcept { return mine_; }
  /// This claim's token.
  const std::string& token() const noexcept { return mine_.token; }
  /// True when an ancestor held the machine and this claim runs inside it.
  bool nested() const noexcept { return previous_.has_value(); }
  /// False after release() or a move, and once the hold was lost.
  bool active() const noexcept { return active_ && !lost(); }
  /// True once the store reported that this claim lost its hold (see GuardOptions::on_lost).
  bool lost() const noexcept { return lost_ && lost_->load(); }

  StateStore& store() noexcept { return store_; }
  Clock& clock() noexcept { return clock_; }
  ProcessProbe& probe() noexcept { return probe_; }

 private:
  enum class mode { wait, once, until_free };
  struct pending {
    EventKind kind;
    JobRecord record;
    std::string reason;
    std::chrono::nanoseconds waited{};
  };

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
      throw error(errc::invalid_argument, "empty job text for machine '" +
                                              detail::escape_control(machine_) +
                                              "': give the job a description");
    if (const auto problem = detail::job_text_problem(options_.job))
      throw error(errc::invalid_argument, "the job text for machine '" +
                                              detail::escape_control(machine_) + "' in " +
                                              store_.describe() + " cannot be stored: " + *problem +
                                              "; give valid UTF-8 text without control characters");
    claim(m);
  }

  void claim(mode m) {
    const ProcessIdentity self = probe_.self();
    const std::string host = probe_.host_name();
    const std::string boot = probe_.boot_id();
    const auto started = clock_.steady_now();
    std::optional<typename StateStore::watcher> watcher;

    for (;;) {
      std::vector<pending> events;
      JobRecord record;
      std::string wait_reason;
      bool free_now = false;  // until_free: done without claiming
      {
        auto tx = store_.begin();
        const auto found = tx.find(machine_);
        if (!found)
          throw error(errc::unknown_machine, "machine '" + detail::escape_control(machine_) +
                                                 "' not found in " + store_.describe() +
                                                 "; check the name with `mama list`");
        record = *found;
        const auto now = clock_.now();

        auto [assessment, hold, hold_free] =
            assess(store_, tx, machine_, record, Observation{host, boot, now, options_.stale_after},
                  [this](int pid, std::optional<std::uint64_t> start) {
                    return probe_.check(pid, start);
                  });

        // A record of this very process that no live guard here holds is left from an earlier
        // claim (its release failed, or its job processes outlived it): never one to nest in.
        // With the hold free it is ours to clear, whatever the PID says; a held hold is job
        // processes of that claim still running.
        const bool own_dead = names_self_but_dead(record, self, host, boot);
        if (assessment.busy() && hold_free && own_dead)
          assessment = {Verdict::stale,
                        "left by an earlier claim of this process that was not released"};

        // Nest only inside a live claim of an ancestor (the PHP tool's is_ancestor rule).
        // Another thread's live claim in this process is a job beside ours, not an ancestor's.
        if (m != mode::until_free && assessment.busy() && !own_dead &&
            !detail::live_claims::held_by_other_thread(record.token) &&
            held_by_ancestor(record, host, boot)) {
          hold.reset();
          previous_ = record;
          mine_ = make_record(self, host, boot);
          tx.write(machine_, mine_);
          tx.commit();
          activate();
          events.push_back({EventKind::nested, record, {}});
        } else if (assessment.verdict == Verdict::invalid) {
          throw error(errc::bad_record, "machine '" + detail::escape_control(machine_) + "' in " +
                                            store_.describe() + ": " + assessment.reason);
        } else if (assessment.verdict == Verdict::stale) {
          events.push_back({EventKind::stale_detected, record, assessment.reason});
          tx.write(machine_, JobRecord{});
          if (hold_free && m == mode::until_free) {
            tx.commit();
            events.push_back({EventKind::stale_cleared, record, assessment.reason});
            free_now = true;
          } else if (hold_free) {
            claim_in(tx, std::move(hold), self, host, boot);
            events.push_back({EventKind::stale_cleared, record, assessment.reason});
            events.push_back({EventKind::claimed, mine_, {}, clock_.steady_now() - started});
          } else {
            tx.commit();  // the clearing stands even though leftovers keep us waiting
            events.push_back({EventKind::stale_cleared, record, assessment.reason});
            wait_reason = "job lock held by leftover processes of the previous job";
          }
        } else if (assessment.verdict == Verdict::idle) {
          if (hold_free && m == mode::until_free) {
            free_now = true;
          } else if (hold_free) {
            claim_in(tx, std::move(hold), self, host, boot);
            events.push_back({EventKind::claimed, mine_, {}, clock_.steady_now() - started});
          } else {
            wait_reason = "job lock held by leftover processes of the previous job";
          }
        } else {
          wait_reason = assessment.reason.empty() ? std::string("running") : assessment.reason;
          if (detail::needs_first_seen_stamp(record, now)) {
            // A PID-less job with no usable time: start its stale_after clock now (SPEC §3).
            record.timestamp = std::to_string(
                std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
            tx.write(machine_, record);
            tx.commit();
            wait_reason += "; stale " + std::to_string(options_.stale_after.count()) +
                           " s after it was first seen";
          }
        }
        hold.reset();
      }  // the critical section ends here: events go out after it
      deliver(events);
      if (active_ || free_now) return;

      // Busy: wait.
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
      deliver({{EventKind::waiting, record, wait_reason, waited}});
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
    activate();
    if (hold_) {
      // The store's watcher thread calls this; it must not touch the guard, which may move.
      lost_ = std::make_shared<std::atomic<bool>>(false);
      detail::watch_loss(
          *hold_, [lost = lost_, on_lost = options_.on_lost, on_event = options_.on_event,
                   machine = machine_, store = store_.describe(), rec = mine_](std::string reason) {
            if (lost->exchange(true)) return;
            try {
              const Event e{EventKind::hold_lost, machine, store, rec, reason, {}};
              if (on_event)
                on_event(e);
              else
                default_event_handler(e);
              if (on_lost) on_lost(reason);
            } catch (...) {
            }
          });
    }
  }

  void activate() {
    active_ = true;
    owner_pid_ = ::getpid();
    detail::live_claims::add(mine_.token);
  }

  bool claimed_here() const noexcept { return owner_pid_ == ::getpid(); }

  // In a process that did not claim: forget the hold without touching the claimer's lock. A
  // store's hold may need to know (a PostgreSQL session must not be closed from a fork child).
  static void abandon(std::optional<typename StateStore::hold>& hold) noexcept {
    if constexpr (requires { hold->abandon(); }) {
      if (hold) hold->abandon();
    }
    hold.reset();
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

  // A record naming this process (on this host and boot) whose claim no live guard of this
  // process holds. Token-less records (a PHP save dropped the token) name us but prove nothing.
  bool names_self_but_dead(const JobRecord& r, const ProcessIdentity& self, const std::string& host,
                           const std::string& boot) const {
    if (r.token.empty() || detail::live_claims::contains(r.token)) return false;
    if (!r.host.empty() && r.host != host) return false;
    if (!r.boot_id.empty() && r.boot_id != boot) return false;
    if (detail::php_int_cast(r.pid) != self.pid) return false;
    return r.start.empty() || r.start == std::to_string(self.start);
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

  // Events go out after the critical section (a handler may open the same store).
  void deliver(const std::vector<pending>& events) noexcept {
    for (const pending& p : events) {
      // Nobody listens and the default prints nothing for this kind: no work at all.
      if (!options_.on_event && p.kind != EventKind::stale_detected &&
          p.kind != EventKind::successor_found && p.kind != EventKind::release_failed &&
          p.kind != EventKind::leftover_holders)
        continue;
      try {
        const std::string store = store_.describe();
        const Event e{p.kind, machine_, store, p.record, p.reason, p.waited};
        if (options_.on_event)
          options_.on_event(e);
        else
          default_event_handler(e);
      } catch (...) {
        // A failing listener must not break a claim or a release.
      }
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
  std::shared_ptr<std::atomic<bool>> lost_;
  pid_t owner_pid_ = 0;
  bool active_ = false;
};

}  // namespace mama
