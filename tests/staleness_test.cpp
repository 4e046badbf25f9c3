// tests/staleness_test.cpp — mama::assess, the SPEC §3 table: every row, in order, with lambdas
// and with FakeProbe as the process question; and the five cases of the original test suite.
#include <catch2/catch.hpp>
#include <chrono>
#include <mama/process_probe.hpp>
#include <mama/staleness.hpp>
#include <optional>
#include <vector>

using namespace std::chrono_literals;
using mama::Assessment;
using mama::HoldState;
using mama::JobRecord;
using mama::Liveness;
using mama::Observation;
using mama::Verdict;

namespace {

constexpr std::int64_t kNow = 1763047845;  // 2025-11-13 15:30:45 UTC

Observation here(HoldState hold = HoldState::none) {
  Observation o;
  o.host = "labhost";
  o.boot_id = "boot-A";
  o.now = std::chrono::system_clock::time_point(std::chrono::seconds(kNow));
  o.stale_after = 300s;
  o.hold = hold;
  return o;
}

JobRecord job_with_pid(std::string pid) {
  JobRecord r;
  r.job = "run test-job x86_64/fedora";
  r.pid = std::move(pid);
  r.timestamp = std::to_string(kNow - 10);
  return r;
}

JobRecord pidless_job(std::optional<std::int64_t> age_seconds) {
  JobRecord r;
  r.job = "run test-job x86_64/fedora";
  if (age_seconds) r.timestamp = std::to_string(kNow - *age_seconds);
  return r;
}

/// A probe lambda that answers `answer` and records each question.
struct RecordingProbe {
  Liveness answer = Liveness::alive;
  std::vector<std::pair<int, std::optional<std::uint64_t>>> calls;
  auto fn() {
    return [this](int pid, std::optional<std::uint64_t> start) {
      calls.emplace_back(pid, start);
      return answer;
    };
  }
};

/// FakeProbe as the process question, the way the guard asks it.
auto ask(mama::FakeProbe& p) {
  return [&p](int pid, std::optional<std::uint64_t> start) { return p.check(pid, start); };
}

}  // namespace

TEST_CASE("row 1: a record without a job is idle, whatever else it holds", "[staleness]") {
  RecordingProbe probe;
  JobRecord r;
  r.pid = "12345";
  r.timestamp = "1";
  r.host = "elsewhere";
  r.boot_id = "boot-Z";
  const auto a = mama::assess(r, here(), probe.fn());
  CHECK(a == Assessment{Verdict::idle, ""});
  CHECK_FALSE(a.busy());
  CHECK(probe.calls.empty());
}

TEST_CASE("row 2: a job of another host is never probed from here", "[staleness]") {
  RecordingProbe probe;
  probe.answer = Liveness::gone;
  auto r = job_with_pid("12345");
  r.host = "otherhost";
  SECTION("even when its boot id differs from ours (row 2 comes before row 3)") {
    r.boot_id = "boot-Z";
  }
  SECTION("even with an invalid PID (row 2 comes before row 6)") { r.pid = "not-a-pid"; }
  const auto a = mama::assess(r, here(), probe.fn());
  CHECK(a.verdict == Verdict::remote);
  CHECK(a.reason == "on host otherhost, not checked from here");
  CHECK(a.busy());
  CHECK(probe.calls.empty());
}

TEST_CASE("row 3: a job from an earlier boot of this host is stale", "[staleness]") {
  RecordingProbe probe;
  auto r = job_with_pid("12345");
  r.boot_id = "boot-old";
  SECTION("with this host's name") { r.host = "labhost"; }
  SECTION("with no host recorded") {}
  SECTION("even without a PID (row 3 comes before row 5)") {
    r.pid.clear();
    r.timestamp.clear();
  }
  const auto a = mama::assess(r, here(), probe.fn());
  CHECK(a == Assessment{Verdict::stale, "host rebooted since the job started"});
  CHECK_FALSE(a.busy());
  CHECK(probe.calls.empty());
}

