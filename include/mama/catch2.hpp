// mama/catch2.hpp — a Catch2 (v2.13) listener that claims a lab machine for the whole test run.
//
//   #define CATCH_CONFIG_MAIN          // in the one file that has it, as usual
//   #include <mama/catch2.hpp>         // instead of (or before) <catch2/catch.hpp>
//
// Including this header registers the listener. When MAMA_MACHINE is set, the run claims that
// machine in the state file ($MAMA_STATE, else $MAMA_PATH/mama.xml) before the first test, with
// the job text $MAMA_JOB (default: the test binary's name), and releases it after the last.
// Without MAMA_MACHINE it does nothing. A failed claim ends the run before any test with a
// message naming the machine and the file, and exit status 255. See mama/harness.hpp.
//
// The header may be included in any number of test files: the claim is made once per process.
// Define MAMA_CATCH2_NO_AUTO_REGISTER to register mama::Catch2Listener yourself.
#pragma once

#if defined(TWOBLUECUBES_SINGLE_INCLUDE_CATCH_HPP_INCLUDED) && \
    !defined(CATCH_CONFIG_EXTERNAL_INTERFACES)
#error \
    "include <mama/catch2.hpp> before <catch2/catch.hpp> (or define CATCH_CONFIG_EXTERNAL_INTERFACES before it): the listener needs Catch2's external interfaces"
#endif
#ifndef CATCH_CONFIG_EXTERNAL_INTERFACES
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#endif
#include <catch2/catch.hpp>
#include <string>

#include "mama/harness.hpp"

namespace mama {

/// The listener. Every registered instance shares process_run_claim(); the first claims.
class Catch2Listener : public Catch::TestEventListenerBase {
 public:
  using Catch::TestEventListenerBase::TestEventListenerBase;

  void testRunStarting(Catch::TestRunInfo const& info) override {
    Catch::TestEventListenerBase::testRunStarting(info);
    // Catch2 reports an exception thrown here with its what() and exit status 255.
    owner_ = process_run_claim().acquire(info.name);
  }

  void testRunEnded(Catch::TestRunStats const& stats) override {
    Catch::TestEventListenerBase::testRunEnded(stats);
    if (!owner_) return;
    owner_ = false;
    try {
      process_run_claim().release();
    } catch (const std::exception& e) {
      Catch::cerr() << "mama: releasing the machine after the test run failed: " << e.what()
                    << '\n';
    }
  }

 private:
  bool owner_ = false;
};

}  // namespace mama

#ifndef MAMA_CATCH2_NO_AUTO_REGISTER
namespace {
// CATCH_REGISTER_LISTENER pastes the name into an identifier: it needs an unqualified name.
using MamaCatch2Listener = ::mama::Catch2Listener;
}  // namespace
CATCH_REGISTER_LISTENER(MamaCatch2Listener)
#endif
