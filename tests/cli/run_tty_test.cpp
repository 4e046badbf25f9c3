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

namespace {
// Fields of /proc/PID/stat after the command name: 0 state, 1 ppid, 5 tpgid.
std::string stat_field(pid_t pid, int index) {
  const std::string text = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close = text.rfind(')');
  if (close == std::string::npos) return {};
  std::string rest = text.substr(close + 2);
  for (int i = 0; i < index; ++i) rest = rest.substr(rest.find(' ') + 1);
  return rest.substr(0, rest.find(' '));
}
}  // namespace

TEST_CASE("^Z stops the job and mama run with it; fg continues both", "[run][tty]") {
  RunLab lab;
  const std::string cmd_pid = lab.path("cmd.pid"), status = lab.path("status");
  Tmux tmux;
  REQUIRE(
      tmux({"new-session", "-d", "-x", "200", "-y", "40", "bash", "--norc", "--noprofile", "-i"})
          .status == 0);
  // Through `sh -c`, so that the status is written when mama run ends (bash would run the rest
  // of a list as soon as its job stops).
  const std::string line = "sh -c \"" + std::string(MAMA_CLI) + " --state " + lab.file.string() +
                           " run m -- sh -c 'echo \\$\\$ > " + cmd_pid +
                           "; exec sleep 300'; echo \\$? > " + status + "\"";
  REQUIRE(tmux({"send-keys", "-t", "0", "-l", line}).status == 0);
  REQUIRE(tmux({"send-keys", "-t", "0", "Enter"}).status == 0);
  const pid_t cmd = pid_from(cmd_pid);
  mama::test::KillAtExit cleanup{{cmd}};
  REQUIRE(cmd > 0);
  const pid_t mama_run = static_cast<pid_t>(std::stol(stat_field(cmd, 1)));
  REQUIRE(eventually([&] { return stat_field(cmd, 5) == std::to_string(cmd); }));

  REQUIRE(tmux({"send-keys", "-t", "0", "C-z"}).status == 0);
  CHECK(eventually([&] { return stat_field(cmd, 0) == "T" && stat_field(mama_run, 0) == "T"; }));
  CHECK(stat_field(cmd, 5) != std::to_string(cmd));  // the shell has the terminal back

  REQUIRE(tmux({"send-keys", "-t", "0", "-l", "fg"}).status == 0);
  REQUIRE(tmux({"send-keys", "-t", "0", "Enter"}).status == 0);
  CHECK(eventually([&] { return stat_field(cmd, 0) == "S" && stat_field(mama_run, 0) == "S"; }));
  CHECK(eventually([&] { return stat_field(cmd, 5) == std::to_string(cmd); }));

  REQUIRE(tmux({"send-keys", "-t", "0", "C-c"}).status == 0);
  REQUIRE(eventually([&] { return read_file(status).find('\n') != std::string::npos; }, 20s));
  CHECK(read_file(status) == "130\n");
  CHECK(lab.field("job").empty());
}
