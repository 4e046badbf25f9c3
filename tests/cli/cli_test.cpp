// tests/cli/cli_test.cpp — the real `mama` binary on real files with real processes: every
// command's output and exit status, the five original staleness cases, SIGKILLed holders,
// signal forwarding, and bad input that must leave the state file byte for byte unchanged.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "mama_runner.hpp"

namespace {

using mama::test::eventually;
using mama::test::read_file;
using mama::test::TempDir;
using mama::test::write_file;
namespace fs = std::filesystem;

using mama::test::exec_mama;
using mama::test::exit_status_of;
using mama::test::prepare_child_env;
using mama::test::Result;
using mama::test::run_mama;
using Background = mama::test::BackgroundMama;

// One <machine> element; job fields only when given.
std::string machine(const std::string& name, const std::string& job = "",
                    const std::string& pid = "", const std::string& stamp = "",
                    const std::string& extra = "") {
  std::string m = "  <machine>\n    <name>" + name +
                  "</name>\n    <mac>52:54:00:00:00:" + std::to_string(10 + name.size()) +
                  "</mac>\n    <ip>10.0.0." + std::to_string(name.size()) +
                  "</ip>\n    <is_started>1</is_started>\n    <only_vm>0</only_vm>\n";
  if (!job.empty()) m += "    <job>" + job + "</job>\n";
  if (!pid.empty()) m += "    <job_pid>" + pid + "</job_pid>\n";
  if (!stamp.empty()) m += "    <job_timestamp>" + stamp + "</job_timestamp>\n";
  m += extra;
  m += "    <start_timeout>240</start_timeout>\n  </machine>\n";
  return m;
}

std::string lab(const std::vector<std::string>& machines) {
  std::string s = "<?xml version=\"1.0\"?>\n<settings>\n";
  for (const auto& m : machines) s += m;
  return s + "  <resource>\n    <name>nfs</name>\n  </resource>\n</settings>\n";
}

std::string seconds_ago(long s) {
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return std::to_string(now - s);
}

const std::string dead_pid = "4194305";  // above the kernel's largest pid_max: never a process

// A state file in a temporary directory.
struct Lab {
  TempDir dir;
  fs::path file = dir / "mama.xml";
  explicit Lab(const std::string& content) { write_file(file, content); }
  std::string content() const { return read_file(file); }
  Result run(std::vector<std::string> args, const std::vector<std::string>& env = {}) const {
    args.insert(args.begin(), {"--state", file.string()});
    return run_mama(args, env);
  }
};

std::string line_with(const std::string& text, const std::string& needle) {
  const auto at = text.find(needle);
  if (at == std::string::npos) return {};
  const auto begin = text.rfind('\n', at);
  const auto end = text.find('\n', at);
  return text.substr(begin == std::string::npos ? 0 : begin + 1,
                     end == std::string::npos ? std::string::npos
                                              : end - (begin == std::string::npos ? 0 : begin + 1));
}

}  // namespace

TEST_CASE("list prints the PHP tool's table of the sample lab with [STALE] after the stale job",
          "[cli]") {
  Lab l(read_file(MAMA_SAMPLE_LAB));
  const std::string before = l.content();
  const Result r = l.run({"list"});
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  CHECK(r.out ==
        "No  Name            IP              MAC               State   On   Pwr   VM  Job" +
            std::string(29, ' ') + "\n" + std::string(85, '-') + "\n" +
            "1   alpha           192.168.1.11    52:54:00:12:34:01 -       Yes  -         \n"
            "2   bravo           192.168.1.12    52:54:00:12:34:02 -       Yes  -         run "
            "nightly-tests aarch64/debian\n"
            "3   charlie         192.168.1.13    52:54:00:12:34:03 -            -         run "
            "test-job x86_64/fedora [STALE]\n"
            "4   delta-vm        192.168.1.14    52:54:00:12:34:04 -       Yes  -     Yes \n");
  CHECK(l.content() == before);
  CHECK_FALSE(fs::exists(l.dir / "mama.xml.d"));  // listing creates no lock files
}

