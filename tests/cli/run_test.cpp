// tests/cli/run_test.cpp — `mama run` and the processes of a job (issue 12), with the real
// binary, real process groups and real signals: leftovers of the command are ended (case 4), a
// signal reaches the whole group, a second interruption while ending or releasing exits at once,
// and job text the PHP tool could not read back never reaches the file (case 5).
#include <sys/file.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <mama/xml_state_store.hpp>

#include "run_support.hpp"

namespace {

using namespace std::chrono_literals;
using mama::test::eventually;
using mama::test::group_exists;
using mama::test::pid_from;
using mama::test::process_exists;
using mama::test::read_file;
using mama::test::RunLab;
using mama::test::RunningMama;

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

TEST_CASE("the command runs in its own process group; what it leaves there is ended",
          "[run][group]") {
  RunLab lab;
  const std::string cmd_pid = lab.path("cmd.pid"), bg_pid = lab.path("bg.pid");
  RunningMama run(
      lab, {"run", "m", "--job", "leaves a child", "--", "sh", "-c",
            "echo $$ > " + cmd_pid + "; sleep 300 & echo $! > " + bg_pid + "; exec sleep 1"});
  const pid_t cmd = pid_from(cmd_pid), bg = pid_from(bg_pid);
  mama::test::KillAtExit cleanup{{cmd, bg}};
  REQUIRE(cmd > 0);
  REQUIRE(bg > 0);
  CHECK(::getpgid(cmd) == cmd);  // a group of its own, led by the command
  CHECK(::getpgid(bg) == cmd);
  CHECK(::getpgid(run.pid()) != cmd);

  const auto status = run.exited_within(20s);
  REQUIRE(status);
  CHECK(*status == 0);
  CHECK_FALSE(process_exists(bg));  // ended (SIGTERM) and reaped by mama run, its subreaper
  CHECK_FALSE(group_exists(cmd));
  CHECK(run.err().find("left processes behind in its group " + std::to_string(cmd)) !=
        std::string::npos);
  CHECK(lab.field("job").empty());  // released
}

TEST_CASE("SIGTERM to mama run reaches every process of the job; the machine is released",
          "[run][group]") {
  RunLab lab;
  const std::string cmd_pid = lab.path("cmd.pid"), bg_pid = lab.path("bg.pid");
  RunningMama run(lab, {"run", "m", "--job", "waits for a child", "--", "sh", "-c",
                        "echo $$ > " + cmd_pid + "; sleep 300 & echo $! > " + bg_pid + "; wait"});
  const pid_t cmd = pid_from(cmd_pid), bg = pid_from(bg_pid);
  mama::test::KillAtExit cleanup{{cmd, bg}};
  REQUIRE(bg > 0);
  run.signal(SIGTERM);
  const auto status = run.exited_within(20s);
  REQUIRE(status);
  CHECK(*status == 128 + SIGTERM);
  CHECK_FALSE(process_exists(bg));
  CHECK_FALSE(group_exists(cmd));
  CHECK(lab.field("job").empty());
  CHECK(lab.run({"list"}).out.find("waits for a child") == std::string::npos);
}

TEST_CASE("a leftover that ignores SIGTERM is killed after --kill-grace", "[run][group]") {
  RunLab lab;
  const std::string bg_pid = lab.path("bg.pid");
  const auto begin = std::chrono::steady_clock::now();
  RunningMama run(lab, {"run", "m", "--kill-grace", "1.5", "--", "sh", "-c",
                        "trap '' TERM; sleep 300 & echo $! > " + bg_pid + "; exit 3"});
  const pid_t bg = pid_from(bg_pid);
  mama::test::KillAtExit cleanup{{bg}};
  REQUIRE(bg > 0);
  const auto status = run.exited_within(20s);
  REQUIRE(status);
  CHECK(*status == 3);  // the command's own status, not the leftover's
  const double took = seconds_since(begin);
  CHECK(took >= 1.5);
  CHECK(took < 8);
  CHECK_FALSE(process_exists(bg));
  CHECK(lab.field("job").empty());
}

TEST_CASE("a second interruption while mama run ends the job exits at once", "[run][signals]") {
  RunLab lab;
  const std::string cmd_pid = lab.path("cmd.pid"), bg_pid = lab.path("bg.pid");
  RunningMama run(lab, {"run", "m", "--job", "stubborn", "--", "sh", "-c",
                        "trap '' TERM; echo $$ > " + cmd_pid + "; sleep 300 & echo $! > " + bg_pid +
                            "; exit 0"});
  const pid_t cmd = pid_from(cmd_pid), bg = pid_from(bg_pid);
  mama::test::KillAtExit cleanup{{cmd, bg}};
  REQUIRE(bg > 0);
  // The command is gone; its leftover ignores SIGTERM, so mama run sits in the grace period.
  REQUIRE(eventually([&] { return !process_exists(cmd); }));
  CHECK_FALSE(run.exited_within(500ms));
  const auto sent = std::chrono::steady_clock::now();
  run.signal(SIGINT);
  const auto status = run.exited_within(5s);
  REQUIRE(status);
  CHECK(*status == 128 + SIGINT);
  CHECK(seconds_since(sent) < 2);
  // SIGKILLed on the way out (then reaped by whoever inherits it).
  CHECK(eventually([&] { return !process_exists(bg); }, 2s));
  CHECK(run.err().find("interrupted while ending the job") != std::string::npos);
  // Not released, but its lock died with it: the next run clears the stale job and runs.
  CHECK(lab.field("job") == "stubborn");
  const auto next = lab.run({"run", "m", "--timeout", "5", "--", "true"});
  CHECK(next.status == 0);
  CHECK(next.err.find("Detected stale job: stubborn") != std::string::npos);
}

TEST_CASE("SIGINT while mama run waits to save its release exits at once", "[run][signals]") {
  RunLab lab;
  const std::string ready = lab.path("ready"), go = lab.path("go"), locked = lab.path("locked");
  RunningMama run(lab, {"run", "m", "--job", "releasing", "--", "sh", "-c",
                        "echo > " + ready + "; while [ ! -e " + go + " ]; do sleep 0.02; done"});
  REQUIRE(eventually([&] { return std::filesystem::exists(ready); }));
  // Another process holds the state file's lock: the release has to wait for it.
  mama::test::Child holder([&] {
    mama::XmlStateStore store(lab.file);
    auto tx = store.begin();
    mama::test::write_file(locked, "1");
    ::pause();
    return 0;
  });
  REQUIRE(eventually([&] { return std::filesystem::exists(locked); }));
  mama::test::write_file(go, "1");
  CHECK_FALSE(run.exited_within(700ms));  // blocked in the release
  const auto sent = std::chrono::steady_clock::now();
  run.signal(SIGINT);
  const auto status = run.exited_within(5s);
  REQUIRE(status);
  CHECK(*status == 128 + SIGINT);
  CHECK(seconds_since(sent) < 2);
  holder.kill_and_reap();
  const auto next = lab.run({"run", "m", "--timeout", "5", "--", "true"});
  CHECK(next.status == 0);
  CHECK(next.err.find("Detected stale job: releasing") != std::string::npos);
}

TEST_CASE("--job that is not UTF-8 text is refused before any waiting", "[run][text]") {
  // A live job holds the machine: a run that got past the check would wait for it.
  mama::test::Child holder([] {
    ::pause();
    return 0;
  });
  RunLab lab(mama::test::one_machine_lab("busy job", std::to_string(holder.pid())));
  const std::string before = lab.content();
  for (const std::string& job : {std::string("caf\xe9"), std::string("red \x1b[31malert"),
                                 std::string("c1 \xc2\x9b here"), std::string("half \xe2\x82")}) {
    INFO(job);
    const auto begin = std::chrono::steady_clock::now();
    const auto r = lab.run({"run", "m", "--job", job, "--timeout", "5", "--", "true"});
    CHECK(r.status == 2);
    CHECK(seconds_since(begin) < 2);
    CHECK(r.err.starts_with("mama: --job '"));
    CHECK(r.err.find("UTF-8 without control characters") != std::string::npos);
    CHECK(r.err.find('\x1b') == std::string::npos);
    CHECK(mama::test::valid_utf8(r.err));
    CHECK(lab.content() == before);
  }
  CHECK_FALSE(std::filesystem::exists(lab.dir / "mama.xml.d"));  // the file was not even opened
}

TEST_CASE(
    "the default job text is the command line made readable: escaped, cut between "
    "characters",
    "[run][text]") {
  RunLab lab;
  const std::string copy = lab.path("copy.xml");
  std::vector<std::string> args{
      "run", "m",       "--",      "sh", "-c", "cp \"$0\" \"$1\"", lab.file.string(),
      copy,  "caf\xe9", "\x1b[31m"};
  // Euro signs (3 bytes each), so that the 200-byte limit falls inside one for some padding.
  std::string line;
  for (std::size_t i = 3; i < args.size(); ++i) line += (i > 3 ? " " : "") + args[i];
  const std::size_t escaped_prefix = line.size() + 3 /* \xe9 */ + 1 /* \e */ + 1;
  std::string euros(std::string::size_type((197 - escaped_prefix) % 3 == 0 ? 1 : 0), 'a');
  for (int i = 0; i < 80; ++i) euros += "\xe2\x82\xac";
  args.push_back(euros);
  const auto r = lab.run(args);
  REQUIRE(r.status == 0);
  const std::string stored = RunLab::field_of(read_file(copy), "job");
  CHECK(mama::test::valid_utf8(stored));
  CHECK(stored.find("caf\\xe9 \\e[31m") != std::string::npos);
  CHECK(stored.ends_with("\xe2\x82\xac..."));
  CHECK(stored.size() <= 200);
  CHECK(lab.field("job").empty());
}

TEST_CASE("bytes from the file reach the terminal only escaped: ESC, C1, invalid UTF-8, bidi",
          "[cli][escape]") {
  // A live holder on another host (so that the reason names the host) and a stale job.
  mama::test::Child holder([] {
    ::pause();
    return 0;
  });
  const std::string evil =
      "\x1b]0;title\x07 \x1b[2J \xc2\x9b"
      "31m \x9b lone \xe2\x80\xae desrever";
  const std::string machines =
      "  <machine>\n    <name>busy" + evil +
      "</name>\n    <mac>52:54:00:00:00:01</mac>\n"
      "    <job>job " +
      evil + "</job>\n    <job_pid>" + std::to_string(holder.pid()) +
      "</job_pid>\n    <job_timestamp>1763047845</job_timestamp>\n    <job_host>host" + evil +
      "</job_host>\n  </machine>\n"
      "  <machine>\n    <name>stale" +
      evil +
      "</name>\n    <mac>52:54:00:00:00:02</mac>\n"
      "    <job>old " +
      evil + "</job>\n    <job_pid>4194305</job_pid>\n  </machine>\n";
  RunLab lab("<?xml version=\"1.0\"?>\n<settings>\n" + machines + "</settings>\n");
  const std::string log = lab.path("audit.log");
  const auto clean = [](const mama::test::RunResult& r) {
    for (const std::string* text : {&r.out, &r.err}) {
      INFO(*text);
      CHECK(text->find('\x1b') == std::string::npos);
      CHECK(text->find('\x07') == std::string::npos);
      CHECK(text->find('\x9b') == std::string::npos);          // C1 CSI, alone or in UTF-8
      CHECK(text->find("\xe2\x80\xae") == std::string::npos);  // RIGHT-TO-LEFT OVERRIDE
      CHECK(mama::test::valid_utf8(*text));
    }
    CHECK((r.out + r.err).find("\\e") != std::string::npos);  // shown, as an escape
  };
  const std::vector<std::string> audit{"MAMA_AUDIT_LOG=" + log};
  SECTION("list, info") {
    clean(lab.run({"list"}, audit));
    clean(lab.run({"info", "52:54:00:00:00:01"}, audit));
    clean(lab.run({"info", "52:54:00:00:00:02"}, audit));
  }
  SECTION("wait and run status lines, clear, stats") {
    // 1.5 s: long enough that the status line of the first look is out before the timeout,
    // even on a slow machine, so that it is checked too.
    const auto wait = lab.run({"wait", "52:54:00:00:00:01", "--timeout", "1.5"}, audit);
    CHECK(wait.err.find("waiting for machine") != std::string::npos);
    clean(wait);
    const auto run = lab.run({"run", "52:54:00:00:00:01", "--timeout", "1.5", "--", "true"}, audit);
    CHECK(run.err.find("waiting for machine") != std::string::npos);
    clean(run);
    clean(lab.run({"clear", "52:54:00:00:00:01"}, audit));
    clean(lab.run({"clear", "52:54:00:00:00:02"}, audit));
    clean(lab.run({"clear", "52:54:00:00:00:01", "--force"}, audit));
    clean(lab.run({"stats"}, audit));
  }
}
