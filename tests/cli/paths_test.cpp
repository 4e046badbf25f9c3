// tests/cli/paths_test.cpp — one mama.xml reached by several paths (issue 12, case 2): a live
// job claimed through one name is never "stale" through another. Symlinks share the lock files
// (they follow the file's canonical path); a hard link and a removed <file>.d/ lose them, and
// the second signal (the recorded process is alive) keeps the job running.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "run_support.hpp"

namespace {

using namespace std::chrono_literals;
using mama::test::eventually;
using mama::test::RunLab;
using mama::test::RunningMama;

/// Points `alias.file` at another name of `real`'s file (in real's directory).
void make_alias(const RunLab& real, RunLab& alias, const std::string& how) {
  const auto name = real.dir / ("alias-" + how + ".xml");
  if (how == "symlink")
    std::filesystem::create_symlink(real.file, name);
  else
    std::filesystem::create_hard_link(real.file, name);
  alias.file = name;
}

}  // namespace

TEST_CASE("a job claimed through one path is running through every other path", "[cli][paths]") {
  const std::string how = GENERATE(as<std::string>{}, "symlink", "hardlink", "removed-dir");
  CAPTURE(how);
  RunLab real;
  RunLab alias;
  if (how != "removed-dir") make_alias(real, alias, how);
  const RunLab& first = how == "removed-dir" ? real : alias;
  RunningMama holder(first, {"run", "m", "--job", "A", "--", "sleep", "30"});
  // Claimed and handed over to the command (the record names the command, not mama run).
  REQUIRE(eventually(
      [&] {
        const auto pid = real.field("job_pid");
        return real.field("job") == "A" && !pid.empty() && pid != std::to_string(holder.pid());
      },
      10s));
  if (how == "removed-dir") {
    // Moved away at once (mama may be writing into it), then removed.
    const std::filesystem::path d = real.file.string() + ".d", gone = real.file.string() + ".gone";
    std::filesystem::rename(d, gone);
    std::error_code ec;
    std::filesystem::remove_all(gone, ec);
    REQUIRE_FALSE(std::filesystem::exists(d));
  }

  const auto second = real.run({"run", "m", "--timeout", "1", "--", "true"});
  INFO(second.err);
  INFO("holder: " << holder.err());
  CHECK(second.status == 3);  // timed out waiting: the live job was not cleared
  CHECK(second.err.find("Detected stale job") == std::string::npos);
  CHECK(real.field("job") == "A");
  const auto info = real.run({"info", "m"});
  CHECK(info.out.find("RUNNING") != std::string::npos);

  holder.signal(SIGTERM);
  REQUIRE(holder.exited_within(20s));
  // Once it is gone, the machine is free through the other path at once.
  const auto third = real.run({"run", "m", "--timeout", "5", "--", "true"});
  INFO(third.err);
  CHECK(third.status == 0);
}
