// A second test file of the Catch2 suite: it includes <mama/runners/catch2.hpp> too, which is allowed
// (the listener is registered per file but the run claims once).
#include <unistd.h>

#include <mama/runners/catch2.hpp>
#include <string>

TEST_CASE("every test file may include mama/runners/catch2.hpp; the run still holds one claim",
          "[example][mama]") {
  const auto& claim = mama::process_run_claim();
  if (!claim.active()) return;
  mama::XmlStateStore store(claim.settings()->state);
  const auto record = store.begin().find(claim.settings()->machine);
  REQUIRE(record);
  // A second claim from this process would be nested and hold a token of its own.
  CHECK(record->token == claim.guard()->token());
  CHECK(record->pid == std::to_string(::getpid()));
}
