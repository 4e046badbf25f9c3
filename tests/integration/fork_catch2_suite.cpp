// A Catch2 suite holding its machine through mama/runners/catch2.hpp that forks: the child's exit()
// runs the static RunClaim's destructor, which must not release the parent's claim; neither
// must a JobGuard whose scope a child leaves.
// clang-format off
#define CATCH_CONFIG_MAIN
#include <mama/runners/catch2.hpp>
// clang-format on

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "fork_check.hpp"

namespace {
int exit_status_of(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
}  // namespace

TEST_CASE("a forked child's exit() leaves the run's claim alone", "[fork]") {
  REQUIRE(mama::test::run_claim_problem() == "");
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) std::exit(0);  // runs static destructors: the RunClaim's among them
  CHECK(exit_status_of(pid) == 0);
  CHECK(mama::test::run_claim_problem() == "");
}

TEST_CASE("a child that leaves a JobGuard's scope or releases it does nothing", "[fork]") {
  const auto& settings = *mama::process_run_claim().settings();
  // A second machine, claimed here for the test.
  mama::XmlStateStore store(settings.state);
  mama::JobGuard guard(store, "other-machine", {.job = "forked scope"});
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    {
      mama::JobGuard moved(std::move(guard));  // the child's copy goes out of scope here
    }
    mama::process_run_claim().release();
    ::_exit(0);
  }
  CHECK(exit_status_of(pid) == 0);
  CHECK(mama::test::run_claim_problem() == "");
  auto tx = store.begin();
  const auto r = tx.find("other-machine");
  REQUIRE(r);
  CHECK(r->token == guard.token());
  CHECK_FALSE(tx.try_hold("other-machine"));
}