TEST_CASE("list cuts long values to their column and --json keeps them whole", "[cli]") {
  const std::string long_name = "a-very-long-machine-name";
  Lab l(lab({machine(long_name, "job", dead_pid)}));
  const Result r = l.run({"list"});
  REQUIRE(r.status == 0);
  CHECK(r.out.find("\n1   a-very-long-mac 10.0.0.24       ") != std::string::npos);

  const Result j = l.run({"list", "--json"});
  REQUIRE(j.status == 0);
  const auto doc = nlohmann::json::parse(j.out);
  CHECK(doc["state"] == l.file.string());
  REQUIRE(doc["machines"].size() == 1);
  const auto& m = doc["machines"][0];
  CHECK(m["name"] == long_name);
  CHECK(m["fields"]["ip"] == "10.0.0.24");
  CHECK(m["job"]["job"] == "job");
  CHECK(m["job"]["job_pid"] == dead_pid);
  CHECK(m["status"] == "stale");
  CHECK(m["reason"] == "process not running");
}

TEST_CASE("the five original cases through list and info", "[cli]") {
  SECTION("a job whose PID does not exist is stale") {
    Lab l(lab({machine("m", "run x", dead_pid, "1763047845")}));
    CHECK(line_with(l.run({"list"}).out, "run x").ends_with("run x [STALE]"));
    const Result r = l.run({"info", "m"});
    CHECK(r.status == 0);
    CHECK(r.out.find("Running job:\trun x\n"
                     "Job PID:\t4194305\n"
                     "Job started:\t2025-11-13 15:30:45\n"
                     "Job status:\tSTALE (process not running)\n") != std::string::npos);
  }
  SECTION("a job whose PID is alive (this test) is running") {
    Lab l(lab({machine("m", "run x", std::to_string(::getpid()), seconds_ago(3600))}));
    CHECK(line_with(l.run({"list"}).out, "run x").ends_with("run x"));
    const Result r = l.run({"info", "m"});
    CHECK(line_with(r.out, "Job status:") == "Job status:\tRUNNING");
    CHECK(line_with(r.out, "Job PID:") == "Job PID:\t" + std::to_string(::getpid()));
  }
  SECTION("no PID and a timestamp older than 5 minutes is stale") {
    Lab l(lab({machine("m", "run x", "", seconds_ago(601))}));
    CHECK(line_with(l.run({"list"}).out, "run x").ends_with("run x [STALE]"));
    CHECK(line_with(l.run({"info", "m"}).out, "Job status:") ==
          "Job status:\tSTALE (no PID, set 10 min ago)");
    // --stale-after moves the limit.
    CHECK(line_with(l.run({"--stale-after", "3600", "info", "m"}).out, "Job status:") ==
          "Job status:\tRUNNING (no PID recorded)");
  }
  SECTION("no PID and a recent timestamp is running") {
    Lab l(lab({machine("m", "run x", "", seconds_ago(30))}));
    CHECK(line_with(l.run({"list"}).out, "run x").ends_with("run x"));
    CHECK(line_with(l.run({"info", "m"}).out, "Job status:") ==
          "Job status:\tRUNNING (no PID recorded)");
  }
  SECTION("no job: no job lines") {
    Lab l(lab({machine("m")}));
    const Result r = l.run({"info", "m"});
    CHECK(r.status == 0);
    CHECK(r.out.find("Name:\t\tm\n") == 0);
    CHECK(r.out.find("Job") == std::string::npos);
    CHECK(r.out.find("Running job") == std::string::npos);
    CHECK(line_with(l.run({"list"}).out, "10.0.0.1 ").ends_with("-         "));
  }
}

TEST_CASE("info selects a machine by MAC and prints JSON", "[cli]") {
  Lab l(read_file(MAMA_SAMPLE_LAB));
  const Result r = l.run({"info", "52:54:00:12:34:02"});
  CHECK(r.status == 0);
  CHECK(r.out.find("Name:\t\tbravo\n") == 0);
  CHECK(r.out.find("Is only VM:\tno\n") != std::string::npos);
  CHECK(r.out.find("Job host:\tlab-ctl-2\n") != std::string::npos);
  CHECK(line_with(r.out, "Job status:") ==
        "Job status:\tRUNNING (on host lab-ctl-2, not checked from here)");

  const Result j = l.run({"info", "charlie", "--json"});
  REQUIRE(j.status == 0);
  const auto m = nlohmann::json::parse(j.out);
  CHECK(m["name"] == "charlie");
  CHECK(m["job"]["started"] == "2025-11-13 15:30:45");
  CHECK(m["status"] == "stale");
}

