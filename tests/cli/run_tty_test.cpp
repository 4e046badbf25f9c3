// tests/cli/run_tty_test.cpp — `mama run` in a real terminal (a tmux pane): the job's process
// group gets the terminal, so ^C reaches every process of the job and none is left running.
//
// Skipped (exit status 77, CTest's skip) when tmux is not installed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <iostream>

#include "run_support.hpp"

namespace {

using namespace std::chrono_literals;
using mama::test::eventually;
using mama::test::pid_from;
using mama::test::process_exists;
using mama::test::read_file;
using mama::test::RunLab;

bool have_tmux() { return mama::test::run_capture({"tmux", "-V"}).status == 0; }

// A tmux server of its own, killed with everything in it at the end.
struct Tmux {
  std::string socket = "mama-run-test-" + std::to_string(::getpid());
  mama::test::RunResult operator()(std::vector<std::string> args) const {
    args.insert(args.begin(), {"tmux", "-L", socket});
    return mama::test::run_capture(args);
  }
  ~Tmux() { (*this)({"kill-server"}); }
};

}  // namespace

int main(int argc, char** argv) {
  if (!have_tmux()) {
    std::cerr << "tmux is not installed: the terminal test is skipped\n";
    return 77;
  }
  return Catch::Session().run(argc, argv);
}

TEST_CASE("^C in a terminal reaches every process of the job; none is left", "[run][tty]") {
  RunLab lab;
  const std::string cmd_pid = lab.path("cmd.pid"), bg_pid = lab.path("bg.pid"),
                    tpgid = lab.path("tpgid"), status = lab.path("status");
  // The pane's shell traps ^C (as an interactive shell would survive it) and records mama's
  // status. The job records its terminal's foreground group (field 8 of /proc/PID/stat).
  const std::string script =
      "trap 'echo int >> " + lab.path("ints") + "' INT\n" + MAMA_CLI + " --state " +
      lab.file.string() + " run m --job 'tty job' -- sh -c 'echo $$ > " + cmd_pid +
      "; cut -d\" \" -f8 /proc/$$/stat > " + tpgid + "; sleep 300 & echo $! > " + bg_pid +
      "; wait'\necho $? > " + status + "\nsleep 60\n";
  mama::test::write_file(lab.dir / "pane.sh", script);
  Tmux tmux;
  REQUIRE(tmux({"new-session", "-d", "-x", "150", "-y", "40", "sh", lab.path("pane.sh")}).status ==
          0);
  const pid_t cmd = pid_from(cmd_pid), bg = pid_from(bg_pid);
  mama::test::KillAtExit cleanup{{cmd, bg}};
  REQUIRE(bg > 0);
  REQUIRE(eventually([&] { return read_file(tpgid).find('\n') != std::string::npos; }));
  CHECK(std::stol(read_file(tpgid)) == cmd);  // the job's group is the terminal's foreground

  REQUIRE(tmux({"send-keys", "-t", "0", "C-c"}).status == 0);
  REQUIRE(eventually([&] { return read_file(status).find('\n') != std::string::npos; }, 20s));
  CHECK(read_file(status) == "130\n");  // sh died of SIGINT
  CHECK_FALSE(process_exists(bg));      // the background sleep got it too (or the SIGTERM after)
  CHECK_FALSE(process_exists(cmd));
  CHECK(lab.field("job").empty());
}
