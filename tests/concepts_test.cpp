// tests/concepts_test.cpp — the three policy concepts accept the shipped models and minimal
// user types, and reject types that miss a member or return the wrong type. Everything here is
// decided at compile time; the one TEST_CASE only makes the file a test that CTest runs.
#include <catch2/catch.hpp>
#include <chrono>
#include <mama/clock.hpp>
#include <mama/guard.hpp>
#include <mama/process_probe.hpp>
#include <mama/state_store.hpp>
#include <mama/xml_state_store.hpp>
#include <optional>
#include <string>
#include <vector>

namespace {

using sys_tp = std::chrono::system_clock::time_point;
using steady_tp = std::chrono::steady_clock::time_point;
using opt_start = std::optional<std::uint64_t>;

// --- Clock ---------------------------------------------------------------------------------

struct MinimalClock {
  sys_tp now() const { return {}; }
  steady_tp steady_now() const { return {}; }
  bool wait_for(std::chrono::nanoseconds, int) { return false; }
};
struct ClockWithoutSteady {
  sys_tp now() const { return {}; }
  bool wait_for(std::chrono::nanoseconds, int) { return false; }
};
struct ClockWithoutWait {
  sys_tp now() const { return {}; }
  steady_tp steady_now() const { return {}; }
};
struct ClockNowIsSteady {  // wall time must be system_clock: it is persisted in the file
  steady_tp now() const { return {}; }
  steady_tp steady_now() const { return {}; }
  bool wait_for(std::chrono::nanoseconds, int) { return false; }
};
struct ClockWaitReturnsVoid {
  sys_tp now() const { return {}; }
  steady_tp steady_now() const { return {}; }
  void wait_for(std::chrono::nanoseconds, int) {}
};
struct ClockWaitWithoutFd {  // cannot be woken by a store's wake descriptor
  sys_tp now() const { return {}; }
  steady_tp steady_now() const { return {}; }
  bool wait_for(std::chrono::nanoseconds) { return false; }
};

static_assert(mama::guard_clock<mama::SystemClock>);
static_assert(mama::guard_clock<mama::ManualClock>);
static_assert(mama::guard_clock<MinimalClock>);
static_assert(!mama::guard_clock<ClockWithoutSteady>);
static_assert(!mama::guard_clock<ClockWithoutWait>);
static_assert(!mama::guard_clock<ClockNowIsSteady>);
static_assert(!mama::guard_clock<ClockWaitReturnsVoid>);
static_assert(!mama::guard_clock<ClockWaitWithoutFd>);
static_assert(!mama::guard_clock<int>);

// --- ProcessProbe --------------------------------------------------------------------------

struct MinimalProbe {
  mama::Liveness check(int, opt_start) const { return mama::Liveness::alive; }
  mama::ProcessIdentity self() const { return {1, 1}; }
  std::string host_name() const { return "h"; }
  const char* boot_id() const { return "b"; }  // convertible to std::string is enough
  bool is_ancestor(int, opt_start) const { return false; }
};
struct ProbeWithoutAncestor {
  mama::Liveness check(int, opt_start) const { return mama::Liveness::alive; }
  mama::ProcessIdentity self() const { return {1, 1}; }
  std::string host_name() const { return "h"; }
  std::string boot_id() const { return "b"; }
};
struct ProbeCheckReturnsBool {  // alive/dead is not enough: reused and unknown matter
  bool check(int, opt_start) const { return true; }
  mama::ProcessIdentity self() const { return {1, 1}; }
  std::string host_name() const { return "h"; }
  std::string boot_id() const { return "b"; }
  bool is_ancestor(int, opt_start) const { return false; }
};
struct ProbeSelfReturnsPid {
  mama::Liveness check(int, opt_start) const { return mama::Liveness::alive; }
  int self() const { return 1; }
  std::string host_name() const { return "h"; }
  std::string boot_id() const { return "b"; }
  bool is_ancestor(int, opt_start) const { return false; }
};
struct ProbeHostIsInt {
  mama::Liveness check(int, opt_start) const { return mama::Liveness::alive; }
  mama::ProcessIdentity self() const { return {1, 1}; }
  int host_name() const { return 0; }
  std::string boot_id() const { return "b"; }
  bool is_ancestor(int, opt_start) const { return false; }
};
struct ProbeWithoutBootId {
  mama::Liveness check(int, opt_start) const { return mama::Liveness::alive; }
  mama::ProcessIdentity self() const { return {1, 1}; }
  std::string host_name() const { return "h"; }
  bool is_ancestor(int, opt_start) const { return false; }
};

static_assert(mama::process_probe<mama::ProcProbe>);
static_assert(mama::process_probe<mama::FakeProbe>);
static_assert(mama::process_probe<MinimalProbe>);
static_assert(!mama::process_probe<ProbeWithoutAncestor>);
static_assert(!mama::process_probe<ProbeCheckReturnsBool>);
static_assert(!mama::process_probe<ProbeSelfReturnsPid>);
static_assert(!mama::process_probe<ProbeHostIsInt>);
static_assert(!mama::process_probe<ProbeWithoutBootId>);

// --- StateStore ----------------------------------------------------------------------------

// The smallest conforming store, parameterised so each negative case breaks exactly one thing.
struct Ok {};
struct CommitReturnsBool {};
struct FindReturnsRecord {};
struct NoWatch {};
struct HoldNotMovable {};
struct NoExactLiveness {};

template <class Variant>
struct SkeletonStore {
  struct hold {
    hold() = default;
    hold(hold&&) noexcept = default;
    hold& operator=(hold&&) noexcept = default;
  };
  struct pinned_hold {
    pinned_hold() = default;
    pinned_hold(pinned_hold&&) = delete;
  };
  struct watcher {
    int fd() const { return -1; }
    void drain() {}
  };
  struct transaction {
    auto find(std::string_view) const {
      if constexpr (std::is_same_v<Variant, FindReturnsRecord>)
        return mama::JobRecord{};
      else
        return std::optional<mama::JobRecord>{};
    }
    std::vector<mama::MachineInfo> machines() const { return {}; }
    void write(std::string_view, const mama::JobRecord&) {}
    auto try_hold(std::string_view) {
      if constexpr (std::is_same_v<Variant, HoldNotMovable>)
        return std::optional<pinned_hold>{};
      else
        return std::optional<hold>{};
    }
    auto commit() {
      if constexpr (std::is_same_v<Variant, CommitReturnsBool>) return true;
    }
  };
  using hold_type = std::conditional_t<std::is_same_v<Variant, HoldNotMovable>, pinned_hold, hold>;