TEST_CASE("clear clears a stale job and refuses a live one unless --force", "[cli]") {
  const std::string live = std::to_string(::getpid());
  Lab l(lab({machine("stale", "old job", dead_pid, "1763047845"),
             machine("live", "my job", live, seconds_ago(10)), machine("idle")}));

  SECTION("a stale job is cleared without asking, other machines untouched") {
    const Result r = l.run({"clear", "stale"});
    CHECK(r.status == 0);
    CHECK(r.out == "Cleared stale job on stale: old job (PID: 4194305, process not running)\n");
    const std::string after = l.content();
    CHECK(after.find("old job") == std::string::npos);
    CHECK(after.find("<job>my job</job>") != std::string::npos);
    CHECK(after.find("<name>nfs</name>") != std::string::npos);
    CHECK(l.run({"info", "stale"}).out.find("Running job") == std::string::npos);
  }
  SECTION("a live job is refused with status 4 and the file is unchanged") {
    const std::string before = l.content();
    const Result r = l.run({"clear", "live"});
    CHECK(r.status == 4);
    CHECK(r.err.starts_with("mama: machine 'live' in " + l.file.string()));
    CHECK(r.err.find("--force") != std::string::npos);
    CHECK(l.content() == before);
  }
  SECTION("--force clears a live job") {
    const Result r = l.run({"clear", "--force", "live"});
    CHECK(r.status == 0);
    CHECK(r.out.starts_with("Cleared running job on live (--force): my job (PID: " + live));
    CHECK(l.content().find("my job") == std::string::npos);
  }
  SECTION("an idle machine has nothing to clear") {
    const std::string before = l.content();
    const Result r = l.run({"clear", "idle"});
    CHECK(r.status == 0);
    CHECK(r.out == "idle has no job; nothing to clear\n");
    CHECK(l.content() == before);
  }
  SECTION("all clears every stale job and leaves live ones") {
    const Result r = l.run({"clear", "all"});
    CHECK(r.status == 0);
    CHECK(r.out.find("Cleared stale job on stale:") != std::string::npos);
    CHECK(r.out.find("Left running job on live: my job") != std::string::npos);
    CHECK(r.out.find("Cleared 1 job; left 1 running") != std::string::npos);
    CHECK(l.content().find("old job") == std::string::npos);
    CHECK(l.content().find("my job") != std::string::npos);
    const Result f = l.run({"clear", "all", "--force"});
    CHECK(f.status == 0);
    CHECK(l.content().find("my job") == std::string::npos);
  }
}

TEST_CASE("run claims the machine, runs the command and exits with its status", "[cli]") {
  Lab l(lab({machine("m"), machine("other", "keep me", dead_pid)}));
  const std::string other_before = line_with(l.content(), "keep me");

  SECTION("the command sees the claim in the file; afterwards it is released") {
    const Result r = l.run({"run", "m", "--job", "nightly tests", "--", "cat", l.file.string()});
    CHECK(r.status == 0);
    CHECK(r.out.find("<job>nightly tests</job>") != std::string::npos);
    CHECK(r.out.find("<job_token>") != std::string::npos);
    CHECK(l.content().find("nightly tests") == std::string::npos);
    CHECK(line_with(l.content(), "keep me") == other_before);
  }
  SECTION("the command's exit status") {
    CHECK(l.run({"run", "m", "--", "sh", "-c", "exit 7"}).status == 7);
    CHECK(l.content().find("exit 7") == std::string::npos);
  }
  SECTION("a command killed by a signal: 128 + signal") {
    CHECK(l.run({"run", "m", "--", "sh", "-c", "kill -TERM $$"}).status == 128 + SIGTERM);
  }
  SECTION("a command that cannot be executed: 127, and the machine is released") {
    const Result r = l.run({"run", "m", "--", "/nonexistent/command"});
    CHECK(r.status == 127);
    CHECK(r.err.starts_with("mama: cannot run '/nonexistent/command'"));
    CHECK(l.content().find("nonexistent") == std::string::npos);
  }
  SECTION("the default job text is the command line; arguments pass through unchanged") {
    const Result r = l.run({"run", "m", "--", "sh", "-c", "grep '<job>' \"$0\"; echo \"$@\"",
                            l.file.string(), "-x", "--y"});
    CHECK(r.status == 0);
    CHECK(r.out.find("-x --y\n") != std::string::npos);
    CHECK(r.out.find("<job>sh -c") != std::string::npos);
  }
}

