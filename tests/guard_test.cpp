// tests/guard_test.cpp — StaleJobGuard: the logic with ManualClock + FakeProbe +
// MemoryStateStore (deterministic, instant), then the product for real: mama.xml in a temporary
// directory, a holder that is really killed with SIGKILL.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <mama/guard.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

using namespace std::chrono_literals;
using mama::EventKind;
using mama::JobRecord;

namespace {

using Guard = mama::StaleJobGuard<mama::ManualClock, mama::FakeProbe, mama::MemoryStateStore>;

constexpr const char* kMachine = "test-machine";
constexpr std::int64_t kNow = 1763047845;  // ManualClock's default start

/// An event as recorded by the test (Event holds references valid only during the call).
struct Seen {
  EventKind kind;
  std::string machine;
  std::string store;
  JobRecord record;
  std::string reason;
  std::chrono::nanoseconds waited;
};

/// A store with two machines, a fake clock and probe, and an event log.
struct Rig {
  mama::MemoryStateStore store;
  mama::ManualClock clock;
  mama::FakeProbe probe;  // this process: PID 4242, start 1000, host testhost, boot boot-1
  std::vector<Seen> events;

  explicit Rig(JobRecord current = {}, bool exact_liveness = true) : store(exact_liveness) {
    store.add_machine(kMachine, std::move(current),
                      {{"mac", "aa:bb:cc:dd:ee:ff"}, {"ip", "192.168.1.10"}});
    store.add_machine("other-machine", legacy_holder("other job", 31337), {{"ip", "192.168.1.11"}});
  }

  static JobRecord legacy_holder(std::string job, int pid, std::int64_t age = 30) {
    JobRecord r;
    r.job = std::move(job);
    r.pid = std::to_string(pid);
    r.timestamp = std::to_string(kNow - age);
    return r;
  }

  mama::GuardOptions options(std::string job = "run my-test") {
    mama::GuardOptions o;
    o.job = std::move(job);
    // Fake time: a claim that waits when it should not ends in errc::timeout after 3600 instant
    // waits instead of looping forever.
    o.timeout = 1h;
    o.on_event = [this](const mama::Event& e) {
      events.push_back({e.kind, std::string(e.machine), std::string(e.store), e.record,
                        std::string(e.reason), e.waited});
    };
    return o;
  }

  Guard claim(mama::GuardOptions o) { return Guard(store, kMachine, std::move(o), clock, probe); }
  Guard claim() { return claim(options()); }
  std::optional<Guard> try_claim(mama::GuardOptions o) {
    return Guard::try_claim(store, kMachine, std::move(o), clock, probe);
  }
  std::optional<Guard> try_claim() { return try_claim(options()); }

