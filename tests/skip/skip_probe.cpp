// tests/skip/skip_probe.cpp — a Catch2 program on the tests' own main (test_main.cpp) whose
// cases skip or fail on demand; skip_status_test runs it to check what CTest will be told.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>

#include "support.hpp"

TEST_CASE("skips the rest of the case", "[skip]") {
  CHECK(true);
  MAMA_SKIP("the probe skips on purpose");
  FAIL("a case went on after MAMA_SKIP");
}

TEST_CASE("runs after a skipped case, and fails when told to", "[other]") {
  // Leaves a mark, so that the caller sees that this case ran after the skipped one.
  if (const char* mark = std::getenv("SKIP_PROBE_MARK")) std::ofstream(mark) << "ran\n";
  CHECK(std::getenv("SKIP_PROBE_FAIL") == nullptr);
}