TEST_CASE("run after a holder was killed with SIGKILL clears the stale job and runs", "[cli]") {
  Lab l(lab({machine("m")}));
  const fs::path pidfile = l.dir / "cmd.pid";
  Background holder({"--state", l.file.string(), "run", "m", "--job", "crashed job", "--", "sh",
                     "-c", "echo $$ > " + pidfile.string() + "; exec sleep 100"},
                    l.dir / "h.out", l.dir / "h.err");
  REQUIRE(eventually([&] { return read_file(pidfile).find('\n') != std::string::npos; }));
  const pid_t sleeper = std::stoi(read_file(pidfile));
  CHECK(holder.signal_and_wait(SIGKILL) == 128 + SIGKILL);
  ::kill(sleeper, SIGKILL);
  CHECK(l.content().find("crashed job") != std::string::npos);  // the phantom job

  const Result r = l.run({"run", "m", "--", "true"});
  CHECK(r.status == 0);
  // The record names the command (mama run hands the claim over to it), not mama run.
  CHECK(r.err.find("Detected stale job: crashed job (PID: " + std::to_string(sleeper) +
                   ", process not running)") != std::string::npos);
  CHECK(l.content().find("crashed job") == std::string::npos);
}

TEST_CASE("a SIGKILLed mama run leaves the machine busy while its command runs", "[cli]") {
  Lab l(lab({machine("m")}));
  const fs::path pidfile = l.dir / "cmd.pid";
  Background holder({"--state", l.file.string(), "run", "m", "--job", "long job", "--", "sh", "-c",
                     "echo $$ > " + pidfile.string() + "; exec sleep 100"},
                    l.dir / "h.out", l.dir / "h.err");
  REQUIRE(eventually([&] { return read_file(pidfile).find('\n') != std::string::npos; }));
  const pid_t sleeper = std::stoi(read_file(pidfile));
  CHECK(holder.signal_and_wait(SIGKILL) == 128 + SIGKILL);

  const std::string before = l.content();
  const Result c = l.run({"clear", "m"});
  CHECK(c.status == 4);
  CHECK(line_with(l.run({"list"}).out, "long job").ends_with("long job"));
  CHECK(line_with(l.run({"info", "m"}).out, "Job status:") == "Job status:\tRUNNING");
  const Result w = l.run({"wait", "m", "--timeout", "1.5"});
  CHECK(w.status == 3);
  CHECK(w.err.find("mama: waiting for machine 'm': job 'long job'") != std::string::npos);
  CHECK(w.err.find("mama: timed out after") != std::string::npos);
  CHECK(l.content() == before);

  ::kill(sleeper, SIGKILL);
  // The kernel drops the job lock when the command is gone: then the job is stale.
  REQUIRE(
      eventually([&] { return line_with(l.run({"list"}).out, "long job").ends_with("[STALE]"); }));
  const Result cleared = l.run({"clear", "m"});
  CHECK(cleared.status == 0);
  CHECK(cleared.out.starts_with("Cleared stale job on m: long job"));
}

TEST_CASE("SIGTERM and SIGINT to mama run reach the command; the machine is released", "[cli]") {
  Lab l(lab({machine("m")}));
  SECTION("SIGTERM: a command that traps it exits 0, and so does mama run") {
    const fs::path ready = l.dir / "ready", got = l.dir / "got";
    Background run({"--state", l.file.string(), "run", "m", "--job", "trapping", "--", "sh", "-c",
                    "trap 'echo term > " + got.string() + "; exit 0' TERM; echo > " +
                        ready.string() + "; while :; do sleep 0.05; done"},
                   l.dir / "o", l.dir / "e");
    REQUIRE(eventually([&] { return fs::exists(ready); }));
    CHECK(run.signal_and_wait(SIGTERM) == 0);
    CHECK(read_file(got) == "term\n");
    CHECK(l.content().find("trapping") == std::string::npos);
  }
  SECTION("SIGINT: the command dies of it; mama run exits 130") {
    const fs::path ready = l.dir / "ready";
    Background run({"--state", l.file.string(), "run", "m", "--job", "sleeper", "--", "sh", "-c",
                    "echo > " + ready.string() + "; exec sleep 100"},
                   l.dir / "o", l.dir / "e");
    REQUIRE(eventually([&] { return fs::exists(ready); }));
    CHECK(run.signal_and_wait(SIGINT) == 128 + SIGINT);
    CHECK(l.content().find("sleeper") == std::string::npos);
    CHECK(l.run({"clear", "m"}).out == "m has no job; nothing to clear\n");
  }
}

