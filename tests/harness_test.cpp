// tests/harness_test.cpp — mama::RunClaim, the claim behind the test-runner integrations: what it
// refuses before touching anything.
#include <catch2/catch.hpp>
#include <mama/runners/harness.hpp>

#include "support.hpp"

TEST_CASE("a PostgreSQL lab is refused by the runner integrations with what to do instead",
          "[harness]") {
  mama::HarnessSettings s;
  s.machine = "m1";
  s.job = "suite";
  s.state = "postgresql://mama@db.example/mama";
  mama::RunClaim claim;
  try {
    claim.acquire(s);
    FAIL("claimed");
  } catch (const mama::error& e) {
    CHECK(e.code() == mama::errc::invalid_argument);
    const std::string what = e.what();
    CHECK_THAT(what, Catch::Contains("m1") && Catch::Contains("mama run m1") &&
                         Catch::Contains("PostgreSQL"));
  }
  CHECK_FALSE(claim.active());
}

TEST_CASE("a claim for the run is released by the process that made it, not by a fork child",
          "[harness][fork]") {
  mama::test::TempDir dir;
  const auto file = dir / "mama.xml";
  mama::test::write_file(file, "<?xml version=\"1.0\"?>\n<settings>\n  <machine>\n"
                               "    <name>m1</name>\n    <job/>\n  </machine>\n</settings>\n");
  mama::HarnessSettings s;
  s.machine = "m1";
  s.job = "suite";
  s.state = file;
  mama::RunClaim claim;
  REQUIRE(claim.acquire(s));
  mama::test::Child child([&] {
    claim.release();  // in the child: must do nothing
    return 0;
  });
  REQUIRE(WIFEXITED(child.wait()));
  {
    mama::XmlStateStore store(file);
    auto tx = store.begin();
    CHECK(tx.find("m1")->job == "suite");
  }
  claim.release();
  mama::XmlStateStore store(file);
  CHECK(store.begin().find("m1")->idle());
}
