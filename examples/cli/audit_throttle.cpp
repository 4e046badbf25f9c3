// examples/cli/audit_throttle.cpp — see audit_throttle.hpp.
#include "audit_throttle.hpp"

namespace mama::cli {

std::optional<std::int64_t> WaitThrottle::waited_ms(const Event& e,
                                                    std::chrono::steady_clock::time_point now) {
  using namespace std::chrono_literals;
  const auto ms = [](std::chrono::nanoseconds d) {
    return static_cast<std::int64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
  };
  auto track = tracks_.find(e.machine);
  switch (e.kind) {
    case EventKind::waiting: {
      if (track == tracks_.end()) track = tracks_.emplace(std::string(e.machine), Track{}).first;
      Track& w = track->second;
      // A smaller waited time than before: a new claim or wait of the same machine.
      if (e.waited < w.last) w.logged = -1ns;
      w.last = e.waited;
      w.last_at = now;
      if (w.logged >= 0ns && e.waited - w.logged < 60s) return std::nullopt;
      w.logged = e.waited;
      return ms(e.waited);
    }
    case EventKind::claimed:
    case EventKind::nested: {
      if (track == tracks_.end()) return ms(e.waited);
      const auto waited = e.kind == EventKind::nested || e.waited == 0ns
                              ? track->second.last + (now - track->second.last_at)
                              : e.waited;
      tracks_.erase(track);
      return ms(waited);
    }
    case EventKind::released:
      if (track != tracks_.end()) tracks_.erase(track);
      return ms(e.waited);
    default:
      return ms(e.waited);
  }
}

}  // namespace mama::cli