TEST_CASE("wait returns when the machine is free, clearing a stale job", "[cli]") {
  // The holder is a child of this test, not an ancestor of `mama` (an ancestor's claim would be
  // entered as a nested claim by `mama run`).
  mama::test::Child holder([] {
    ::pause();
    return 0;
  });
  const std::string holder_pid = std::to_string(holder.pid());
  Lab l(lab(
      {machine("idle"), machine("stale", "old", dead_pid), machine("busy", "mine", holder_pid)}));
  SECTION("idle: at once, and the file is not written") {
    const std::string before = l.content();
    const Result r = l.run({"wait", "idle"});
    CHECK(r.status == 0);
    CHECK(r.out == "idle is free\n");
    CHECK(l.content() == before);
  }
  SECTION("stale: cleared with the Detected line") {
    const Result r = l.run({"wait", "stale", "--timeout", "5"});
    CHECK(r.status == 0);
    CHECK(r.err == "Detected stale job: old (PID: 4194305, process not running)\n");
    CHECK(l.content().find("<job>old</job>") == std::string::npos);
  }
  SECTION("busy until --timeout: status 3, plain progress lines, file unchanged") {
    const std::string before = l.content();
    const Result r = l.run({"wait", "busy", "--timeout", "1.5"});
    CHECK(r.status == 3);
    CHECK(r.err.starts_with("mama: waiting for machine 'busy': job 'mine' (PID " + holder_pid +
                            ", running)"));
    CHECK(r.err.find("\r") == std::string::npos);
    CHECK(r.err.find("mama: timed out after 1.") != std::string::npos);
    CHECK(r.err.find(" s waiting for machine 'busy' in " + l.file.string() +
                     ": held by job 'mine'") != std::string::npos);
    CHECK(l.content() == before);
  }
  SECTION("run --timeout on a busy machine: status 3, the command never runs") {
    const Result r =
        l.run({"run", "busy", "--timeout", "0", "--", "touch", (l.dir / "ran").string()});
    CHECK(r.status == 3);
    CHECK_FALSE(fs::exists(l.dir / "ran"));
  }
}