  transaction begin() { return {}; }
  std::string describe() const { return "skeleton"; }
  bool exact_liveness() const requires(!std::is_same_v<Variant, NoExactLiveness>) { return false; }
  watcher watch(std::string_view) requires(!std::is_same_v<Variant, NoWatch>) { return {}; }
};
// `hold` must name what try_hold returns; alias it per variant.
template <class V>
struct Store : SkeletonStore<V> {
  using hold = typename SkeletonStore<V>::hold_type;
};

// A store whose transaction has no commit().
struct StoreWithoutCommit {
  struct hold {};
  struct watcher {
    int fd() const { return -1; }
    void drain() {}
  };
  struct transaction {
    std::optional<mama::JobRecord> find(std::string_view) const { return {}; }
    std::vector<mama::MachineInfo> machines() const { return {}; }
    void write(std::string_view, const mama::JobRecord&) {}
    std::optional<hold> try_hold(std::string_view) { return {}; }
  };
  transaction begin() { return {}; }
  std::string describe() const { return "x"; }
  bool exact_liveness() const { return false; }
  watcher watch(std::string_view) { return {}; }
};

// A store that only records: begin, find, write, commit, describe.
struct RecordingStore {
  struct transaction {
    std::optional<mama::JobRecord> find(std::string_view) const { return {}; }
    void write(std::string_view, const mama::JobRecord&) {}
    void commit() {}
  };
  transaction begin() { return {}; }
  std::string describe() const { return "recording"; }
};

// A store that cannot be copied: the guard holds its store by value and tests keep a copy.
struct StoreNotCopyable : Store<Ok> {
  StoreNotCopyable() = default;
  StoreNotCopyable(const StoreNotCopyable&) = delete;
  StoreNotCopyable(StoreNotCopyable&&) = default;
};

static_assert(mama::state_store<mama::MemoryStateStore>);
static_assert(mama::state_store<mama::XmlStateStore>);
static_assert(mama::state_store<Store<Ok>>);
static_assert(!mama::state_store<StoreWithoutCommit>);
static_assert(!mama::state_store<Store<CommitReturnsBool>>);
static_assert(!mama::state_store<Store<FindReturnsRecord>>);
static_assert(mama::holding_state_store<Store<Ok>>);
static_assert(mama::watchable_state_store<Store<Ok>>);
static_assert(mama::listing_state_store<Store<Ok>>);
static_assert(mama::holding_state_store<mama::MemoryStateStore>);
static_assert(mama::watchable_state_store<mama::XmlStateStore>);
static_assert(mama::listing_state_store<mama::XmlStateStore>);
// Each refinement misses exactly what it adds; the core is still there.
static_assert(mama::state_store<Store<NoWatch>> && !mama::watchable_state_store<Store<NoWatch>>);
static_assert(mama::state_store<Store<HoldNotMovable>> &&
              !mama::holding_state_store<Store<HoldNotMovable>>);
static_assert(mama::state_store<Store<NoExactLiveness>> &&
              !mama::holding_state_store<Store<NoExactLiveness>>);
// A store that only records: the core, and no refinement.
static_assert(mama::state_store<RecordingStore>);
static_assert(!mama::holding_state_store<RecordingStore>);
static_assert(!mama::watchable_state_store<RecordingStore>);
static_assert(!mama::listing_state_store<RecordingStore>);
static_assert(!mama::state_store<StoreNotCopyable>);

static_assert(
    std::is_same_v<mama::JobGuard,
                   mama::StaleJobGuard<mama::SystemClock, mama::ProcProbe, mama::XmlStateStore>>);

}  // namespace