  std::vector<EventKind> kinds() const {
    std::vector<EventKind> out;
    for (const auto& e : events) out.push_back(e.kind);
    return out;
  }
  std::size_t count(EventKind k) const {
    std::size_t n = 0;
    for (const auto& e : events) n += e.kind == k;
    return n;
  }
  const Seen& last(EventKind k) const {
    for (auto it = events.rbegin(); it != events.rend(); ++it)
      if (it->kind == k) return *it;
    FAIL("no event " << mama::to_string(k));
    throw;  // unreachable
  }
};

/// Runs `f`, which must throw mama::error; returns it.
template <class F>
mama::error thrown_by(F&& f) {
  try {
    f();
  } catch (const mama::error& e) {
    return e;
  }
  FAIL("no mama::error thrown");
  throw;  // unreachable
}

bool is_hex_token(const std::string& s) {
  return s.size() == 32 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Claim and release of a free machine
// ------------------------------------------------------------------------------------------

TEST_CASE("claiming a free machine writes all seven job fields and releasing clears them",
          "[guard]") {
  Rig rig;
  const auto other_before = rig.store.record("other-machine");
  {
    auto guard = rig.claim();
    const JobRecord r = rig.store.record(kMachine);
    CHECK(r.job == "run my-test");
    CHECK(r.pid == "4242");
    CHECK(r.timestamp == std::to_string(kNow));
    CHECK(r.host == "testhost");
    CHECK(r.boot_id == "boot-1");
    CHECK(r.start == "1000");
    CHECK(is_hex_token(r.token));
    CHECK(guard.record() == r);
    CHECK(guard.token() == r.token);
    CHECK(guard.machine() == kMachine);
    CHECK(guard.active());
    CHECK_FALSE(guard.nested());
    CHECK(rig.clock.waits().empty());
    CHECK(rig.kinds() == std::vector{EventKind::claimed});
    CHECK(rig.events[0].record == r);
    CHECK(rig.events[0].machine == kMachine);
    CHECK(rig.events[0].store == "<memory>");
  }
  CHECK(rig.store.record(kMachine).idle());
  CHECK(rig.store.record(kMachine) == JobRecord{});  // every job field cleared, not only `job`
  CHECK(rig.kinds() == std::vector{EventKind::claimed, EventKind::released});
  CHECK(rig.store.commits() == 2);
  // Only this machine's job fields changed.
  CHECK(rig.store.record("other-machine") == other_before);
  auto tx = rig.store.begin();
  const auto machines = tx.machines();
  REQUIRE(machines.size() == 2);
  CHECK(machines[0].field("mac") == "aa:bb:cc:dd:ee:ff");
  CHECK(machines[0].field("ip") == "192.168.1.10");
}

TEST_CASE("each claim has its own token", "[guard]") {
  Rig rig;
  std::string first;
  {
    auto g = rig.claim();
    first = g.token();
  }
  auto g = rig.claim();
  CHECK(is_hex_token(g.token()));
  CHECK(g.token() != first);
}

TEST_CASE("release() releases at once and the destructor then does nothing", "[guard]") {
  Rig rig;
  auto guard = rig.claim();
  guard.release();
  CHECK_FALSE(guard.active());
  CHECK(rig.store.record(kMachine).idle());
  rig.store.set_record(kMachine, Rig::legacy_holder("someone else", 777));
  guard.release();  // a second release must not touch the new holder
  CHECK(rig.store.record(kMachine).job == "someone else");
  CHECK(rig.count(EventKind::released) == 1);
}

TEST_CASE("a moved guard releases exactly once", "[guard]") {
  Rig rig;
  {
    auto g = rig.try_claim();
    REQUIRE(g);
    Guard moved(std::move(*g));
    CHECK_FALSE(g->active());
    CHECK(moved.active());
  }
  CHECK(rig.count(EventKind::released) == 1);
  CHECK(rig.store.record(kMachine).idle());
}

// ------------------------------------------------------------------------------------------
// Waiting
// ------------------------------------------------------------------------------------------

TEST_CASE("a claim waits through the clock while a live job runs", "[guard][wait]") {
  Rig rig(Rig::legacy_holder("run test-job x86_64/fedora", 500));
  rig.probe.spawn(500);
  auto opts = rig.options();
  opts.poll_interval = 2s;

  SECTION("the holder dies during the third wait: its job is cleared as stale") {
    rig.clock.on_wait([&](std::size_t n) {
      if (n == 3) rig.probe.kill(500);
    });
    auto guard = rig.claim(opts);
    CHECK(rig.clock.waits() == std::vector<std::chrono::nanoseconds>{2s, 2s, 2s});
    // Every event before the clearing is a wait for the live holder, with the time waited.
    const auto kinds = rig.kinds();
    REQUIRE(kinds.size() >= 4);
    CHECK(std::vector(kinds.end() - 3, kinds.end()) ==
          std::vector{EventKind::stale_detected, EventKind::stale_cleared, EventKind::claimed});
    for (std::size_t i = 0; i + 3 < rig.events.size(); ++i) {
      CHECK(rig.events[i].kind == EventKind::waiting);
      CHECK(rig.events[i].record.pid == "500");
      CHECK(rig.events[i].reason == "running");
    }
    // Each waiting event tells the time waited before that wait: the last one precedes wait 3.
    CHECK(rig.last(EventKind::waiting).waited == 4s);
    // The claimed event tells the whole time the claim waited.
    CHECK(rig.last(EventKind::claimed).waited == 6s);
    CHECK(rig.last(EventKind::stale_detected).reason == "process not running");
    CHECK(rig.store.record(kMachine).pid == "4242");
  }

  SECTION("the holder releases during the first wait: claimed with nothing stale") {
    rig.clock.on_wait([&](std::size_t n) {
      if (n == 1) rig.store.set_record(kMachine, {});
    });
    auto guard = rig.claim(opts);
    CHECK(rig.clock.waits().size() == 1);
    CHECK(rig.count(EventKind::stale_detected) == 0);
    CHECK(rig.kinds().back() == EventKind::claimed);
    CHECK(rig.store.record(kMachine) == guard.record());
  }
}

TEST_CASE("a claim's kernel hold outranks the PID: held means running, freed and gone is stale",
          "[guard][wait]") {
  // A record written by a claim (it has a token) whose PID is gone, but whose job lock is still
  // held (by the job's children): not stale until the lock is freed.
  JobRecord holder = Rig::legacy_holder("run test-job x86_64/fedora", 600);
  holder.host = "testhost";
  holder.boot_id = "boot-1";
  holder.start = "9";
  holder.token = "feedfacefeedfacefeedfacefeedface";
  Rig rig(holder);
  auto children_hold = rig.store.hold_for_test(kMachine);
  REQUIRE(children_hold);
  rig.clock.on_wait([&](std::size_t n) {
    if (n == 2) children_hold.reset();
  });
  auto guard = rig.claim();
  CHECK(rig.clock.waits().size() == 2);
  CHECK(rig.probe.checks() == 1);  // the PID was asked once, when the hold was free
  CHECK(rig.last(EventKind::stale_detected).reason == "process not running");
  CHECK(rig.store.record(kMachine) == guard.record());
  // Our claim now keeps the hold: nobody else can take it.
  CHECK_FALSE(rig.store.hold_for_test(kMachine));
}

TEST_CASE("a legacy PID-less job is waited on until it is older than stale_after",
          "[guard][wait]") {
  auto pidless = Rig::legacy_holder("php job without pid", 0, /*age=*/290);
  pidless.pid.clear();
  Rig rig(pidless);
  auto opts = rig.options();
  opts.poll_interval = 5s;
  auto guard = rig.claim(opts);  // 290 s + 3 waits of 5 s = 305 s > 300 s
  CHECK(rig.clock.waits().size() == 3);
  CHECK(rig.last(EventKind::stale_detected).reason == "no PID, set 5 min ago");
  CHECK(rig.last(EventKind::waiting).reason == "no PID recorded");
}

TEST_CASE("stale_after is the guard's option", "[guard][wait]") {
  JobRecord pidless;
  pidless.job = "php job without pid";
  pidless.timestamp = std::to_string(kNow - 61);
  Rig rig(pidless);
  auto opts = rig.options();
  opts.stale_after = 60s;
  auto guard = rig.claim(opts);
  CHECK(rig.clock.waits().empty());
  CHECK(rig.last(EventKind::stale_detected).reason == "no PID, set 1 min ago");
}

TEST_CASE("a claim times out with an error naming the machine, the store and the holder",
          "[guard][wait]") {
  Rig rig(Rig::legacy_holder("run test-job x86_64/fedora", 500));
  rig.probe.spawn(500);
  const auto before = rig.store.record(kMachine);
  auto opts = rig.options();
  opts.poll_interval = 1s;
  SECTION("after 5 s of waits") {
    opts.timeout = 5s;
    const auto e = thrown_by([&] { rig.claim(opts); });
    CHECK(e.code() == mama::errc::timeout);
    CHECK_THAT(e.what(), Catch::Contains("'test-machine'") && Catch::Contains("<memory>") &&
                             Catch::Contains("run test-job x86_64/fedora") &&
                             Catch::Contains("PID 500") && Catch::Contains("5.0 s"));
    std::chrono::nanoseconds total{};
    for (auto w : rig.clock.waits()) total += w;
    CHECK(total == 5s);
  }
  SECTION("a timeout that is not a multiple of the poll interval is kept exactly") {
    opts.timeout = 2500ms;
    CHECK(thrown_by([&] { rig.claim(opts); }).code() == mama::errc::timeout);
    CHECK(rig.clock.waits() == std::vector<std::chrono::nanoseconds>{1s, 1s, 500ms});
  }
  SECTION("a zero timeout fails without waiting") {
    opts.timeout = 0s;
    CHECK(thrown_by([&] { rig.claim(opts); }).code() == mama::errc::timeout);
    CHECK(rig.clock.waits().empty());
  }
  CHECK(rig.store.record(kMachine) == before);
  CHECK(rig.count(EventKind::claimed) == 0);
}

// ------------------------------------------------------------------------------------------
// Stale jobs: message, events, the original suite's cases
// ------------------------------------------------------------------------------------------

TEST_CASE("a stale job is reported with the exact line and cleared in the same claim",
          "[guard][stale]") {
  Rig rig(Rig::legacy_holder("run test-job x86_64/fedora", 12345));  // 12345 is not running
  const JobRecord stale = rig.store.record(kMachine);

  SECTION("events, in order, through GuardOptions::on_event") {
    auto guard = rig.claim();
    CHECK(rig.kinds() ==
          std::vector{EventKind::stale_detected, EventKind::stale_cleared, EventKind::claimed});
    CHECK(rig.events[0].record == stale);
    CHECK(rig.events[0].reason == "process not running");
    CHECK(rig.events[1].record == stale);
    CHECK(rig.events[1].reason == "process not running");
    CHECK(rig.events[2].record == guard.record());
    CHECK(mama::stale_job_line(rig.events[0].record, rig.events[0].reason) ==
          "Detected stale job: run test-job x86_64/fedora (PID: 12345, process not running)");
    CHECK(rig.clock.waits().empty());
    CHECK(rig.probe.checks() == 1);
    CHECK(rig.store.commits() == 1);  // cleared and claimed in one save
  }

  SECTION("the default handler prints the line, and nothing else, to its stream") {
    std::ostringstream out;
    mama::GuardOptions opts;
    opts.job = "run my-test";
    opts.timeout = 1h;
    opts.on_event = [&](const mama::Event& e) { mama::default_event_handler(e, out); };
    { Guard guard(rig.store, kMachine, opts, rig.clock, rig.probe); }
    CHECK(out.str() ==
          "Detected stale job: run test-job x86_64/fedora (PID: 12345, process not running)\n");
  }

  SECTION("a PID-less job shows 'none' and its age") {
    JobRecord old;
    old.job = "legacy job";
    old.timestamp = std::to_string(kNow - 600);
    rig.store.set_record(kMachine, old);
    std::ostringstream out;
    auto opts = rig.options();
    opts.on_event = [&](const mama::Event& e) { mama::default_event_handler(e, out); };
    auto guard = rig.claim(opts);
    CHECK(out.str() == "Detected stale job: legacy job (PID: none, no PID, set 10 min ago)\n");
  }

  SECTION("control characters in the job text are escaped in the line") {
    auto evil = stale;
    evil.job = "job\x1b]0;pwned\x07\nnext";
    rig.store.set_record(kMachine, evil);
    std::ostringstream out;
    auto opts = rig.options();
    opts.on_event = [&](const mama::Event& e) { mama::default_event_handler(e, out); };
    auto guard = rig.claim(opts);
    CHECK(out.str() ==
          "Detected stale job: job\\e]0;pwned\\x07\\nnext (PID: 12345, process not running)\n");
  }
}

TEST_CASE("the original test suite's five cases, through a claim", "[guard][original]") {
  Rig rig;
  SECTION("a job with a PID that does not exist is stale: cleared and claimed") {
    rig.store.set_record(kMachine, Rig::legacy_holder("dead job", 999999));
    CHECK(rig.try_claim());
    CHECK(rig.last(EventKind::stale_detected).reason == "process not running");
  }
  SECTION("a job with a live PID is not stale: busy, left alone") {
    rig.probe.spawn(31337);
    rig.store.set_record(kMachine, Rig::legacy_holder("live job", 31337));
    CHECK_FALSE(rig.try_claim());
    CHECK(rig.store.record(kMachine).job == "live job");
  }
  SECTION("a job with no PID, older than 5 minutes, is stale") {
    auto r = Rig::legacy_holder("pidless old", 0, 6 * 60);
    r.pid.clear();
    rig.store.set_record(kMachine, r);
    CHECK(rig.try_claim());
    CHECK(rig.last(EventKind::stale_detected).reason == "no PID, set 6 min ago");
  }
  SECTION("a job with no PID, recent, is not stale") {
    auto r = Rig::legacy_holder("pidless recent", 0, 60);
    r.pid.clear();
    rig.store.set_record(kMachine, r);
    CHECK_FALSE(rig.try_claim());
    CHECK(rig.store.record(kMachine).job == "pidless recent");
  }
  SECTION("no job: claimed, nothing detected") {
    CHECK(rig.try_claim());
    CHECK(rig.count(EventKind::stale_detected) == 0);
  }
  CHECK(rig.clock.waits().empty());
}

TEST_CASE("a PID-less job with no usable time is stamped, then cleared stale_after later",
          "[guard][stale]") {
  auto r = Rig::legacy_holder("phantom", 0);
  r.pid.clear();
  const auto stamp = GENERATE(as<std::string>{}, "", "last tuesday", "99999999999");
  CAPTURE(stamp);
  r.timestamp = stamp;
  Rig rig(r);
  // The first look stamps the record with the claimer's time and waits.
  CHECK_FALSE(rig.try_claim());
  auto stamped = rig.store.record(kMachine);
  CHECK(stamped.timestamp == std::to_string(kNow));
  CHECK(stamped.job == "phantom");
  // A claim that waits gets it once stale_after (300 s) has passed since then.
  auto guard = rig.claim();
  CHECK(rig.last(EventKind::stale_detected).reason == "no PID, set 5 min ago");
  const auto waited =
      rig.clock.now() - std::chrono::system_clock::time_point(std::chrono::seconds(kNow));
  CHECK(waited > 300s);
  CHECK(waited < 302s);
}

TEST_CASE("a record nobody can judge is an error, and is left as it was", "[guard][stale]") {
  auto r = Rig::legacy_holder("job", 4242);
  r.start = "last tuesday";
  Rig rig(r);
  rig.probe.spawn(4243);
  r.pid = "4243";
  rig.store.set_record(kMachine, r);
  const auto e = thrown_by([&] { rig.claim(); });
  CHECK(e.code() == mama::errc::bad_record);
  CHECK_THAT(e.what(), Catch::Contains("'test-machine'") && Catch::Contains("<memory>") &&
                           Catch::Contains("last tuesday"));
  CHECK(rig.store.record(kMachine) == r);
}

TEST_CASE("a job text the PHP tool cannot read is refused before any waiting", "[guard][error]") {
  Rig rig(Rig::legacy_holder("busy", 500));
  rig.probe.spawn(500);
  const auto text = GENERATE(as<std::string>{}, "caf\xe9", "tab\there", "new\nline",
                             std::string("cut \xe2\x82", 6), "c1 \xc2\x9b", "bad \xef\xbf\xbe");
  CAPTURE(text);
  const auto before = rig.store.record(kMachine);
  const auto e = thrown_by([&] { rig.claim(rig.options(text)); });
  CHECK(e.code() == mama::errc::invalid_argument);
  CHECK_THAT(e.what(), Catch::Contains("'test-machine'") && Catch::Contains("valid UTF-8"));
  CHECK(rig.clock.waits().empty());  // refused at once, not after the wait
  CHECK(rig.events.empty());
  CHECK(rig.store.record(kMachine) == before);
}

TEST_CASE("events are delivered after the critical section: a handler may use the store",
          "[guard][events]") {
  Rig rig(Rig::legacy_holder("stale job", 999));  // PID 999 does not live
  std::vector<std::string> seen_inside;
  auto opts = rig.options();
  opts.on_event = [&](const mama::Event& e) {
    // MemoryStateStore's begin() takes a non-recursive mutex: inside the critical section this
    // would deadlock (or throw, std::system_error EDEADLK).
    auto tx = rig.store.begin();
    seen_inside.push_back(std::string(mama::to_string(e.kind)) + ":" + tx.find(kMachine)->job);
  };
  { auto guard = rig.claim(opts); }
  CHECK(seen_inside == std::vector<std::string>{"stale_detected:run my-test",
                                                "stale_cleared:run my-test", "claimed:run my-test",
                                                "released:"});
}

TEST_CASE("hand_over names the job's process in the record, keeping the token", "[guard]") {
  Rig rig;
  auto guard = rig.claim();
  const auto token = guard.token();
  CHECK(guard.hand_over({4300, 1234}));
  const auto r = rig.store.record(kMachine);
  CHECK(r.pid == "4300");
  CHECK(r.start == "1234");
  CHECK(r.token == token);
  CHECK(guard.record() == r);
  guard.release();
  CHECK(rig.store.record(kMachine).idle());
  CHECK_FALSE(guard.hand_over({4301, 1}));
}

TEST_CASE("a release that finds job processes still holding the hold keeps the record",
          "[guard][release]") {
  Rig rig;
  std::optional<mama::MemoryStateStore::hold> leftover;
  {
    auto guard = rig.claim();
    guard.hand_over({4300, 1234});
    rig.probe.spawn(4300, 1234);
    // A job process that left the group keeps the lock after the claimer drops its copy: the
    // memory store simulates it by taking the hold as soon as the guard lets it go.
    rig.store.on_hold_released(kMachine, [&] { leftover = rig.store.hold_for_test(kMachine); });
  }
  REQUIRE(leftover);
  const auto kept = rig.store.record(kMachine);
  CHECK(kept.job == "run my-test");
  CHECK(kept.pid.empty());  // the memory store cannot name the process: the hold decides
  CHECK(rig.count(EventKind::leftover_holders) == 1);
  CHECK(rig.count(EventKind::released) == 0);
  // Busy to the next claimer while the leftover holds it; free once it is gone.
  mama::FakeProbe next_process;
  next_process.set_self({5000, 1});
  next_process.spawn(4300, 1234);
  CHECK_FALSE(Guard::try_claim(rig.store, kMachine, rig.options("next"), rig.clock, next_process));
  leftover.reset();
  next_process.kill(4300);
  CHECK(Guard::try_claim(rig.store, kMachine, rig.options("next"), rig.clock, next_process));
}

// ------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------

TEST_CASE("an unknown machine is an error naming the machine and the store", "[guard][error]") {
  Rig rig;
  const auto e =
      thrown_by([&] { Guard g(rig.store, "no-such-box", rig.options(), rig.clock, rig.probe); });
  CHECK(e.code() == mama::errc::unknown_machine);
  CHECK_THAT(e.what(), Catch::Contains("'no-such-box'") && Catch::Contains("<memory>"));
  const auto e2 = thrown_by(
      [&] { Guard::try_claim(rig.store, "no-such-box", rig.options(), rig.clock, rig.probe); });
  CHECK(e2.code() == mama::errc::unknown_machine);
  CHECK(rig.store.commits() == 0);
}

TEST_CASE("an empty job text or machine name is refused before anything is touched",
          "[guard][error]") {
  Rig rig;
  CHECK(thrown_by([&] { rig.claim(rig.options("")); }).code() == mama::errc::invalid_argument);
  CHECK(thrown_by([&] { Guard g(rig.store, "", rig.options(), rig.clock, rig.probe); }).code() ==
        mama::errc::invalid_argument);
  CHECK(rig.store.commits() == 0);
}

TEST_CASE("an event handler that throws does not break a claim or a release", "[guard]") {
  Rig rig(Rig::legacy_holder("dead job", 999999));
  auto opts = rig.options();
  opts.on_event = [](const mama::Event&) { throw std::runtime_error("listener bug"); };
  {
    auto guard = rig.claim(opts);
    CHECK(rig.store.record(kMachine) == guard.record());
  }
  CHECK(rig.store.record(kMachine).idle());
}

// ------------------------------------------------------------------------------------------
// try_claim
// ------------------------------------------------------------------------------------------

TEST_CASE("try_claim returns nullopt at once when a live job holds the machine", "[guard][try]") {
  SECTION("held by a live PID (legacy record)") {
    Rig rig(Rig::legacy_holder("live job", 500));
    rig.probe.spawn(500);
    const auto before = rig.store.record(kMachine);
    CHECK_FALSE(rig.try_claim());
    CHECK(rig.store.record(kMachine) == before);
    CHECK(rig.clock.waits().empty());
    CHECK(rig.store.commits() == 0);
  }
  SECTION("held by a claim of another process (its hold is taken)") {
    Rig rig;
    mama::FakeProbe other;
    other.set_self({5000, 77});
    Guard first(rig.store, kMachine, rig.options("first"), rig.clock, other);
    CHECK_FALSE(rig.try_claim(rig.options("second")));
    CHECK(rig.store.record(kMachine) == first.record());
  }
  SECTION("a free machine is claimed and released at scope exit") {
    Rig rig;
    {
      auto g = rig.try_claim();
      REQUIRE(g);
      CHECK(rig.store.record(kMachine) == g->record());
    }
    CHECK(rig.store.record(kMachine).idle());
  }
}

// ------------------------------------------------------------------------------------------
// Nesting
// ------------------------------------------------------------------------------------------

TEST_CASE("a claim inside an ancestor's claim does not wait and restores its record",
          "[guard][nesting]") {
  SECTION("the machine is held by our parent process") {
    JobRecord parent;
    parent.job = "outer job";
    parent.pid = "77";
    parent.timestamp = std::to_string(kNow - 5);
    parent.host = "testhost";
    parent.boot_id = "boot-1";
    parent.start = "5";
    parent.token = "0123456789abcdef0123456789abcdef";
    Rig rig(parent);
    rig.probe.add_ancestor(77, 5);
    auto parents_hold = rig.store.hold_for_test(kMachine);  // the parent's job lock is held
    REQUIRE(parents_hold);
    {
      auto guard = rig.claim(rig.options("inner job"));
      CHECK(guard.nested());
      CHECK(rig.clock.waits().empty());
      CHECK(rig.kinds() == std::vector{EventKind::nested});
      CHECK(rig.events[0].record == parent);
      const auto r = rig.store.record(kMachine);
      CHECK(r == guard.record());
      CHECK(r.job == "inner job");
      CHECK(r.pid == "4242");
      CHECK(r.token != parent.token);
    }
    CHECK(rig.store.record(kMachine) == parent);  // byte for byte what the parent wrote
    CHECK(rig.kinds() == std::vector{EventKind::nested, EventKind::released});
  }

  SECTION("an ancestor's PID with another start time is not the ancestor: PID reused, stale") {
    JobRecord impostor = Rig::legacy_holder("reused pid job", 77);
    impostor.start = "6";
    Rig rig(impostor);
    rig.probe.add_ancestor(77, 5);
    auto guard = rig.try_claim();
    REQUIRE(guard);
    CHECK_FALSE(guard->nested());
    CHECK(rig.last(EventKind::stale_detected).reason == "PID reused by another process");
  }

  SECTION("two guards in one process on one machine: the inner one nests") {
    Rig rig;
    {
      auto outer = rig.claim(rig.options("outer"));
      const JobRecord outer_record = outer.record();
      {
        auto inner = rig.claim(rig.options("inner"));
        CHECK(inner.nested());
        CHECK(rig.store.record(kMachine).job == "inner");
      }
      CHECK(rig.store.record(kMachine) == outer_record);
    }
    CHECK(rig.store.record(kMachine).idle());
    CHECK(rig.clock.waits().empty());
  }
}

// ------------------------------------------------------------------------------------------
// Release after someone else took over (I4), and records rewritten by PHP
// ------------------------------------------------------------------------------------------

TEST_CASE("a claim cleared as stale while it ran leaves its successor alone (I4)",
          "[guard][release]") {
  Rig rig;
  JobRecord successor;
  successor.job = "successor job";
  successor.pid = "600";
  successor.timestamp = std::to_string(kNow + 60);
  successor.token = "abababababababababababababababab";
  std::ostringstream out;
  auto opts = rig.options();
  auto capture = opts.on_event;
  opts.on_event = [&](const mama::Event& e) {
    capture(e);
    mama::default_event_handler(e, out);
  };
  {
    auto guard = rig.claim(opts);
    rig.store.set_record(kMachine, successor);  // a waiter judged us stale and took over
  }
  const auto commits_after_takeover = rig.store.commits();
  CHECK(rig.store.record(kMachine) == successor);
  CHECK(rig.count(EventKind::released) == 0);
  const auto& e = rig.last(EventKind::successor_found);
  CHECK(e.record == successor);
  CHECK(rig.store.commits() == commits_after_takeover);
  CHECK_THAT(out.str(),
             Catch::Contains("machine 'test-machine' in <memory> was cleared as stale") &&
                 Catch::Contains("job 'successor job' (PID 600)") &&
                 Catch::Contains("leaving it alone"));
}

TEST_CASE("release recognises its record after a PHP rewrite dropped the token",
          "[guard][release]") {
  Rig rig;
  auto guard = rig.claim();
  JobRecord php;  // what PHP mama keeps of our record when it saves the machine
  SECTION("same job and PID, no token: still ours, cleared") {
    php.job = guard.record().job;
    php.pid = guard.record().pid;
    rig.store.set_record(kMachine, php);
    guard.release();
    CHECK(rig.store.record(kMachine).idle());
    CHECK(rig.count(EventKind::released) == 1);
  }
  SECTION("same PID, another job text: not ours, left alone") {
    php.job = "someone else's job";
    php.pid = guard.record().pid;
    rig.store.set_record(kMachine, php);
    guard.release();
    CHECK(rig.store.record(kMachine) == php);
    CHECK(rig.count(EventKind::successor_found) == 1);
  }
  SECTION("same job text, another PID: not ours, left alone") {
    php.job = guard.record().job;
    php.pid = "4243";
    rig.store.set_record(kMachine, php);
    guard.release();
    CHECK(rig.store.record(kMachine) == php);
    CHECK(rig.count(EventKind::successor_found) == 1);
  }
}

TEST_CASE("a store failure on release is reported, never thrown from the destructor",
          "[guard][release]") {
  Rig rig;
  std::ostringstream out;
  auto opts = rig.options();
  auto capture = opts.on_event;
  opts.on_event = [&](const mama::Event& e) {
    capture(e);
    mama::default_event_handler(e, out);
  };
  JobRecord ours;
  SECTION("destructor: release_failed event and the default handler's line") {
    auto run = [&] {
      auto guard = rig.claim(opts);
      ours = guard.record();
      rig.store.fail_next_commit();
    };
    REQUIRE_NOTHROW(run());
    const auto& e = rig.last(EventKind::release_failed);
    CHECK_THAT(e.reason, Catch::Contains("injected failure"));
    CHECK(e.record == ours);
    CHECK(rig.count(EventKind::released) == 0);
    CHECK_THAT(out.str(), Catch::Contains("could not release machine 'test-machine' in <memory>") &&
                              Catch::Contains("the next claim will detect the job as stale"));
  }
  SECTION("explicit release(): throws, and the guard is inactive afterwards") {
    auto guard = rig.claim(opts);
    ours = guard.record();
    rig.store.fail_next_commit();
    const auto e = thrown_by([&] { guard.release(); });
    CHECK(e.code() == mama::errc::io_error);
    CHECK_FALSE(guard.active());
  }
  // The record stayed (nothing was saved) and its hold was dropped. Two signals decide: while
  // this process lives, another process waits; once it is gone, the job is stale.
  CHECK(rig.store.record(kMachine) == ours);
  mama::FakeProbe next_process;
  next_process.set_self({5000, 1});
  next_process.spawn(4242, 1000);  // our PID still lives
  CHECK_FALSE(Guard::try_claim(rig.store, kMachine, rig.options("next"), rig.clock, next_process));
  CHECK(rig.count(EventKind::stale_detected) == 0);
  next_process.kill(4242);
  auto next = Guard::try_claim(rig.store, kMachine, rig.options("next"), rig.clock, next_process);
  REQUIRE(next);
  CHECK(rig.last(EventKind::stale_detected).record == ours);
}

// ------------------------------------------------------------------------------------------
// For real: mama.xml on disk, real processes, SIGKILL
// ------------------------------------------------------------------------------------------

namespace {

/// A copy of the sample lab file (one machine, test-machine, plus a <resource>) in a temp dir.
struct RealLab {
  mama::test::TempDir dir;
  std::filesystem::path file = dir / "mama.xml";
  RealLab() {
    mama::test::write_file(
        file, mama::test::read_file(std::string(MAMA_TEST_DATA_DIR) + "/legacy_php.xml"));
  }
  JobRecord record() {
    mama::XmlStateStore store(file);
    auto tx = store.begin();
    const auto r = tx.find(kMachine);
    REQUIRE(r);
    return *r;
  }
};

struct EventLog {
  std::vector<Seen> events;
  mama::GuardOptions options(std::string job) {
    mama::GuardOptions o;
    o.job = std::move(job);
    o.timeout = 60s;  // a safety net against a hang, not a measurement
    o.on_event = [this](const mama::Event& e) {
      events.push_back({e.kind, std::string(e.machine), std::string(e.store), e.record,
                        std::string(e.reason), e.waited});
    };
    return o;
  }
  std::size_t count(EventKind k) const {
    std::size_t n = 0;
    for (const auto& e : events) n += e.kind == k;
    return n;
  }
};

}  // namespace

TEST_CASE("JobGuard on a real mama.xml: the record is in the file while claimed, then cleared",
          "[guard][real]") {
  RealLab lab;
  EventLog log;
  mama::XmlStateStore store(lab.file);
  {
    mama::JobGuard guard(store, kMachine, log.options("real job"));
    const std::string text = mama::test::read_file(lab.file);
    CHECK_THAT(text, Catch::Contains("<job>real job</job>") &&
                         Catch::Contains("<job_pid>" + std::to_string(::getpid()) + "</job_pid>") &&
                         Catch::Contains("<job_token>" + guard.token() + "</job_token>"));
    CHECK(lab.record() == guard.record());
    CHECK(guard.record().start == std::to_string(mama::ProcProbe().self().start));
    CHECK(guard.record().boot_id == mama::ProcProbe().boot_id());
    CHECK(store.describe() == lab.file.string());
  }
  CHECK(lab.record() == JobRecord{});
  const std::string after = mama::test::read_file(lab.file);
  CHECK_THAT(after, Catch::Contains("<resource><name>r</name></resource>") &&
                        Catch::Contains("<mac>aa:bb:cc:dd:ee:ff</mac>"));
  CHECK(log.count(EventKind::claimed) == 1);
  CHECK(log.count(EventKind::released) == 1);
}

TEST_CASE("a holder killed with SIGKILL: the next claim gets the machine at once",
          "[guard][real][sigkill]") {
  RealLab lab;
  int ready[2];
  REQUIRE(::pipe2(ready, O_CLOEXEC) == 0);
  mama::test::Child holder([&] {
    ::close(ready[0]);
    mama::XmlStateStore store(lab.file);
    mama::JobGuard guard(store, kMachine, {.job = "sigkill job"});
    (void)!::write(ready[1], "!", 1);
    for (;;) ::pause();
    return 0;
  });
  ::close(ready[1]);
  char c;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  ::close(ready[0]);

  const std::string holder_pid = std::to_string(holder.pid());
  CHECK(lab.record().pid == holder_pid);
  CHECK(lab.record().job == "sigkill job");

  EventLog log;
  mama::XmlStateStore store(lab.file);
  // While the holder lives, the machine is busy.
  CHECK_FALSE(mama::JobGuard::try_claim(store, kMachine, log.options("too early")));
  CHECK(log.count(EventKind::stale_detected) == 0);

  holder.kill_and_reap(SIGKILL);
  CHECK(lab.record().pid == holder_pid);  // the phantom job is still in the file

  log.events.clear();
  std::ostringstream out;
  auto opts = log.options("after the crash");
  auto capture = opts.on_event;
  opts.on_event = [&](const mama::Event& e) {
    capture(e);
    mama::default_event_handler(e, out);
  };
  {
    mama::JobGuard guard(store, kMachine, opts);
    CHECK(log.count(EventKind::waiting) == 0);  // no poll period, no timeout: at once
    REQUIRE(log.count(EventKind::stale_detected) == 1);
    const auto& detected = log.events.front();
    CHECK(detected.kind == EventKind::stale_detected);
    CHECK(detected.reason == "process not running");
    CHECK(detected.record.pid == holder_pid);
    CHECK(out.str() ==
          "Detected stale job: sigkill job (PID: " + holder_pid + ", process not running)\n");
    CHECK(lab.record() == guard.record());
    CHECK(lab.record().pid == std::to_string(::getpid()));
  }
  CHECK(lab.record().idle());
}

TEST_CASE("a claim does not nest inside its own process's dead claim (I1 after a failed release)",
          "[guard][nesting]") {
  // Our first claim could not be released (the store failed): its record stays, its hold is gone.
  Rig rig;
  JobRecord dead;
  {
    auto first = rig.claim(rig.options("first"));
    dead = first.record();
    rig.store.fail_next_commit();
  }
  REQUIRE(rig.count(EventKind::release_failed) == 1);
  REQUIRE(rig.store.record(kMachine) == dead);
  // Our PID is the record's PID, so the ancestor rule matches; but the claim is dead, and a
  // nested claim takes no hold: another process would then take the machine beside us.
  auto second = rig.claim(rig.options("second"));
  CHECK_FALSE(second.nested());
  CHECK(rig.last(EventKind::stale_detected).record == dead);
  mama::FakeProbe other_process;
  other_process.set_self({5000, 1});
  CHECK_FALSE(
      Guard::try_claim(rig.store, kMachine, rig.options("third"), rig.clock, other_process));
  CHECK(rig.store.record(kMachine) == second.record());
}

TEST_CASE("a child process claiming its parent's machine on a real mama.xml nests",
          "[guard][real][nesting]") {
  RealLab lab;
  EventLog log;
  mama::XmlStateStore store(lab.file);
  mama::JobGuard parent(store, kMachine, log.options("parent job"));
  const JobRecord parents = parent.record();
  mama::test::Child child([&] {
    mama::XmlStateStore child_store(lab.file);
    auto opts = mama::GuardOptions{.job = "child job", .timeout = 0s};  // must not wait at all
    mama::JobGuard inner(child_store, kMachine, opts);
    if (!inner.nested()) return 10;
    if (lab.record() != inner.record()) return 11;
    return 0;
  });
  const int status = child.wait();
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(lab.record() == parents);  // restored on the child's release
}

TEST_CASE("a guard released in a fork child leaves the parent's claim and locks alone",
          "[guard][real][fork]") {
  RealLab lab;
  mama::XmlStateStore store(lab.file);
  mama::JobGuard outer(store, kMachine, {.job = "outer"});
  // Nested in our own claim: it keeps no hold, so only "who may release" protects its record.
  mama::JobGuard inner(store, kMachine, {.job = "inner"});
  REQUIRE(inner.nested());
  const JobRecord inners = inner.record();
  mama::test::Child child([&] {
    inner.release();
    outer.release();
    return 0;
  });
  const int status = child.wait();
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(lab.record() == inners);
  {
    auto tx = store.begin();
    CHECK_FALSE(tx.try_hold(kMachine));  // the parent's hold is still held
  }
  inner.release();
  CHECK(lab.record() == outer.record());
  outer.release();
  CHECK(lab.record().idle());
}

TEST_CASE("wait_until_free clears stale jobs and returns on a free machine without claiming it",
          "[guard][wait]") {
  SECTION("a live holder: waits until it is gone; nothing is written") {
    Rig rig(Rig::legacy_holder("running job", 500));
    rig.probe.spawn(500);
    const auto before = rig.store.record(kMachine);
    rig.clock.on_wait([&](std::size_t n) {
      if (n == 3) rig.store.set_record(kMachine, JobRecord{});
    });
    const auto commits = rig.store.commits();
    Guard::wait_until_free(rig.store, kMachine, rig.options(), rig.clock, rig.probe);
    CHECK(rig.clock.waits().size() == 3);
    CHECK(rig.store.record(kMachine).idle());
    CHECK(rig.store.commits() == commits + 1);  // only the holder's own clearing
    CHECK(rig.count(EventKind::claimed) == 0);
    (void)before;
  }
  SECTION("a stale holder: cleared, reported, and the machine stays free") {
    Rig rig(Rig::legacy_holder("dead job", 999));
    Guard::wait_until_free(rig.store, kMachine, rig.options(), rig.clock, rig.probe);
    CHECK(rig.clock.waits().empty());
    CHECK(rig.store.record(kMachine) == JobRecord{});
    CHECK(rig.count(EventKind::stale_detected) == 1);
    CHECK(rig.count(EventKind::stale_cleared) == 1);
    CHECK(rig.count(EventKind::claimed) == 0);
    // Free means free: no hold is kept either.
    CHECK(rig.store.hold_for_test(kMachine));
  }
  SECTION("a holder that never goes: errc::timeout") {
    Rig rig(Rig::legacy_holder("running job", 500));
    rig.probe.spawn(500);
    auto opts = rig.options();
    opts.timeout = 10s;
    const auto e =
        thrown_by([&] { Guard::wait_until_free(rig.store, kMachine, opts, rig.clock, rig.probe); });
    CHECK(e.code() == mama::errc::timeout);
  }
}

TEST_CASE("a process never nests inside its own claim's leftover job processes",
          "[guard][nesting]") {
  // Found by the torture run: the record kept for leftovers names this process, so the
  // ancestor rule matched and the next claim ran beside the previous job's processes.
  Rig rig;
  std::optional<mama::MemoryStateStore::hold> leftover;
  {
    auto guard = rig.claim(rig.options("first"));
    rig.store.on_hold_released(kMachine, [&] { leftover = rig.store.hold_for_test(kMachine); });
  }
  REQUIRE(leftover);
  REQUIRE(rig.store.record(kMachine).job == "first");
  CHECK_FALSE(rig.try_claim(rig.options("second")));  // held: wait, do not nest
  CHECK(rig.count(EventKind::nested) == 0);
  leftover.reset();  // the job's last process ended
  auto second = rig.try_claim(rig.options("second"));
  REQUIRE(second);
  CHECK_FALSE(second->nested());
  CHECK(rig.last(EventKind::stale_detected).reason == "processes of the job ended");
}

TEST_CASE("a claim from another thread of this process waits instead of nesting",
          "[guard][nesting][threads]") {
  Rig rig;
  auto first = rig.claim(rig.options("thread one"));
  std::optional<bool> other_got_it;
  std::thread other([&] {
    auto g = Guard::try_claim(rig.store, kMachine, rig.options("thread two"), rig.clock, rig.probe);
    other_got_it = g.has_value();
  });
  other.join();
  REQUIRE(other_got_it);
  CHECK_FALSE(*other_got_it);
  CHECK(rig.count(EventKind::nested) == 0);
  // The same thread still nests (the PHP tool's rule: a process is its own ancestor).
  auto inner = rig.claim(rig.options("same thread"));
  CHECK(inner.nested());
}

TEST_CASE("an event handler may open the same mama.xml: events come after the file lock",
          "[guard][real][events]") {
  RealLab lab;
  std::vector<std::string> seen;
  mama::GuardOptions opts{.job = "handler job"};
  opts.on_event = [&](const mama::Event& e) {
    // A second open file description of mama.xml: flock would block forever inside the
    // critical section.
    mama::XmlStateStore again(lab.file);
    auto tx = again.begin();
    seen.push_back(std::string(mama::to_string(e.kind)) + ":" + tx.find(kMachine)->job);
  };
  {
    mama::JobGuard guard(mama::XmlStateStore(lab.file), kMachine, opts);
  }
  REQUIRE(seen.size() >= 2);
  CHECK(seen.front() == "claimed:handler job");
  CHECK(seen.back() == "released:");
}
