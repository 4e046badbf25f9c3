// The torture checker's log reader: a SIGKILL that tore the last line of a killed worker's
// log must not read as evidence (a "check" without its verdict once read as an I4 violation).
#include "torture_log.hpp"

#include <catch2/catch.hpp>

using mama::torture::split_log;

TEST_CASE("whole lines are read as written", "[torture]") {
  const auto r = split_log("start tm-0 abc 1 job\ncheck tm-0 abc ok 2\n", true);
  CHECK(r.lines == std::vector<std::string>{"start tm-0 abc 1 job", "check tm-0 abc ok 2"});
  CHECK(!r.torn);
  CHECK(split_log("", true).lines.empty());
  CHECK(split_log("\n", false).lines == std::vector<std::string>{""});
}

TEST_CASE("a killed worker's torn last line is set aside", "[torture]") {
  const std::string log = "start tm-0 74d991df02378b68053aa 1 j\ncheck tm-0 74d991df02378b68053";
  const auto r = split_log(log, /*killed=*/true);
  CHECK(r.lines == std::vector<std::string>{"start tm-0 74d991df02378b68053aa 1 j"});
  REQUIRE(r.torn);
  CHECK(*r.torn == "check tm-0 74d991df02378b68053");
}

TEST_CASE("a last line without newline from a worker that was not killed is still judged",
          "[torture]") {
  const auto r = split_log("start tm-0 abc 1 j\ncheck tm-0 abc", /*killed=*/false);
  CHECK(r.lines == std::vector<std::string>{"start tm-0 abc 1 j", "check tm-0 abc"});
  CHECK(!r.torn);
}

TEST_CASE("only the last line can be set aside", "[torture]") {
  // A line in the middle always has its newline: it is judged even for a killed worker.
  const auto r = split_log("check tm-0 abc\nend tm-0 abc 5\n", true);
  CHECK(r.lines == std::vector<std::string>{"check tm-0 abc", "end tm-0 abc 5"});
  CHECK(!r.torn);
}
