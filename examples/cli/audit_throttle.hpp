// examples/cli/audit_throttle.hpp — which `waiting` events reach the audit log, and how long a
// claim waited in all.
//
// A waiting claim wakes up often; the log keeps its first `waiting` event and then one a minute.
// `claimed` carries the whole time the claim waited; `wait` (which claims nothing) and `nested`
// do not, so their time is the last wait seen plus the time since.
#pragma once

#include <chrono>
#include <cstdint>
#include <mama/events.hpp>
#include <map>
#include <optional>
#include <string>

namespace mama::cli {

class WaitThrottle {
 public:
  /// The waited_ms to log for `e`, seen at `now`; nullopt when the event is not logged.
  std::optional<std::int64_t> waited_ms(const Event& e, std::chrono::steady_clock::time_point now);

 private:
  // Per machine: the last `waiting` event logged (waited time), and the last one seen and when.
  struct Track {
    std::chrono::nanoseconds logged{-1};
    std::chrono::nanoseconds last{0};
    std::chrono::steady_clock::time_point last_at{};
  };
  std::map<std::string, Track, std::less<>> tracks_;
};

}  // namespace mama::cli
