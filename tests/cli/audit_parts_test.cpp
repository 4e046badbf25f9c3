// tests/cli/audit_parts_test.cpp — the CLI's audit parts on their own, without the binary: which
// `waiting` events the log keeps and the time a claim waited (WaitThrottle, fed made-up times),
// and an event as its JSON object (audit_json). The real binary's log is events_test's.
#include <catch2/catch.hpp>
#include <chrono>
#include <mama/events.hpp>
#include <optional>
#include <string>

#include "audit_json.hpp"
#include "audit_throttle.hpp"

namespace {

using namespace std::chrono_literals;
using mama::EventKind;
using mama::cli::WaitThrottle;
using steady = std::chrono::steady_clock;

const mama::JobRecord no_job{};

mama::Event event(EventKind kind, std::string_view machine, std::chrono::nanoseconds waited) {
  return mama::Event{kind, machine, "lab.xml", no_job, "", waited};
}

}  // namespace

TEST_CASE("WaitThrottle keeps the first wait of a claim, then one a minute", "[audit]") {
  WaitThrottle t;
  const auto t0 = steady::time_point{} + 1000s;
  CHECK(t.waited_ms(event(EventKind::waiting, "m", 0s), t0) == 0);
  CHECK_FALSE(t.waited_ms(event(EventKind::waiting, "m", 5s), t0 + 5s));
  CHECK_FALSE(t.waited_ms(event(EventKind::waiting, "m", 59s), t0 + 59s));
  CHECK(t.waited_ms(event(EventKind::waiting, "m", 60s), t0 + 60s) == 60000);
  CHECK_FALSE(t.waited_ms(event(EventKind::waiting, "m", 90s), t0 + 90s));
  // Another machine is throttled on its own.
  CHECK(t.waited_ms(event(EventKind::waiting, "other", 1s), t0 + 91s) == 1000);

  SECTION("a smaller waited time is a new claim of the machine: its first wait is kept") {
    CHECK(t.waited_ms(event(EventKind::waiting, "m", 2s), t0 + 100s) == 2000);
  }
  SECTION("claimed carries its own waited time, and ends the claim's throttling") {
    CHECK(t.waited_ms(event(EventKind::claimed, "m", 95s), t0 + 95s) == 95000);
    CHECK(t.waited_ms(event(EventKind::waiting, "m", 100s), t0 + 200s) == 100000);
  }
  SECTION(
      "claimed without a waited time (mama wait) and nested: the last wait plus the time since") {
    CHECK(t.waited_ms(event(EventKind::claimed, "m", 0s), t0 + 93s) == 93000);
    CHECK(t.waited_ms(event(EventKind::waiting, "other", 3s), t0 + 93s) == std::nullopt);
    CHECK(t.waited_ms(event(EventKind::nested, "other", 0s), t0 + 95s) == 5000);
  }
  SECTION("released ends the claim's throttling") {
    CHECK(t.waited_ms(event(EventKind::released, "m", 0s), t0 + 95s) == 0);
    CHECK(t.waited_ms(event(EventKind::waiting, "m", 120s), t0 + 96s) == 120000);
  }
  SECTION("other events pass with their own waited time") {
    CHECK(t.waited_ms(event(EventKind::stale_cleared, "m", 7s), t0 + 95s) == 7000);
    CHECK_FALSE(t.waited_ms(event(EventKind::waiting, "m", 91s), t0 + 96s));
  }
}

TEST_CASE("audit_json: one event as its line's object", "[audit]") {
  mama::JobRecord r;
  r.job = std::string(2000, 'j');
  r.pid = "not a number";
  r.host = "far";
  r.timestamp = "1763047845";
  const mama::Event e{EventKind::stale_cleared, "m", "lab.xml", r, "process not running", 1500ms};
  const mama::cli::Origin origin{"here", "someone", 42};
  const auto now = std::chrono::system_clock::time_point{} + 1763047900123ms;
  const auto j = mama::cli::audit_json(e, 1500, origin, now);
  CHECK(j["time"] == "2025-11-13T15:31:40.123Z");
  CHECK(j["epoch"] == 1763047900);
  CHECK(j["event"] == "stale_cleared");
  CHECK(j["job"].get<std::string>() == std::string(1021, 'j') + "...");  // cut at 1 KiB
  CHECK(j["job_pid"].is_null());                                         // not a number
  CHECK(j["job_started"] == 1763047845);
  CHECK(j["verdict"] == "stale");
  CHECK(j["waited_ms"] == 1500);
  CHECK(j["host"] == "here");
  CHECK(j["user"] == "someone");
  CHECK(j["pid"] == 42);
  CHECK(j["state"] == "lab.xml");
  CHECK(mama::cli::audit_line(j).find('\n') == std::string::npos);
  // Only stale events carry a verdict.
  const mama::Event claimed{EventKind::claimed, "m", "lab.xml", r, "", 0s};
  CHECK_FALSE(mama::cli::audit_json(claimed, 0, origin, now).contains("verdict"));
}