TEST_CASE("row 3 does not apply when this boot's id is unknown", "[staleness]") {
  RecordingProbe probe;
  auto r = job_with_pid("12345");
  r.boot_id = "boot-old";
  auto o = here();
  o.boot_id.clear();
  const auto a = mama::assess(r, o, probe.fn());
  CHECK(a.verdict == Verdict::running);
  CHECK(probe.calls.size() == 1);
}

TEST_CASE("row 4: a PID-less job older than stale_after is stale, with its age", "[staleness]") {
  RecordingProbe probe;
  SECTION("301 s old with the default 300 s") {
    CHECK(mama::assess(pidless_job(301), here(), probe.fn()) ==
          Assessment{Verdict::stale, "no PID, set 5 min ago"});
  }
  SECTION("an hour old") {
    CHECK(mama::assess(pidless_job(3600), here(), probe.fn()) ==
          Assessment{Verdict::stale, "no PID, set 60 min ago"});
  }
  SECTION("61 s old with stale_after = 60 s") {
    auto o = here();
    o.stale_after = 60s;
    CHECK(mama::assess(pidless_job(61), o, probe.fn()) ==
          Assessment{Verdict::stale, "no PID, set 1 min ago"});
  }
  CHECK(probe.calls.empty());
}

TEST_CASE("row 5: a PID-less job without a timestamp, or not yet old, is running", "[staleness]") {
  RecordingProbe probe;
  probe.answer = Liveness::gone;
  std::optional<std::int64_t> age;
  SECTION("no timestamp") { age = std::nullopt; }
  SECTION("10 s old") { age = 10; }
  SECTION("exactly stale_after old (stale only when older)") { age = 300; }
  SECTION("a timestamp in the future") { age = -3600; }
  const auto a = mama::assess(pidless_job(age), here(), probe.fn());
  CHECK(a == Assessment{Verdict::running, "no PID recorded"});
  CHECK(a.busy());
  CHECK(probe.calls.empty());
}

TEST_CASE("rows 4/5: a PID-less job with no usable time runs until the first claimer stamps it",
          "[staleness]") {
  RecordingProbe probe;
  auto r = pidless_job(std::nullopt);
  const auto now = here().now;
  SECTION("no timestamp") { CHECK(mama::detail::needs_first_seen_stamp(r, now)); }
  SECTION("not a number") {
    r.timestamp = "yesterday";
    CHECK(mama::detail::needs_first_seen_stamp(r, now));
  }
  SECTION("in the future") {
    r.timestamp = std::to_string(kNow + 3600);
    CHECK(mama::detail::needs_first_seen_stamp(r, now));
  }
  SECTION("a usable timestamp, or a PID, or no job: nothing to stamp") {
    r.timestamp = std::to_string(kNow - 10);
    CHECK_FALSE(mama::detail::needs_first_seen_stamp(r, now));
    r.timestamp.clear();
    r.pid = "12";
    CHECK_FALSE(mama::detail::needs_first_seen_stamp(r, now));
    CHECK_FALSE(mama::detail::needs_first_seen_stamp(JobRecord{}, now));
    return;
  }
  const auto a = mama::assess(r, here(), probe.fn());
  CHECK(a == Assessment{Verdict::running, "no PID recorded"});
  CHECK(probe.calls.empty());
}

TEST_CASE("row 6: a PID is read as PHP 8's (int) cast reads it", "[staleness]") {
  using mama::detail::php_int_cast;
  CHECK(php_int_cast("1234") == 1234);
  CHECK(php_int_cast(" 1234") == 1234);
  CHECK(php_int_cast("1234 ") == 1234);
  CHECK(php_int_cast("\t\n1234") == 1234);
  CHECK(php_int_cast("+1234") == 1234);
  CHECK(php_int_cast("12abc") == 12);
  CHECK(php_int_cast("1e3") == 1000);
  CHECK(php_int_cast("1.5e3") == 1500);
  CHECK(php_int_cast("12.9") == 12);
  CHECK(php_int_cast(".5") == 0);
  CHECK(php_int_cast("-5") == -5);
  CHECK(php_int_cast("abc") == 0);
  CHECK(php_int_cast("") == 0);
  CHECK(php_int_cast("0x1A") == 0);
  CHECK(php_int_cast("1e") == 1);
  CHECK(php_int_cast("99999999999999999999999") == INT64_MAX);
}

