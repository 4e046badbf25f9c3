// mama/state_store.hpp — the StateStore policy: machine records behind one exclusive lock.
//
// A store hands out transactions. A transaction is one critical section: begin() takes the
// exclusive lock and reads the state; find()/write() look at and stage job fields; commit()
// saves what was staged; the transaction's destructor unlocks (without saving what was not
// committed). Deciding that a job is stale and clearing it happen inside one transaction.
//
// A store may also keep a *hold* per machine: a kernel lock that a claim takes for the job's
// whole life and that the kernel drops when the last process holding it dies. try_hold() takes
// it without blocking; getting it means every earlier holder is gone. Where exact_liveness() is
// false, holds are not evidence and the PID rules of SPEC §3 decide. A store may offer a wake
// descriptor through watch(): it becomes readable when the machine may have been released.
//
// The core concept, `state_store`, is what a store that only records needs; the refinements add
// what waiting and deciding by kernel locks use. StaleJobGuard needs only the core: with
// holding_state_store the holds are its second signal (without, the PID rules decide), with
// watchable_state_store a waiter wakes at once (without, it polls). `mama list`/`clear all` and
// MAC lookup need listing_state_store.
//
// | Expression                | Returns                     | Meaning (E: may throw mama::error) |
// |---------------------------|-----------------------------|------------------------------------|
// | **state_store** (core)    |                             | S copyable, S::transaction movable |
// | `s.begin()`               | `S::transaction`            | lock, recover, read (E)            |
// | `s.describe()`            | `std::string`               | what messages name (the file)      |
// | `t.find(m)`               | `optional<JobRecord>`       | m's job fields; nullopt: unknown m |
// | `t.write(m, r)`           | `void`                      | stage m's job fields (E)           |
// | `t.commit()`              | `void`                      | save what was staged, durably (E)  |
// | **holding_state_store**   |                             | S::hold movable                    |
// | `s.exact_liveness()`      | `bool`                      | holds decide for token records     |
// | `t.try_hold(m)`           | `optional<S::hold>`         | m's kernel lock if free (E)        |
// | **watchable_state_store** |                             |                                    |
// | `s.watch(m)`              | `S::watcher`                | wake source for a waiter (E)       |
// | `w.fd()`, `w.drain()`     | `int`, `void`               | readable on change (-1: none)      |
// | **listing_state_store**   |                             |                                    |
// | `t.machines()`            | `vector<MachineInfo>`       | every machine, in order (E)        |
// | `for_each_machine(t, fn)` | `void`                      | fn(const MachineInfo&) per machine |
// |                           |                             | in order (E); free function, below |
// | **optional** (detected)   |                             |                                    |
// | `s.holds_span_hosts()`    | `bool`                      | holds decide across hosts          |
// | `t.hold_owner(m)`         | `optional<ProcessIdentity>` | a live holder of m's hold          |
// | `h.on_lost(fn)`           | `void`                      | fn called once if the hold is lost |
// | `t.for_each_machine(fn)`  | `void`                      | as the free function, one machine  |
// |                           |                             | at a time (no vector of them)      |
//
// A sweep (`mama list`, `info`, `stats`, `clear all`, MAC lookup) reads machines through the
// free function mama::for_each_machine(t, fn): it calls the transaction's own for_each_machine
// when there is one (a store that hands out one machine at a time, reusing one object, so that
// the caller keeps only what it shows), else iterates t.machines(). `fn` must copy what it keeps:
// the MachineInfo it is given may be reused for the next machine.
//
// A store is a handle: the guard keeps a copy of the store it is given, so every copy must reach
// the same state (a path, a connection string, a shared_ptr to the records). A store whose copies
// each hold their own records would let a guard write to its private copy; MemoryStateStore
// shares its state between copies for that reason.
//
// Holds are movable; destroying one releases the kernel lock (unless child processes that
// inherited it still run). Models: MemoryStateStore (here), XmlStateStore (asserted in
// guard.hpp), PgStateStore: all four concepts.
#pragma once

#include <atomic>
#include <concepts>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mama/error.hpp"
#include "mama/record.hpp"

