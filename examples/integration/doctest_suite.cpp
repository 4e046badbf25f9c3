// doctest_suite — a doctest test suite that holds its lab machine for the whole run.
//   MAMA_MACHINE=test-machine MAMA_STATE=/path/to/mama.xml ./doctest_suite
// The one line that does it is `#include <mama/runners/doctest.hpp>` (it registers the listener).
// clang-format off
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <mama/runners/doctest.hpp>
// clang-format on

#include <unistd.h>

#include <iostream>
#include <string>

TEST_CASE("the suite's own tests run as usual") {
  std::string text = "lab";
  text += " machine";
  REQUIRE(text == "lab machine");
}

TEST_CASE("while the suite runs, the state file shows this process holding the machine") {
  const auto& claim = mama::process_run_claim();
  if (!claim.active()) {
    MESSAGE("MAMA_MACHINE is not set: nothing was claimed");
    return;
  }
  const auto& settings = *claim.settings();
  mama::XmlStateStore store(settings.state);
  const auto record = store.begin().find(settings.machine);
  REQUIRE(record);
  CHECK(record->job == settings.job);
  CHECK(record->pid == std::to_string(::getpid()));
  std::cout << "mama: " << settings.machine << " held by PID " << record->pid << " for job '"
            << record->job << "'\n";
}

// Skipped unless asked for (--no-skip): stops in the middle of a run, so a test can kill the
// runner.
TEST_CASE("stop until killed" * doctest::skip()) {
  std::cout << "paused" << std::endl;
  for (;;) ::pause();
}
