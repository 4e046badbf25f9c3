// mama/runners/doctest.hpp — a doctest listener that claims a lab machine for the whole test run.
//
//   #define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN   // in the one file that has it, as usual
//   #include <mama/runners/doctest.hpp>                  // instead of <doctest/doctest.h>
//
// Including this header registers the listener (named "mama"). When MAMA_MACHINE is set, the
// run claims that machine in the state file ($MAMA_STATE, else $MAMA_PATH/mama.xml) before the
// first test, with the job text $MAMA_JOB (default: the test binary's name), and releases it
// after the last. Without MAMA_MACHINE, and for queries (--list-test-cases, --count, --help),
// it does nothing. See mama/runners/harness.hpp.
//
// A failed claim ends the run before any test: doctest lets no listener stop a run, so the
// listener prints the message (naming the machine and the file) to stderr and calls
// std::exit(EXIT_FAILURE).
//
// The header may be included in any number of test files: the claim is made once per process.
// Define MAMA_DOCTEST_NO_AUTO_REGISTER to register mama::DoctestListener yourself.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <exception>
#include <iostream>

#include "mama/runners/harness.hpp"

namespace mama {

/// The listener. It uses the process's shared claim (process_run_claim()).
class DoctestListener : public ::doctest::IReporter {
 public:
  explicit DoctestListener(const ::doctest::ContextOptions&) {}

  void test_run_start() override {
    try {
      owner_ = process_run_claim().acquire();
    } catch (const std::exception& e) {
      // An exception would escape doctest::Context::run() and terminate the program.
      std::cout.flush();
      std::cerr << e.what() << '\n' << "mama: no test was run\n";
      std::cerr.flush();
      std::exit(EXIT_FAILURE);
    }
  }

  void test_run_end(const ::doctest::TestRunStats&) override {
    if (!owner_) return;
    owner_ = false;
    try {
      process_run_claim().release();
    } catch (const std::exception& e) {
      std::cerr << "mama: releasing the machine after the test run failed: " << e.what() << '\n';
    }
  }

  void report_query(const ::doctest::QueryData&) override {}
  void test_case_start(const ::doctest::TestCaseData&) override {}
  void test_case_reenter(const ::doctest::TestCaseData&) override {}
  void test_case_end(const ::doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const ::doctest::TestCaseException&) override {}
  void subcase_start(const ::doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const ::doctest::AssertData&) override {}
  void log_message(const ::doctest::MessageData&) override {}
  void test_case_skipped(const ::doctest::TestCaseData&) override {}

 private:
  bool owner_ = false;
};

}  // namespace mama

#ifndef MAMA_DOCTEST_NO_AUTO_REGISTER
// Registered once per translation unit under one name: doctest keeps one listener "mama".
DOCTEST_REGISTER_LISTENER("mama", 0, ::mama::DoctestListener);
#endif