namespace mama {

/// The core StateStore policy: records behind one lock (see the table at the top).
template <class S>
concept state_store = std::copy_constructible<S> && std::movable<typename S::transaction> &&
    requires(S& s, const S& cs) {
  { s.begin() } -> std::same_as<typename S::transaction>;
  { cs.describe() } -> std::convertible_to<std::string>;
} && requires(typename S::transaction& t, const typename S::transaction& ct, std::string_view m,
              const JobRecord& r) {
  { ct.find(m) } -> std::same_as<std::optional<JobRecord>>;
  { t.write(m, r) } -> std::same_as<void>;
  { t.commit() } -> std::same_as<void>;
};

/// A store that keeps a kernel hold per machine (try_hold) and says whether holds decide.
template <class S>
concept holding_state_store = state_store<S> && std::movable<typename S::hold> &&
    requires(const S& cs, typename S::transaction& t, std::string_view m) {
  { cs.exact_liveness() } -> std::same_as<bool>;
  { t.try_hold(m) } -> std::same_as<std::optional<typename S::hold>>;
};

/// A store that offers a wake source for a waiter (watch).
template <class S>
concept watchable_state_store = state_store<S> &&
    requires(S& s, std::string_view m, typename S::watcher& w) {
  { s.watch(m) } -> std::same_as<typename S::watcher>;
  { w.fd() } -> std::same_as<int>;
  { w.drain() } -> std::same_as<void>;
};

/// A store whose transactions list every machine (machines()).
template <class S>
concept listing_state_store = state_store<S> && requires(const typename S::transaction& ct) {
  { ct.machines() } -> std::same_as<std::vector<MachineInfo>>;
};

/// Calls `fn(const MachineInfo&)` for every machine of transaction `t`, in order: through
/// `t.for_each_machine(fn)` when the transaction has it, else over `t.machines()`. The
/// MachineInfo given to `fn` is valid only during the call. Throws what the store throws.
template <class Transaction, class Fn>
void for_each_machine(Transaction& t, Fn&& fn) {
  if constexpr (requires { t.for_each_machine(fn); }) {
    t.for_each_machine(fn);
  } else {
    for (const MachineInfo& m : t.machines()) fn(m);
  }
}

namespace detail {
// What the guard and assess() use of the refinements, so that a store modelling only the core
// concept drives them too: without holds the PID rules of SPEC §3 decide (exact_liveness false),
// and without watch() a waiter polls every GuardOptions::poll_interval. Detected by member, not
// by concept, so that a view of a store (a sweep's wrapper with try_hold and exact_liveness but
// no begin()) keeps its holds.
struct no_hold {};
struct no_watcher {
  int fd() const noexcept { return -1; }
  void drain() noexcept {}
};
template <class S>
struct hold_of {
  using type = no_hold;
};
template <class S>
requires requires { typename S::hold; }
struct hold_of<S> {
  using type = typename S::hold;
};
/// S::hold, or no_hold for a store without holds.
template <class S>
using hold_t = typename hold_of<S>::type;

template <class S>
bool exact_liveness(const S& store) noexcept {
  if constexpr (requires { store.exact_liveness(); })
    return store.exact_liveness();
  else
    return false;
}
template <class S>
std::optional<hold_t<S>> try_hold(typename S::transaction& tx, std::string_view machine) {
  if constexpr (requires { tx.try_hold(machine); })
    return tx.try_hold(machine);
  else
    return std::nullopt;
}
template <class S>
auto watch(S& store, std::string_view machine) {
  if constexpr (requires { store.watch(machine); })
    return store.watch(machine);
  else
    return no_watcher{};
}
}  // namespace detail

/// A store in memory, for tests, benchmarks and programs that keep state elsewhere. Copies
/// share one state, protected by a mutex, so threads of one process can race on it. Holds are
/// simulated: a hold lives as long as its object. It can be told to fail its next commit.
class MemoryStateStore {
  struct State;

 public:
  /// A simulated kernel lock on one machine.
  class hold {
   public:
    hold(hold&& other) noexcept
        : state_(std::move(other.state_)), machine_(std::move(other.machine_)) {}
    hold& operator=(hold&& other) noexcept {
      if (this != &other) {
        release();
        state_ = std::move(other.state_);
        machine_ = std::move(other.machine_);
      }
      return *this;
    }
    ~hold() { release(); }

   private:
    friend class MemoryStateStore;
    hold(std::shared_ptr<State> state, std::string machine)
        : state_(std::move(state)), machine_(std::move(machine)) {}
    void release() noexcept {
      if (!state_) return;
      std::function<void()> then;
      {
        std::lock_guard lock(state_->holds_mutex);
        state_->held.erase(machine_);
        if (const auto it = state_->on_release.find(machine_); it != state_->on_release.end()) {
          then = std::move(it->second);
          state_->on_release.erase(it);
        }
      }
      state_.reset();
      if (then) then();
    }
    std::shared_ptr<State> state_;
    std::string machine_;
  };

  /// No wake source: waiting falls back to the poll interval of the guard.
  struct watcher {
    int fd() const noexcept { return -1; }
    void drain() noexcept {}
  };

  class transaction {
   public:
    transaction(transaction&&) noexcept = default;
    transaction& operator=(transaction&&) noexcept = default;