TEST_CASE("row 6: a PID PHP reads as zero or less is stale; one it reads as a number is probed",
          "[staleness]") {
  SECTION("not positive as PHP reads it: stale without a probe") {
    RecordingProbe probe;
    const auto pid = GENERATE(as<std::string>{}, "abc", "0", "-5", " ", "x12", "0x1A");
    CAPTURE(pid);
    const auto a = mama::assess(job_with_pid(pid), here(), probe.fn());
    CHECK(a == Assessment{Verdict::stale, "invalid PID"});
    CHECK(probe.calls.empty());
  }
  SECTION("spellings PHP reads as 1234: the live process keeps its job") {
    RecordingProbe probe;
    const auto pid = GENERATE(as<std::string>{}, " 1234", "1234 ", "+1234", "1234abc", "1.234e3");
    CAPTURE(pid);
    const auto a = mama::assess(job_with_pid(pid), here(), probe.fn());
    CHECK(a.verdict == Verdict::running);
    REQUIRE(probe.calls.size() == 1);
    CHECK(probe.calls[0].first == 1234);
  }
  SECTION("beyond any PID: no such process") {
    RecordingProbe probe;
    CHECK(mama::assess(job_with_pid("99999999999"), here(), probe.fn()) ==
          Assessment{Verdict::stale, "process not running"});
    CHECK(probe.calls.empty());
  }
}

TEST_CASE("row 7: no process with that PID, or a zombie, is stale", "[staleness]") {
  SECTION("lambda says gone") {
    RecordingProbe probe;
    probe.answer = Liveness::gone;
    CHECK(mama::assess(job_with_pid("12345"), here(), probe.fn()) ==
          Assessment{Verdict::stale, "process not running"});
    REQUIRE(probe.calls.size() == 1);
    CHECK(probe.calls[0].first == 12345);
    CHECK_FALSE(probe.calls[0].second.has_value());
  }
  SECTION("FakeProbe: the PID is not in its table") {
    mama::FakeProbe probe;
    CHECK(mama::assess(job_with_pid("12345"), here(), ask(probe)).verdict == Verdict::stale);
    CHECK(probe.checks() == 1);
  }
  SECTION("FakeProbe: the PID is a zombie") {
    mama::FakeProbe probe;
    probe.spawn(12345).zombify(12345);
    CHECK(mama::assess(job_with_pid("12345"), here(), ask(probe)) ==
          Assessment{Verdict::stale, "process not running"});
  }
}

TEST_CASE("row 8: a recorded start time that is not the PID's is stale", "[staleness]") {
  auto r = job_with_pid("12345");
  r.start = "777";
  SECTION("lambda says reused, and was given the recorded start time") {
    RecordingProbe probe;
    probe.answer = Liveness::reused;
    CHECK(mama::assess(r, here(), probe.fn()) ==
          Assessment{Verdict::stale, "PID reused by another process"});
    REQUIRE(probe.calls.size() == 1);
    CHECK(probe.calls[0].second == std::optional<std::uint64_t>(777));
  }
  SECTION("FakeProbe: the PID lives but started at another time") {
    mama::FakeProbe probe;
    probe.spawn(12345, 778);
    CHECK(mama::assess(r, here(), ask(probe)) ==
          Assessment{Verdict::stale, "PID reused by another process"});
  }
  SECTION("FakeProbe: same PID, same start: row 9, running") {
    mama::FakeProbe probe;
    probe.spawn(12345, 777);
    CHECK(mama::assess(r, here(), ask(probe)) == Assessment{Verdict::running, ""});
  }
  SECTION("a start time that is not a number needs a human") {
    r.start = "soon";
    RecordingProbe probe;
    const auto a = mama::assess(r, here(), probe.fn());
    CHECK(a.verdict == Verdict::invalid);
    CHECK_THAT(a.reason, Catch::Contains("'soon'"));
    CHECK(probe.calls.empty());
  }
}

