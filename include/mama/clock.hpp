// mama/clock.hpp — the Clock policy: what time it is, and a way to wait.
//
// The guard reads wall time for the job_timestamp it writes and steady time for its deadlines,
// and it waits between attempts through the clock, so a fake clock makes waiting instant and
// deterministic. A wait may be cut short by a "wake descriptor" that a store provides (a file
// descriptor that becomes readable when the state may have changed); -1 means "just wait".
//
// | Expression          | Returns                               | Throws | Meaning                           |
// |---------------------|---------------------------------------|--------|-----------------------------------|
// | `c.now()`           | `std::chrono::system_clock::time_point` | no   | wall time, persisted in the file  |
// | `c.steady_now()`    | `std::chrono::steady_clock::time_point` | no   | monotonic time, for deadlines     |
// | `c.wait_for(d, fd)` | `bool`                                | no     | wait up to `d` or until `fd` is readable; true when woken by `fd` |
#pragma once

#include <poll.h>
#include <time.h>

#include <cerrno>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace mama {

/// The Clock policy (see the table at the top of this header).
template <class C>
concept guard_clock = requires(C& c, std::chrono::nanoseconds d, int wake_fd) {
  { c.now() } -> std::same_as<std::chrono::system_clock::time_point>;
  { c.steady_now() } -> std::same_as<std::chrono::steady_clock::time_point>;
  { c.wait_for(d, wake_fd) } -> std::same_as<bool>;
};

/// The real clock: system and steady time, waiting with poll(2).
class SystemClock {
 public:
  std::chrono::system_clock::time_point now() const noexcept {
    return std::chrono::system_clock::now();
  }
  std::chrono::steady_clock::time_point steady_now() const noexcept {
    return std::chrono::steady_clock::now();
  }
  /// Waits up to `d`, or until `wake_fd` (when not -1) is readable. Returns true when woken by
  /// the descriptor. Signals that interrupt the wait end it early (returns false).
  bool wait_for(std::chrono::nanoseconds d, int wake_fd) const noexcept {
    if (d < std::chrono::nanoseconds::zero()) d = std::chrono::nanoseconds::zero();
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(d).count();
    const int timeout = ms > 0x7fffffff ? 0x7fffffff : static_cast<int>(ms);
    if (wake_fd < 0) {
      timespec ts{static_cast<time_t>(d.count() / 1'000'000'000),
                  static_cast<long>(d.count() % 1'000'000'000)};
      ::nanosleep(&ts, nullptr);
      return false;
    }
    pollfd p{wake_fd, POLLIN, 0};
    return ::poll(&p, 1, timeout) > 0;
  }
};
static_assert(guard_clock<SystemClock>);

/// A fake clock for tests and benchmarks: time moves only when told to or when someone waits,
/// and waiting returns at once after advancing time by the full duration. Copies share one
/// timeline, so a test keeps a copy to inspect what the guard did.
class ManualClock {
 public:
  /// Starts at `start` wall time (default: 2025-11-13 15:30:45 UTC, the SPEC's example).
  explicit ManualClock(std::chrono::system_clock::time_point start =
                           std::chrono::system_clock::time_point(std::chrono::seconds(1763047845)))
      : state_(std::make_shared<State>(State{start, {}, {}, {}})) {}

  std::chrono::system_clock::time_point now() const noexcept { return state_->wall; }
  std::chrono::steady_clock::time_point steady_now() const noexcept { return state_->steady; }

  /// Advances time by `d` without waiting; then calls the wait hook as a wait would not.
  void advance(std::chrono::nanoseconds d) noexcept {
    state_->wall += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
    state_->steady += std::chrono::duration_cast<std::chrono::steady_clock::duration>(d);
  }

  /// Records the wait, advances time by `d`, then runs the hook (if any) so a test can change
  /// the world "while" the guard waited. Never woken by the descriptor.
  bool wait_for(std::chrono::nanoseconds d, int /*wake_fd*/) {
    state_->waits.push_back(d);
    advance(d);
    if (state_->on_wait) state_->on_wait(state_->waits.size());
    return false;
  }

  /// Called after each wait with the number of waits so far.
  void on_wait(std::function<void(std::size_t)> hook) { state_->on_wait = std::move(hook); }
  /// Every wait so far, in order.
  const std::vector<std::chrono::nanoseconds>& waits() const noexcept { return state_->waits; }

 private:
  struct State {
    std::chrono::system_clock::time_point wall;
    std::chrono::steady_clock::time_point steady;
    std::vector<std::chrono::nanoseconds> waits;
    std::function<void(std::size_t)> on_wait;
  };
  std::shared_ptr<State> state_;
};
static_assert(guard_clock<ManualClock>);

}  // namespace mama
