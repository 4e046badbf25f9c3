// gtest_suite — a GoogleTest suite (linked with gtest_main) that holds its lab machine for the
// whole run.
//   MAMA_MACHINE=test-machine MAMA_STATE=/path/to/mama.xml ./gtest_suite
#include <gtest/gtest.h>
#include <unistd.h>

#include <iostream>
#include <mama/runners/gtest.hpp>
#include <string>

MAMA_GTEST_ENVIRONMENT();

TEST(Example, OwnTestsRunAsUsual) { EXPECT_EQ(std::string("lab") + " machine", "lab machine"); }

TEST(Example, StateFileShowsThisProcessHoldingTheMachine) {
  const auto& claim = mama::process_run_claim();
  if (!claim.active()) GTEST_SKIP() << "MAMA_MACHINE is not set: nothing was claimed";
  const auto& settings = *claim.settings();
  mama::XmlStateStore store(settings.state);
  const auto record = store.begin().find(settings.machine);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->job, settings.job);
  EXPECT_EQ(record->pid, std::to_string(::getpid()));
  std::cout << "mama: " << settings.machine << " held by PID " << record->pid << " for job '"
            << record->job << "'\n";
}

// Disabled (run only with --gtest_also_run_disabled_tests): stops in the middle of a run, so a
// test can kill the runner.
TEST(Example, DISABLED_StopUntilKilled) {
  std::cout << "paused" << std::endl;
  for (;;) ::pause();
}