// The guard composes any conforming policies: an explicit instantiation compiles every member
// (claim, release, hand_over, wait_until_free, ...), which sizeof would not.
template class mama::StaleJobGuard<MinimalClock, MinimalProbe, Store<Ok>>;
template class mama::StaleJobGuard<mama::SystemClock, mama::ProcProbe, mama::XmlStateStore>;
template class mama::StaleJobGuard<mama::SystemClock, mama::ProcProbe, mama::MemoryStateStore>;
template class mama::StaleJobGuard<mama::SystemClock, mama::FakeProbe, mama::XmlStateStore>;
template class mama::StaleJobGuard<mama::SystemClock, mama::FakeProbe, mama::MemoryStateStore>;
template class mama::StaleJobGuard<mama::ManualClock, mama::ProcProbe, mama::XmlStateStore>;
template class mama::StaleJobGuard<mama::ManualClock, mama::ProcProbe, mama::MemoryStateStore>;
template class mama::StaleJobGuard<mama::ManualClock, mama::FakeProbe, mama::XmlStateStore>;
template class mama::StaleJobGuard<mama::ManualClock, mama::FakeProbe, mama::MemoryStateStore>;

TEST_CASE("policy concepts accept the shipped models and reject broken types", "[concepts]") {
  // The static_asserts above are the test; this runs a claim on the minimal types: the skeleton
  // store knows no machine, so the claim reaches its lookup and says so.
  using Minimal = mama::StaleJobGuard<MinimalClock, MinimalProbe, Store<Ok>>;
  try {
    Minimal guard(Store<Ok>{}, "m", {.job = "j"});
    FAIL("a claim on a store without machines succeeded");
  } catch (const mama::error& e) {
    CHECK(e.code() == mama::errc::unknown_machine);
    CHECK(std::string(e.what()) ==
          "machine 'm' not found in skeleton; check the name with `mama list`");
  }
  CHECK(mama::state_store<Store<Ok>>);
  CHECK_FALSE(mama::state_store<StoreWithoutCommit>);
}
