// A second test file of the doctest suite: it includes <mama/runners/doctest.hpp> too, which is allowed
// (the listener is registered per file but the run claims once).
#include <unistd.h>

#include <mama/runners/doctest.hpp>
#include <string>

TEST_CASE("every test file may include mama/runners/doctest.hpp; the run still holds one claim") {
  const auto& claim = mama::process_run_claim();
  if (!claim.active()) return;
  mama::XmlStateStore store(claim.settings()->state);
  const auto record = store.begin().find(claim.settings()->machine);
  REQUIRE(record);
  // A second claim from this process would be nested and hold a token of its own.
  CHECK(record->token == claim.guard()->token());
  CHECK(record->pid == std::to_string(::getpid()));
}
