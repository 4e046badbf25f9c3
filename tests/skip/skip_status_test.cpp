// tests/skip/skip_status_test.cpp — a case that calls MAMA_SKIP makes its program exit with
// CTest's skip status (77) when no case failed, a failure still fails the program, and the other
// cases run either way.
#include <catch2/catch.hpp>
#include <string>

#include "support.hpp"

using mama::test::read_file;
using mama::test::run_capture;
using mama::test::TempDir;

TEST_CASE("a skipped case is reported as skipped, a failure as a failure", "[skip]") {
  TempDir dir;
  const std::string mark = (dir / "mark").string();
  SECTION("a skip and passes: skipped, and the other case ran") {
    const auto r = run_capture({SKIP_PROBE}, {"SKIP_PROBE_MARK=" + mark, "SKIP_PROBE_FAIL"});
    INFO(r.out << r.err);
    CHECK(r.status == mama::test::skip_status);
    CHECK(r.err.find("skipped: the probe skips on purpose") != std::string::npos);
    CHECK(read_file(mark) == "ran\n");
  }
  SECTION("a skip and a failure: failed (status 1, not 77), and the other case ran") {
    const auto r = run_capture({SKIP_PROBE}, {"SKIP_PROBE_MARK=" + mark, "SKIP_PROBE_FAIL=1"});
    INFO(r.out << r.err);
    CHECK(r.status == 1);
    CHECK(read_file(mark) == "ran\n");
  }
  SECTION("no case skipped: passed") {
    const auto r = run_capture({SKIP_PROBE, "[other]"}, {"SKIP_PROBE_FAIL"});
    INFO(r.out << r.err);
    CHECK(r.status == 0);
  }
}