TEST_CASE("row 8 needs a recorded start time: 'reused' without one is not evidence",
          "[staleness]") {
  RecordingProbe probe;
  probe.answer = Liveness::reused;
  CHECK(mama::assess(job_with_pid("12345"), here(), probe.fn()).verdict == Verdict::running);
}

TEST_CASE("row 9: a live process is running, including another user's", "[staleness]") {
  SECTION("lambda says alive (what ProcProbe answers when kill() gives EPERM)") {
    RecordingProbe probe;
    const auto a = mama::assess(job_with_pid("12345"), here(), probe.fn());
    CHECK(a == Assessment{Verdict::running, ""});
    CHECK(a.busy());
    CHECK(probe.calls.size() == 1);
  }
  SECTION("FakeProbe with the PID live, on this host and boot") {
    mama::FakeProbe probe;
    probe.spawn(12345, 5);
    auto r = job_with_pid("12345");
    r.host = "labhost";
    r.boot_id = "boot-A";
    r.start = "5";
    CHECK(mama::assess(r, here(), ask(probe)).verdict == Verdict::running);
    CHECK(probe.checks() == 1);
  }
  SECTION("a probe that cannot tell keeps the job (never clear what we cannot judge)") {
    RecordingProbe probe;
    probe.answer = Liveness::unknown;
    CHECK(mama::assess(job_with_pid("12345"), here(), probe.fn()) ==
          Assessment{Verdict::running, "cannot check the process"});
  }
}

TEST_CASE("a claim's kernel lock and its PID are two signals: both must say gone", "[staleness]") {
  RecordingProbe probe;
  auto r = job_with_pid("12345");
  r.token = "0123456789abcdef0123456789abcdef";
  SECTION("lock free, process gone: stale") {
    probe.answer = Liveness::gone;
    CHECK(mama::assess(r, here(HoldState::free), probe.fn()) ==
          Assessment{Verdict::stale, "process not running"});
    CHECK(probe.calls.size() == 1);
  }
  SECTION("lock free, PID reused by another process: stale") {
    r.start = "77";
    probe.answer = Liveness::reused;
    CHECK(mama::assess(r, here(HoldState::free), probe.fn()) ==
          Assessment{Verdict::stale, "PID reused by another process"});
  }
  SECTION("lock free but the process lives (lock files lost or another path): running") {
    r.start = "77";
    const auto a = mama::assess(r, here(HoldState::free), probe.fn());
    CHECK(a.verdict == Verdict::running);
    CHECK_THAT(a.reason, Catch::Contains("job lock free but process 12345 is alive"));
    REQUIRE(probe.calls.size() == 1);
    CHECK(probe.calls[0].second == std::optional<std::uint64_t>(77));
  }
  SECTION("lock free and the process cannot be checked: running") {
    probe.answer = Liveness::unknown;
    CHECK(mama::assess(r, here(HoldState::free), probe.fn()).verdict == Verdict::running);
  }
  SECTION("lock held: running even though the PID is gone (the job's children still run)") {
    probe.answer = Liveness::gone;
    CHECK(mama::assess(r, here(HoldState::held), probe.fn()).verdict == Verdict::running);
    CHECK(probe.calls.empty());
  }
  SECTION("no lock kept by the store: the PID rules decide") {
    probe.answer = Liveness::gone;
    CHECK(mama::assess(r, here(HoldState::none), probe.fn()).verdict == Verdict::stale);
    CHECK(probe.calls.size() == 1);
  }
  SECTION("a held lock decides row 6 too: a held claim with a garbled PID is running") {
    r.pid = "garbled";
    CHECK(mama::assess(r, here(HoldState::held), probe.fn()).verdict == Verdict::running);
    CHECK(mama::assess(r, here(HoldState::free), probe.fn()) ==
          Assessment{Verdict::stale, "invalid PID"});
    CHECK(mama::assess(r, here(HoldState::none), probe.fn()) ==
          Assessment{Verdict::stale, "invalid PID"});
    CHECK(probe.calls.empty());
  }
  SECTION("a record without a token (PHP rewrote it) is judged by PID even with a lock state") {
    r.token.clear();
    CHECK(mama::assess(r, here(HoldState::free), probe.fn()).verdict == Verdict::running);
    CHECK(probe.calls.size() == 1);
  }
}