    std::optional<JobRecord> find(std::string_view m) const {
      const auto it = index_of(m);
      if (it == staged_.size()) return std::nullopt;
      return staged_[it].job;
    }
    std::vector<MachineInfo> machines() const { return staged_; }
    /// fn(const MachineInfo&) for each machine, in order, without copying them.
    template <class Fn>
    void for_each_machine(Fn&& fn) const {
      ++state_->for_each_calls;
      for (const MachineInfo& m : staged_) fn(m);
    }
    void write(std::string_view m, const JobRecord& r) {
      const auto it = index_of(m);
      if (it == staged_.size())
        throw error(errc::unknown_machine,
                    "machine '" + std::string(m) + "' not found in " + state_->name);
      staged_[it].job = r;
      dirty_ = true;
    }
    std::optional<hold> try_hold(std::string_view m) {
      std::lock_guard lock(state_->holds_mutex);
      if (!state_->held.insert(std::string(m)).second) return std::nullopt;
      return hold(state_, std::string(m));
    }
    void commit() {
      if (state_->fail_next_commit) {
        state_->fail_next_commit = false;
        throw error(errc::io_error, "cannot save " + state_->name + ": injected failure");
      }
      if (!dirty_) return;
      state_->machines = staged_;
      ++state_->commits;
      dirty_ = false;
    }

   private:
    friend class MemoryStateStore;
    explicit transaction(std::shared_ptr<State> state)
        : state_(std::move(state)), lock_(state_->mutex), staged_(state_->machines) {}
    std::size_t index_of(std::string_view m) const {
      for (std::size_t i = 0; i < staged_.size(); ++i)
        if (staged_[i].name == m) return i;
      return staged_.size();
    }
    std::shared_ptr<State> state_;
    std::unique_lock<std::mutex> lock_;
    std::vector<MachineInfo> staged_;
    bool dirty_ = false;
  };

  /// An empty store. `exact_liveness`: whether simulated holds decide liveness (as the mama.xml
  /// store's lock files do) or the PID rules do (as for records the PHP tool wrote).
  explicit MemoryStateStore(bool exact_liveness = true) : state_(std::make_shared<State>()) {
    state_->exact = exact_liveness;
  }

  transaction begin() { return transaction(state_); }
  std::string describe() const { return state_->name; }
  bool exact_liveness() const noexcept { return state_->exact; }
  watcher watch(std::string_view) const noexcept { return {}; }

  // --- set-up and inspection for tests (each takes the lock itself) ---

  /// Adds a machine with `job` fields and, optionally, other fields (file order).
  MemoryStateStore& add_machine(std::string name, JobRecord job = {},
                                std::vector<std::pair<std::string, std::string>> fields = {}) {
    std::lock_guard lock(state_->mutex);
    state_->machines.push_back({std::move(name), std::move(fields), std::move(job)});
    return *this;
  }
  /// The job fields of `name` right now (throws if unknown).
  JobRecord record(std::string_view name) const {
    std::lock_guard lock(state_->mutex);
    for (const auto& m : state_->machines)
      if (m.name == name) return m.job;
    throw error(errc::unknown_machine, "machine '" + std::string(name) + "' not found");
  }
  /// Overwrites the job fields of `name`, as another tool would.
  void set_record(std::string_view name, const JobRecord& r) {
    auto t = begin();
    t.write(name, r);
    t.commit();
  }
  /// Takes `name`'s hold for the caller (a live holder elsewhere); nullopt if held.
  std::optional<hold> hold_for_test(std::string_view name) {
    std::lock_guard lock(state_->holds_mutex);
    if (!state_->held.insert(std::string(name)).second) return std::nullopt;
    return hold(state_, std::string(name));
  }
  /// Calls `fn` once, right after the next release of `name`'s hold (a test takes the hold
  /// there to play a job process that still holds the machine's lock).
  void on_hold_released(std::string_view name, std::function<void()> fn) {
    std::lock_guard lock(state_->holds_mutex);
    state_->on_release.insert_or_assign(std::string(name), std::move(fn));
  }
  /// Makes the next commit throw mama::error(io_error) without saving.
  void fail_next_commit() {
    std::lock_guard lock(state_->mutex);
    state_->fail_next_commit = true;
  }
  /// How many times a transaction's for_each_machine ran (a test sees that sweeps use it).
  std::size_t for_each_calls() const { return state_->for_each_calls.load(); }
  /// How many commits saved something.
  std::size_t commits() const {
    std::lock_guard lock(state_->mutex);
    return state_->commits;
  }

 private:
  struct State {
    std::mutex mutex;
    std::vector<MachineInfo> machines;
    std::mutex holds_mutex;
    std::set<std::string, std::less<>> held;
    std::map<std::string, std::function<void()>, std::less<>> on_release;
    std::string name = "<memory>";
    bool exact = true;
    bool fail_next_commit = false;
    std::size_t commits = 0;
    std::atomic<std::size_t> for_each_calls{0};
  };
  std::shared_ptr<State> state_;
};
static_assert(state_store<MemoryStateStore>);
static_assert(holding_state_store<MemoryStateStore>);
static_assert(watchable_state_store<MemoryStateStore>);
static_assert(listing_state_store<MemoryStateStore>);

}  // namespace mama
