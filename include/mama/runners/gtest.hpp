// mama/runners/gtest.hpp — a GoogleTest global environment that claims a lab machine for the whole run.
//
//   #include <mama/runners/gtest.hpp>
//   MAMA_GTEST_ENVIRONMENT();                    // at namespace scope, e.g. with gtest_main
// or, in your own main() after ::testing::InitGoogleTest(&argc, argv):
//   mama::add_gtest_environment();
//
// When MAMA_MACHINE is set, SetUp() claims that machine in the state file ($MAMA_STATE, else
// $MAMA_PATH/mama.xml) before the first test, with the job text $MAMA_JOB (default: the test
// binary's name), and TearDown() releases it after the last. Without MAMA_MACHINE it does
// nothing. A failed claim is a fatal failure of the environment: GoogleTest runs no test,
// prints the message (naming the machine and the file) and RUN_ALL_TESTS() returns 1.
// See mama/runners/harness.hpp.
#pragma once

#include <gtest/gtest.h>

#include <exception>

#include "mama/runners/harness.hpp"

namespace mama {

/// The environment. It uses the process's shared claim (process_run_claim()).
class GTestEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    try {
      owner_ = process_run_claim().acquire();
    } catch (const std::exception& e) {
      GTEST_FAIL() << e.what();
    }
  }

  void TearDown() override {
    if (!owner_) return;
    owner_ = false;
    try {
      process_run_claim().release();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "mama: releasing the machine after the test run failed: " << e.what();
    }
  }

 private:
  bool owner_ = false;
};

/// Registers the environment with GoogleTest (once per process; later calls return the same
/// one). GoogleTest owns it.
inline ::testing::Environment* add_gtest_environment() {
  static ::testing::Environment* const env =
      ::testing::AddGlobalTestEnvironment(new GTestEnvironment);
  return env;
}

}  // namespace mama

/// Registers mama::GTestEnvironment at static initialization (for suites linked with gtest_main).
#define MAMA_GTEST_ENVIRONMENT()                                                     \
  namespace {                                                                        \
  [[maybe_unused]] ::testing::Environment* const mama_gtest_environment_registered = \
      ::mama::add_gtest_environment();                                               \
  }                                                                                  \
  static_assert(true, "")