TEST_CASE("a PID-less claim record kept for leftover job processes: the hold decides",
          "[staleness]") {
  RecordingProbe probe;
  auto r = pidless_job(10);
  r.token = "0123456789abcdef0123456789abcdef";
  CHECK(mama::assess(r, here(HoldState::held), probe.fn()) ==
        Assessment{Verdict::running, "held by processes of the job"});
  CHECK(mama::assess(r, here(HoldState::free), probe.fn()) ==
        Assessment{Verdict::stale, "processes of the job ended"});
  CHECK(mama::assess(r, here(HoldState::none), probe.fn()) ==
        Assessment{Verdict::running, "no PID recorded"});
  CHECK(probe.calls.empty());
}

TEST_CASE("reasons quote record text escaped, safe for a terminal", "[staleness]") {
  RecordingProbe probe;
  auto r = job_with_pid("12345");
  r.host = "evil\x1b]0;pwned\x07\xe2\x80\xae\x9bhost";
  const auto a = mama::assess(r, here(), probe.fn());
  CHECK(a.verdict == Verdict::remote);
  CHECK(a.reason == "on host evil\\e]0;pwned\\x07\\u202e\\x9bhost, not checked from here");
  r.host.clear();
  r.start = "\x1b[2J";
  CHECK_THAT(mama::assess(r, here(), probe.fn()).reason, Catch::Contains("'\\e[2J'"));
}

TEST_CASE("the original test suite's five cases", "[staleness][original]") {
  mama::FakeProbe probe;  // lives: only this process (4242)
  SECTION("a job with a PID that does not exist is stale") {
    const auto a = mama::assess(job_with_pid("999999"), here(), ask(probe));
    CHECK(a.verdict == Verdict::stale);
    CHECK(a.reason == "process not running");
  }
  SECTION("a job with a live PID is not stale") {
    probe.spawn(31337);
    const auto a = mama::assess(job_with_pid("31337"), here(), ask(probe));
    CHECK(a.verdict == Verdict::running);
  }
  SECTION("a job with no PID, older than 5 minutes, is stale") {
    const auto a = mama::assess(pidless_job(6 * 60), here(), ask(probe));
    CHECK(a.verdict == Verdict::stale);
    CHECK(a.reason == "no PID, set 6 min ago");
    CHECK(probe.checks() == 0);
  }
  SECTION("a job with no PID, recent, is not stale") {
    const auto a = mama::assess(pidless_job(60), here(), ask(probe));
    CHECK(a.verdict == Verdict::running);
    CHECK(probe.checks() == 0);
  }
  SECTION("no job: nothing to judge") {
    const auto a = mama::assess(JobRecord{}, here(), ask(probe));
    CHECK(a.verdict == Verdict::idle);
    CHECK(a.reason.empty());
    CHECK(probe.checks() == 0);
  }
}

TEST_CASE("verdict names are stable", "[staleness]") {
  CHECK(mama::to_string(Verdict::idle) == "idle");
  CHECK(mama::to_string(Verdict::running) == "running");
  CHECK(mama::to_string(Verdict::remote) == "remote");
  CHECK(mama::to_string(Verdict::stale) == "stale");
  CHECK(mama::to_string(Verdict::invalid) == "invalid");
}
