// tests/cli/run_php_test.cpp — `mama run` beside the PHP mama tool, judged by the tool's own
// code (its sources, run in php through php_tool.php): `Machine::is_job_stale`, the tool's
// `ps -p job_pid` rule, and SimpleXML loading the file (issue 12, cases 3, 4 and 5).
//
// Skipped (exit status 77, CTest's skip) when php or the tool's sources are absent: set
// MAMA_PHP_SRC to the tool's src/ directory (default: ../shared/php-mama/src from the project).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "run_support.hpp"

namespace {

using namespace std::chrono_literals;
using mama::test::eventually;
using mama::test::pid_from;
using mama::test::process_exists;
using mama::test::RunLab;
using mama::test::RunningMama;

std::string php_src() {
  const char* env = std::getenv("MAMA_PHP_SRC");
  return env && *env ? env : MAMA_PHP_SRC_DEFAULT;
}

// What the PHP tool says of machine m: "stale", "running" or "idle".
std::string php_says(const RunLab& lab) {
  const auto r = mama::test::run_capture(
      {MAMA_PHP, MAMA_PHP_TOOL, php_src(), lab.file.string(), "stale", "m"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  return r.out.substr(0, r.out.find('\n'));
}

}  // namespace

int main(int argc, char** argv) {
  if (!std::filesystem::exists(std::filesystem::path(php_src()) / "machine.php")) {
    std::cerr << "the PHP tool's sources are not at " << php_src()
              << " (set MAMA_PHP_SRC): skipped\n";
    return 77;
  }
  return Catch::Session().run(argc, argv);
}

TEST_CASE("case 3: after a SIGKILL of mama run, the PHP tool sees the command's PID alive",
          "[php][run]") {
  RunLab lab;
  const std::string cmd_pid = lab.path("cmd.pid");
  RunningMama run(lab, {"run", "m", "--job", "long job", "--", "sh", "-c",
                        "echo $$ > " + cmd_pid + "; exec sleep 60"});
  const pid_t cmd = pid_from(cmd_pid);
  mama::test::KillAtExit cleanup{{cmd}};
  REQUIRE(cmd > 0);
  // The record names the command (its PID and start time), not mama run.
  REQUIRE(eventually([&] { return lab.field("job_pid") == std::to_string(cmd); }, 5s));
  CHECK(lab.field("job_start") == mama::test::start_ticks(cmd));

  run.signal(SIGKILL);
  REQUIRE(run.exited_within(5s) == 128 + SIGKILL);
  CHECK(php_says(lab) == "running");
  const auto waiter = lab.run({"run", "m", "--timeout", "0.5", "--", "true"});
  CHECK(waiter.status == 3);
  CHECK(lab.field("job") == "long job");

  ::kill(cmd, SIGKILL);
  REQUIRE(eventually([&] { return !process_exists(cmd); }));
  CHECK(php_says(lab) == "stale");
  const auto next = lab.run({"run", "m", "--timeout", "5", "--", "true"});
  CHECK(next.status == 0);
}

TEST_CASE("case 4: a job process that left the group keeps the machine busy, to both tools",
          "[php][run]") {
  RunLab lab;
  const std::string esc_pid = lab.path("escapee.pid");
  // The escapee starts a session of its own (out of reach of the group's signals) and keeps the
  // machine's lock that it inherited.
  RunningMama run(lab, {"run", "m", "--job", "escaping job", "--kill-grace", "1", "--", "sh", "-c",
                        "setsid sh -c 'echo $$ > \"$0\"; exec sleep 60' \"$0\" & "
                        "while [ ! -s \"$0\" ]; do sleep 0.02; done",
                        esc_pid});
  const pid_t escapee = pid_from(esc_pid);
  mama::test::KillAtExit cleanup{{escapee}};
  REQUIRE(escapee > 0);
  const auto status = run.exited_within(20s);
  REQUIRE(status);
  CHECK(*status == 0);
  CHECK(process_exists(escapee));
  CHECK(run.err().find("still hold machine 'm'") != std::string::npos);
  CHECK(run.err().find("(PID " + std::to_string(escapee) + "); it stays busy until they end") !=
        std::string::npos);

  // Busy, naming the escapee, for mama and for the PHP tool.
  CHECK(lab.field("job_pid") == std::to_string(escapee));
  const auto info = lab.run({"info", "m"});
  CHECK(info.out.find("RUNNING") != std::string::npos);
  CHECK(php_says(lab) == "running");
  CHECK(lab.run({"run", "m", "--timeout", "0.5", "--", "true"}).status == 3);

  ::kill(escapee, SIGKILL);
  REQUIRE(eventually([&] { return !process_exists(escapee); }));
  const auto next = lab.run({"run", "m", "--timeout", "5", "--", "true"});
  CHECK(next.status == 0);
}

TEST_CASE("case 5: while a job with odd bytes in its command line runs, SimpleXML loads the file",
          "[php][run][text]") {
  RunLab lab;
  std::string euros;
  for (int i = 0; i < 90; ++i) euros += "\xe2\x82\xac";
  // The command is the PHP tool's loader itself, run while the job holds the machine.
  const auto r = lab.run({"run", "m", "--", MAMA_PHP, MAMA_PHP_TOOL, php_src(), lab.file.string(),
                          "load", "caf\xe9", "\x1b]0;title\x07", euros});
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK(r.out == "ok\n");
}
