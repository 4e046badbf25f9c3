// tests/test_main.cpp — the main of the Catch2 test programs: runs every case, then reports a
// skipped check (MAMA_SKIP, skip_check in support.hpp) as CTest's skip status when nothing failed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "support.hpp"

int main(int argc, char* argv[]) {
  const int failures = Catch::Session().run(argc, argv);
  return mama::test::exit_status_after(failures);
}
