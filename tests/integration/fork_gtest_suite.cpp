// A GoogleTest suite holding its machine through mama/runners/gtest.hpp, whose death tests fork: the
// child's exit() runs the static RunClaim's destructor, which must not release the parent's
// claim (SPEC §4, "Who may release").
#include <unistd.h>

#include <cstdlib>
#include <mama/runners/gtest.hpp>

#include "fork_check.hpp"

MAMA_GTEST_ENVIRONMENT();

TEST(ForkSuite, ADeathTestLeavesTheRunsClaimAlone) {
  ASSERT_EQ(mama::test::run_claim_problem(), "");
  EXPECT_EXIT(std::exit(0), ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(::_exit(3), ::testing::ExitedWithCode(3), "");
  EXPECT_EQ(mama::test::run_claim_problem(), "");
}

TEST(ForkSuite, AThreadsafeDeathTestLeavesItAloneToo) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(std::exit(0), ::testing::ExitedWithCode(0), "");
  EXPECT_EQ(mama::test::run_claim_problem(), "");
}
