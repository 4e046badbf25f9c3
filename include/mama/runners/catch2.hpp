// mama/runners/catch2.hpp — a Catch2 (v2.13 or v3) listener that claims a lab machine for the whole
// test run.
//
//   Catch2 v2:                              Catch2 v3:
//   #define CATCH_CONFIG_MAIN  // one file      // link Catch2::Catch2WithMain as usual
//   #include <mama/runners/catch2.hpp>                  #include <mama/runners/catch2.hpp>
//   // instead of (or before) <catch2/catch.hpp>  // gives <catch2/catch_test_macros.hpp>
//
// Including this header registers the listener. When MAMA_MACHINE is set, the run claims that
// machine in the state file ($MAMA_STATE, else $MAMA_PATH/mama.xml) before the first test, with
// the job text $MAMA_JOB (default: the test binary's name), and releases it after the last.
// Without MAMA_MACHINE it does nothing. A failed claim ends the run before any test with a
// message naming the machine and the file; the exit status is 255 with v2 and 1 with v3.
// See mama/runners/harness.hpp.
//
// The version is what the compiler sees: a Catch2 header included before this one decides
// (CATCH_VERSION_MAJOR); otherwise v3 when <catch2/catch_test_macros.hpp> is on the include path,
// else v2. Define MAMA_CATCH2_VERSION to 2 or 3 to choose when both are installed.
//
// The header may be included in any number of test files: the claim is made once per process.
// Define MAMA_CATCH2_NO_AUTO_REGISTER to register mama::Catch2Listener yourself.
#pragma once

#if defined(MAMA_CATCH2_VERSION)
#define MAMA_CATCH2_MAJOR_ MAMA_CATCH2_VERSION
#elif defined(CATCH_VERSION_MAJOR)
#define MAMA_CATCH2_MAJOR_ CATCH_VERSION_MAJOR
#elif defined(TWOBLUECUBES_SINGLE_INCLUDE_CATCH_HPP_INCLUDED)
#define MAMA_CATCH2_MAJOR_ 2
#elif __has_include(<catch2/catch_test_macros.hpp>)
#define MAMA_CATCH2_MAJOR_ 3
#else
#define MAMA_CATCH2_MAJOR_ 2
#endif

#if MAMA_CATCH2_MAJOR_ == 3
#include <catch2/catch_test_macros.hpp>
#include <catch2/interfaces/catch_interfaces_reporter.hpp>
#include <catch2/reporters/catch_reporter_event_listener.hpp>
#include <catch2/reporters/catch_reporter_registrars.hpp>
#include <iostream>
#elif MAMA_CATCH2_MAJOR_ == 2
#if defined(TWOBLUECUBES_SINGLE_INCLUDE_CATCH_HPP_INCLUDED) && \
    !defined(CATCH_CONFIG_EXTERNAL_INTERFACES)
#error \
    "include <mama/runners/catch2.hpp> before <catch2/catch.hpp> (or define CATCH_CONFIG_EXTERNAL_INTERFACES before it): the listener needs Catch2's external interfaces"
#endif
#ifndef CATCH_CONFIG_EXTERNAL_INTERFACES
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#endif
#include <catch2/catch.hpp>
#else
#error "mama/runners/catch2.hpp supports Catch2 v2 and v3 (MAMA_CATCH2_VERSION must be 2 or 3)"
#endif

#include <exception>
#include <ostream>
#include <string>

#include "mama/runners/harness.hpp"

namespace mama {

namespace detail {
#if MAMA_CATCH2_MAJOR_ == 3
using Catch2ListenerBase = Catch::EventListenerBase;
inline std::ostream& catch2_error_stream() { return std::cerr; }
#else
using Catch2ListenerBase = Catch::TestEventListenerBase;
inline std::ostream& catch2_error_stream() { return Catch::cerr(); }
#endif
}  // namespace detail

/// The listener. Every registered instance shares process_run_claim(); the first claims.
class Catch2Listener : public detail::Catch2ListenerBase {
 public:
  using detail::Catch2ListenerBase::Catch2ListenerBase;

  void testRunStarting(Catch::TestRunInfo const& info) override {
    detail::Catch2ListenerBase::testRunStarting(info);
    // Catch2 reports an exception thrown here with its what() and ends the run before any test
    // (exit status 255 with v2, 1 with v3).
    owner_ = process_run_claim().acquire(std::string(info.name));
  }

  void testRunEnded(Catch::TestRunStats const& stats) override {
    detail::Catch2ListenerBase::testRunEnded(stats);
    if (!owner_) return;
    owner_ = false;
    try {
      process_run_claim().release();
    } catch (const std::exception& e) {
      detail::catch2_error_stream()
          << "mama: releasing the machine after the test run failed: " << e.what() << '\n';
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