TEST_CASE("bad input gets a clear error and leaves the file byte for byte unchanged", "[cli]") {
  const std::vector<std::vector<std::string>> commands = {{"list"},
                                                          {"list", "--json"},
                                                          {"info", "m"},
                                                          {"clear", "m"},
                                                          {"clear", "all", "--force"},
                                                          {"wait", "m", "--timeout", "0"},
                                                          {"run", "m", "--", "true"}};
  const std::string good = lab({machine("m", "old", dead_pid)});

  SECTION("truncated, malformed and empty files: status 6") {
    const std::vector<std::string> bad = {
        good.substr(0, good.size() / 2),                                   // truncated
        "<settings><machine><name>m</name><job>x</machine></settings>\n",  // malformed
        "",                                                                // empty
        "<?xml version=\"1.0\"?>\n<other></other><!-- </settings> -->\n",  // not a mama file
    };
    for (const auto& content : bad) {
      Lab l(content);
      for (const auto& cmd : commands) {
        const Result r = l.run(cmd);
        INFO(content << " / " << cmd.front());
        CHECK(r.status == 6);
        CHECK(r.err.starts_with("mama: " + l.file.string()));
        CHECK(r.out.empty());
        CHECK(l.content() == content);
      }
    }
  }
  SECTION("a missing file: status 6, nothing created") {
    TempDir d;
    for (const auto& cmd : commands) {
      std::vector<std::string> args = {"--state", (d / "mama.xml").string()};
      args.insert(args.end(), cmd.begin(), cmd.end());
      const Result r = run_mama(args);
      CHECK(r.status == 6);
      CHECK(r.err.starts_with("mama: state file " + (d / "mama.xml").string() + " does not exist"));
    }
    CHECK(fs::is_empty(d.path()));
  }
  SECTION("a directory instead of a file: an error naming it") {
    TempDir d;
    const Result r = run_mama({"--state", d.path().string(), "list"});
    CHECK(r.status != 0);
    CHECK(r.err.starts_with("mama: "));
    CHECK(r.err.find(d.path().string()) != std::string::npos);
  }
  SECTION("an unknown machine: status 5") {
    Lab l(good);
    for (const auto& cmd : std::vector<std::vector<std::string>>{{"info", "nope"},
                                                                 {"clear", "nope"},
                                                                 {"wait", "nope"},
                                                                 {"run", "nope", "--", "true"}}) {
      const Result r = l.run(cmd);
      CHECK(r.status == 5);
      CHECK(r.err == "mama: machine 'nope' not found in " + l.file.string() +
                         "; see the names with `mama list`\n");
      CHECK(l.content() == good);
    }
  }
  SECTION("bad numbers and usage errors: status 2") {
    Lab l(good);
    for (const auto& cmd :
         std::vector<std::vector<std::string>>{{"wait", "m", "--timeout", "abc"},
                                               {"wait", "m", "--timeout", "-5"},
                                               {"run", "m", "--timeout", "1e3x", "--", "true"},
                                               {"--stale-after", "-1", "clear", "m"},
                                               {"clear", "m", "--stale-after", "1.5"},
                                               {"list", "--bogus"},
                                               {"run", "m"},
                                               {"frobnicate"},
                                               {}}) {
      const Result r = l.run(cmd);
      CHECK(r.status == 2);
      CHECK(r.err.starts_with("mama: "));
      CHECK(l.content() == good);
    }
    const Result r = l.run({"wait", "m", "--timeout", "abc"});
    CHECK(r.err.find("'abc' is not a number of seconds") != std::string::npos);
  }
}

TEST_CASE("control characters from the file are printed escaped", "[cli]") {
  const std::string evil = "evil\x1b]0;owned\x07 job\x1b[2J";
  Lab l(lab({machine("m", evil, dead_pid)}));
  for (const auto& cmd : std::vector<std::vector<std::string>>{{"list"}, {"info", "m"}}) {
    const Result r = l.run(cmd);
    CHECK(r.status == 0);
    CHECK(r.out.find('\x1b') == std::string::npos);
    CHECK(r.out.find('\x07') == std::string::npos);
    CHECK(r.out.find("evil\\e]0;owned\\x07 job\\e[2J") != std::string::npos);
  }
  const Result c = l.run({"clear", "m"});
  CHECK(c.out.find('\x1b') == std::string::npos);
  CHECK(c.out.find("evil\\e]0;owned") != std::string::npos);
}

TEST_CASE("the state file comes from --state, MAMA_STATE or MAMA_PATH", "[cli]") {
  Lab l(lab({machine("from-env")}));
  CHECK(run_mama({"list"}, {"MAMA_STATE=" + l.file.string()}).out.find("from-env") !=
        std::string::npos);
  CHECK(run_mama({"list"}, {"MAMA_PATH=" + l.dir.path().string()}).out.find("from-env") !=
        std::string::npos);
  const Result r = run_mama({"list"}, {"MAMA_PATH=" + (l.dir / "nowhere").string()});
  CHECK(r.status == 6);
  CHECK(r.err.find((l.dir / "nowhere" / "mama.xml").string()) != std::string::npos);
}

TEST_CASE("--help for each command and --version", "[cli]") {
  for (const std::string cmd : {"list", "info", "clear", "run", "wait"}) {
    const Result r = run_mama({cmd, "--help"});
    CHECK(r.status == 0);
    CHECK(r.out.find("Usage: mama " + cmd) != std::string::npos);
  }
  const Result h = run_mama({"--help"});
  CHECK(h.status == 0);
  CHECK(h.out.find("Exit status:") != std::string::npos);
  const Result v = run_mama({"--version"});
  CHECK(v.status == 0);
  CHECK(v.out.starts_with("mama 0."));
}

