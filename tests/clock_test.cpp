// tests/clock_test.cpp — the Clock policy models: ManualClock (the fake that makes waiting
// instant) and SystemClock's wake descriptor. No test here measures how long anything takes.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <mama/clock.hpp>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("ManualClock starts at the SPEC's example time unless told otherwise", "[clock]") {
  mama::ManualClock clock;
  CHECK(clock.now().time_since_epoch() == std::chrono::seconds(1763047845));
  mama::ManualClock other(std::chrono::system_clock::time_point(100s));
  CHECK(other.now().time_since_epoch() == 100s);
  CHECK(clock.waits().empty());
}

TEST_CASE("ManualClock waiting advances both clocks, records the wait and never blocks",
          "[clock]") {
  mama::ManualClock clock;
  const auto wall0 = clock.now();
  const auto steady0 = clock.steady_now();
  CHECK_FALSE(clock.wait_for(10s, -1));
  CHECK_FALSE(clock.wait_for(250ms, 7));  // a wake descriptor never wakes the fake
  CHECK(clock.now() - wall0 == 10250ms);
  CHECK(clock.steady_now() - steady0 == 10250ms);
  CHECK(clock.waits() == std::vector<std::chrono::nanoseconds>{10s, 250ms});
}

TEST_CASE("ManualClock::advance moves time without counting as a wait", "[clock]") {
  mama::ManualClock clock;
  const auto wall0 = clock.now();
  clock.advance(1h);
  CHECK(clock.now() - wall0 == 1h);
  CHECK(clock.waits().empty());
}

TEST_CASE("ManualClock copies share one timeline, so a test can watch the guard's copy",
          "[clock]") {
  mama::ManualClock mine;
  mama::ManualClock given = mine;
  given.wait_for(3s, -1);
  CHECK(mine.waits().size() == 1);
  CHECK(mine.now() == given.now());
}

TEST_CASE("ManualClock's wait hook runs after each wait, with the count and the new time",
          "[clock]") {
  mama::ManualClock clock;
  const auto start = clock.now();
  std::vector<std::size_t> counts;
  std::vector<std::chrono::system_clock::duration> seen;
  clock.on_wait([&](std::size_t n) {
    counts.push_back(n);
    seen.push_back(clock.now() - start);
  });
  clock.wait_for(1s, -1);
  clock.wait_for(2s, -1);
  clock.advance(5s);  // not a wait: no hook
  CHECK(counts == std::vector<std::size_t>{1, 2});
  CHECK(seen == std::vector<std::chrono::system_clock::duration>{1s, 3s});
}

TEST_CASE("SystemClock reads the real clocks", "[clock]") {
  mama::SystemClock clock;
  const auto before = std::chrono::system_clock::now();
  const auto now = clock.now();
  const auto after = std::chrono::system_clock::now();
  CHECK(before <= now);
  CHECK(now <= after);
  const auto s1 = clock.steady_now();
  const auto s2 = clock.steady_now();
  CHECK(s1 <= s2);
}

TEST_CASE("SystemClock wakes on a readable descriptor and reports it", "[clock]") {
  mama::SystemClock clock;
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  SECTION("nothing to read: a zero wait returns false") {
    CHECK_FALSE(clock.wait_for(0ns, fds[0]));
  }
  SECTION("data pending: woken, even with a wait of an hour") {
    REQUIRE(::write(fds[1], "x", 1) == 1);
    CHECK(clock.wait_for(1h, fds[0]));
  }
  SECTION("no descriptor and a negative wait: returns false at once") {
    CHECK_FALSE(clock.wait_for(-5s, -1));
  }
  ::close(fds[0]);
  ::close(fds[1]);
}