namespace {
// Runs mama on a pseudo-terminal (stdout and stderr both), returning everything it wrote.
Result mama_on_tty(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  REQUIRE(pid >= 0);
  if (pid == 0) {
    prepare_child_env(env);
    exec_mama(args);
  }
  Result r;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0) break;  // EIO once the child closed the terminal
    r.out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(master);
  int raw = 0;
  ::waitpid(pid, &raw, 0);
  r.status = exit_status_of(raw);
  return r;
}
}  // namespace

TEST_CASE("colour and in-place progress only on a terminal, never colour with NO_COLOR", "[cli]") {
  Lab l(read_file(MAMA_SAMPLE_LAB));
  const std::vector<std::string> list = {"--state", l.file.string(), "list"};
  CHECK(mama_on_tty(list, {}).out.find("\x1b[1;31m [STALE]\x1b[0m") != std::string::npos);
  const Result plain = mama_on_tty(list, {"NO_COLOR=1"});
  CHECK(plain.out.find('\x1b') == std::string::npos);
  CHECK(plain.out.find("run test-job x86_64/fedora [STALE]") != std::string::npos);
  CHECK(run_mama(list).out.find('\x1b') == std::string::npos);  // a pipe: no colour

  const Result w =
      mama_on_tty({"--state", l.file.string(), "wait", "bravo", "--timeout", "1.5"}, {});
  CHECK(w.status == 3);
  // A terminal of unknown width counts as 80 columns: the line is cut to 79 (waiting_test).
  CHECK(w.out.find("\rWaiting for bravo: job 'run nightly-tests aarch64/debian' (PID 23817, "
                   "on host l\x1b[K") != std::string::npos);
}

// `mama` does not link libpq: a postgresql:// state is served by `mama-pg` beside it, which it
// execs after parsing (same arguments, environment and process). Here a stand-in mama-pg beside
// a copy of `mama` shows what it is given; without one, the error names it.
TEST_CASE("a postgresql:// state runs mama-pg beside mama, with the same arguments", "[cli]") {
  TempDir dir;
  const fs::path mama = dir.path() / "mama";
  fs::copy_file(MAMA_CLI, mama);
  const bool with_pg = fs::exists(fs::path(MAMA_CLI).parent_path() / "mama-pg");
  const std::string url = "postgresql://nobody@127.0.0.1:1/lab";
  const std::vector<std::string> env = mama::test::run_env({});

  const Result missing = mama::test::run_capture({mama.string(), "--state", url, "list"}, env);
  if (!with_pg) {  // built without libpq: no helper, and mama says so
    CHECK(missing.status == 2);
    CHECK(missing.err.find("built without PostgreSQL support") != std::string::npos);
    return;
  }
  CHECK(missing.status == 1);
  CHECK(missing.err.find((dir.path() / "mama-pg").string()) != std::string::npos);
  CHECK(missing.err.find("cannot be executed (No such file or directory)") != std::string::npos);
  CHECK(missing.out.empty());

  write_file(dir.path() / "mama-pg", "#!/bin/sh\necho \"pid=$$ args=$*\"\nexit 42\n");
  fs::permissions(dir.path() / "mama-pg", fs::perms::owner_all);
  const Result r = mama::test::run_capture({mama.string(), "--state", url, "list", "--json"}, env);
  CHECK(r.status == 42);
  CHECK(r.out.find("args=--state " + url + " list --json\n") != std::string::npos);

  // From MAMA_STATE too; a usage error is mama's own (parsed before the hand-over).
  const Result from_env = mama::test::run_capture({mama.string(), "info", "alpha"},
                                                  mama::test::run_env({"MAMA_STATE=" + url}));
  CHECK(from_env.status == 42);
  CHECK(from_env.out.find("args=info alpha\n") != std::string::npos);
  const Result usage = mama::test::run_capture({mama.string(), "--state", url, "lst"}, env);
  CHECK(usage.status == 2);
  CHECK(usage.out.empty());

  // A file state never runs it.
  write_file(dir.path() / "mama.xml", lab({machine("alpha")}));
  const Result file = mama::test::run_capture(
      {mama.string(), "--state", (dir.path() / "mama.xml").string(), "list"}, env);
  CHECK(file.status == 0);
  CHECK(file.out.find("alpha") != std::string::npos);
}
