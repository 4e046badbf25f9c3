// tests/cli/events_test.cpp — the real `mama` binary's audit log, --on-stale hook and `mama stats`:
// events in order for a claim that clears a stale job, concurrent writers and rotation leaving
// only whole lines, a hook that gets the event, hangs (killed with its children), fails, or leaves
// a process in the background (which must not hold the machine), and stats on a crafted log.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "mama_runner.hpp"

namespace {

using mama::test::eventually;
using mama::test::read_file;
using mama::test::TempDir;
using mama::test::write_file;
namespace fs = std::filesystem;
using json = nlohmann::json;

using mama::test::exec_mama;
using mama::test::exit_status_of;
using mama::test::prepare_child_env;
using mama::test::Result;
using mama::test::run_mama;

// A lab file whose machines m0..m<n-1> each hold a stale job (PID above Linux's pid_max),
// set at `stamp`; plus an idle machine `free`.
std::string stale_lab(int n, long stamp = 1763047845) {
  std::string xml = "<?xml version=\"1.0\"?>\n<settings>\n";
  for (int i = 0; i < n; ++i) {
    xml += "  <machine>\n    <name>m" + std::to_string(i) + "</name>\n    <job>crashed job " +
           std::to_string(i) + "</job>\n    <job_pid>4194305</job_pid>\n    <job_timestamp>" +
           std::to_string(stamp) + "</job_timestamp>\n  </machine>\n";
  }
  xml += "  <machine>\n    <name>free</name>\n    <job/>\n    <job_pid/>\n  </machine>\n";
  return xml + "</settings>\n";
}

// Every line of `file` parsed; FAILs on a line that is not whole JSON.
std::vector<json> lines_of(const fs::path& file) {
  std::vector<json> out;
  std::istringstream in(read_file(file));
  std::string line;
  while (std::getline(in, line)) {
    INFO(file.string() << ": " << line);
    auto j = json::parse(line, nullptr, false);
    REQUIRE(j.is_object());
    out.push_back(std::move(j));
  }
  return out;
}

std::vector<std::string> events_of(const std::vector<json>& lines) {
  std::vector<std::string> out;
  for (const auto& j : lines) out.push_back(j.at("event").get<std::string>());
  return out;
}

bool process_gone(pid_t pid) {
  // Gone, or a zombie nobody has reaped yet.
  const std::string stat = "/proc/" + std::to_string(pid) + "/stat";
  std::ifstream in(stat);
  if (!in) return true;
  std::string s((std::istreambuf_iterator<char>(in)), {});
  const auto close = s.rfind(')');
  return close != std::string::npos && close + 2 < s.size() && s[close + 2] == 'Z';
}

long now_s() {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count());
}

}  // namespace

TEST_CASE("a claim that clears a stale job logs its events in order", "[events][audit]") {
  TempDir dir;
  const auto state = dir.path() / "lab.xml";
  fs::copy_file(MAMA_SAMPLE_LAB, state);
  const auto log = fs::path(state.string() + ".d") / "audit.jsonl";

  const auto r = run_mama({"--state", state, "run", "charlie", "--job", "nightly", "--", "true"});
  REQUIRE(r.status == 0);
  CHECK(r.err.find("Detected stale job: run test-job x86_64/fedora") != std::string::npos);

  const auto lines = lines_of(log);
  REQUIRE(events_of(lines) ==
          std::vector<std::string>{"stale_detected", "stale_cleared", "claimed", "released"});
  const json& cleared = lines[1];
  CHECK(cleared["machine"] == "charlie");
  CHECK(cleared["job"] == "run test-job x86_64/fedora");
  CHECK(cleared["job_pid"] == 4194305);
  CHECK(cleared["job_started"] == 1763047845);
  CHECK(cleared["verdict"] == "stale");
  CHECK(cleared["reason"] == "process not running");
  CHECK(cleared["state"] == state.string());
  CHECK(cleared["user"].get<std::string>() != "");
  CHECK(cleared["host"].get<std::string>() != "");
  CHECK(cleared["time"].get<std::string>().size() == 24);  // 2025-11-13T15:30:45.123Z
  CHECK(cleared["time"].get<std::string>().back() == 'Z');
  CHECK(cleared["epoch"].get<long>() <= now_s());
  // claimed and released describe our own job, written by the same mama process.
  CHECK(lines[2]["job"] == "nightly");
  CHECK(lines[2]["job_pid"] == lines[2]["pid"]);
  CHECK(lines[3]["job"] == "nightly");
  for (const auto& j : lines) CHECK(j["pid"] == lines[0]["pid"]);

  SECTION("clear --force logs forced_clear") {
    REQUIRE(run_mama({"--state", state, "clear", "--force", "bravo"}).status == 0);
    const auto after = lines_of(log);
    REQUIRE(after.size() == 5);
    CHECK(after[4]["event"] == "forced_clear");
    CHECK(after[4]["machine"] == "bravo");
    CHECK(after[4]["job_pid"] == 23817);
  }
  SECTION("a claim that waits logs its first wait, not every wake-up") {
    mama::test::Child holder([&]() -> int {
      prepare_child_env({});
      exec_mama(
          {"--state", state.string(), "--no-audit-log", "run", "alpha", "--", "sleep", "100"});
    });
    REQUIRE(eventually([&] { return read_file(state).find("sleep 100") != std::string::npos; }));
    const auto waited =
        run_mama({"--state", state, "run", "alpha", "--timeout", "2.5", "--", "true"});
    CHECK(waited.status == 3);
    const auto after = lines_of(log);
    REQUIRE(after.size() == 5);
    CHECK(after[4]["event"] == "waiting");
    CHECK(after[4]["job"] == "sleep 100");
    holder.kill_and_reap(SIGTERM);  // passed on to `sleep`; then the machine is released
  }
}

TEST_CASE("through a symbolic link the audit log is the file's own, beside its lock files",
          "[events][audit]") {
  TempDir dir;
  fs::create_directory(dir / "real");
  const auto state = dir.path() / "real" / "lab.xml";
  fs::copy_file(MAMA_SAMPLE_LAB, state);
  const auto alias = dir.path() / "alias.xml";
  fs::create_symlink(state, alias);
  // The runtime directory of the file (XmlStateStore::runtime_dir), whatever name it is given.
  const auto log = fs::path(fs::canonical(state).string() + ".d") / "audit.jsonl";

  const auto r = run_mama({"--state", alias, "run", "charlie", "--job", "via alias", "--", "true"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(r.err.find("audit log") == std::string::npos);  // no failure to write it
  CHECK_FALSE(fs::exists(alias.string() + ".d"));
  REQUIRE(fs::exists(log));
  CHECK(events_of(lines_of(log)) ==
        std::vector<std::string>{"stale_detected", "stale_cleared", "claimed", "released"});

  // A claim through the file's own name appends to the same log, and `stats` through either
  // name reads it.
  REQUIRE(run_mama({"--state", state, "run", "alpha", "--", "true"}).status == 0);
  CHECK(lines_of(log).size() == 6);
  for (const fs::path& name : {alias, state}) {
    const auto stats = run_mama({"--state", name, "stats"});
    INFO(stats.err);
    CHECK(stats.status == 0);
    CHECK(stats.out.starts_with("Audit log: " + log.string() + "\n"));
  }
}

TEST_CASE("concurrent writers leave only whole lines", "[events][audit]") {
  TempDir dir;
  const auto log = dir.path() / "audit.jsonl";
  constexpr int writers = 8;
  constexpr int per_writer = 200;
  // Each writer clears 200 stale jobs of its own lab file, appending 200 lines to the same log.
  std::vector<pid_t> pids;
  for (int w = 0; w < writers; ++w) {
    const auto state = dir.path() / ("lab" + std::to_string(w) + ".xml");
    write_file(state, stale_lab(per_writer));
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      prepare_child_env({});
      exec_mama({"--state", state.string(), "--audit-log", log.string(), "--audit-max-size", "100M",
                 "clear", "all"});
    }
    pids.push_back(pid);
  }
  for (const pid_t pid : pids) {
    int raw = 0;
    ::waitpid(pid, &raw, 0);
    CHECK(exit_status_of(raw) == 0);
  }
  const auto lines = lines_of(log);  // fails on any torn or interleaved line
  REQUIRE(lines.size() == writers * per_writer);
  std::map<long, int> per_pid;
  for (const auto& j : lines) {
    CHECK(j["event"] == "stale_cleared");
    ++per_pid[j["pid"].get<long>()];
  }
  CHECK(per_pid.size() == writers);
  for (const auto& [pid, count] : per_pid) CHECK(count == per_writer);
}

TEST_CASE("the audit log is rotated at its size cap, keeping whole lines", "[events][audit]") {
  TempDir dir;
  const auto log = dir.path() / "audit.jsonl";
  const auto rotated = fs::path(log.string() + ".1");
  constexpr std::uintmax_t cap = 16 * 1024;

  SECTION("one writer") {
    const auto state = dir.path() / "lab.xml";
    write_file(state, stale_lab(200));
    REQUIRE(
        run_mama({"--state", state, "--audit-log", log, "--audit-max-size", "16K", "clear", "all"})
            .status == 0);
    REQUIRE(fs::exists(rotated));
    CHECK_FALSE(fs::exists(log.string() + ".2"));
    CHECK(fs::file_size(log) <= cap);
    CHECK(fs::file_size(rotated) <= cap);
    const auto current = lines_of(log);
    const auto older = lines_of(rotated);
    REQUIRE_FALSE(current.empty());
    // The newest event is in the current file; the rotated one ends where the current begins.
    CHECK(current.back()["machine"] == "m199");
    const auto number = [](const json& j) {
      return std::stoi(j["machine"].get<std::string>().substr(1));
    };
    CHECK(number(older.back()) + 1 == number(current.front()));
  }
  SECTION("concurrent writers") {
    std::vector<pid_t> pids;
    for (int w = 0; w < 4; ++w) {
      const auto state = dir.path() / ("lab" + std::to_string(w) + ".xml");
      write_file(state, stale_lab(200));
      const pid_t pid = ::fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        const int null = ::open("/dev/null", O_WRONLY);
        ::dup2(null, 1);
        prepare_child_env({});
        exec_mama({"--state", state.string(), "--audit-log", log.string(), "--audit-max-size",
                   "16K", "clear", "all"});
      }
      pids.push_back(pid);
    }
    for (const pid_t pid : pids) {
      int raw = 0;
      ::waitpid(pid, &raw, 0);
      CHECK(exit_status_of(raw) == 0);
    }
    // A writer that checked the size just before another rotated may add its line to either
    // file: each stays within the cap plus one line per concurrent writer.
    const std::uintmax_t slack = 4 * 1024;
    CHECK(fs::file_size(log) <= cap + slack);
    CHECK(fs::file_size(rotated) <= cap + slack);
    CHECK_FALSE(fs::exists(log.string() + ".2"));
    CHECK(lines_of(log).size() + lines_of(rotated).size() > 0);
  }
}

TEST_CASE("turning the audit log off writes nothing", "[events][audit]") {
  TempDir dir;
  const auto state = dir.path() / "lab.xml";
  fs::copy_file(MAMA_SAMPLE_LAB, state);
  const auto default_log = fs::path(state.string() + ".d") / "audit.jsonl";

  SECTION("--no-audit-log") {
    REQUIRE(run_mama({"--state", state, "--no-audit-log", "run", "charlie", "--", "true"}).status ==
            0);
  }
  SECTION("MAMA_AUDIT_LOG=off") {
    REQUIRE(run_mama({"--state", state, "run", "charlie", "--", "true"}, {"MAMA_AUDIT_LOG=off"})
                .status == 0);
  }
  CHECK(fs::exists(state.string() + ".d"));  // the claim did use the store's directory
  CHECK_FALSE(fs::exists(default_log));
  CHECK(read_file(state).find("4194305") == std::string::npos);  // the stale job was cleared
}

TEST_CASE("an audit log that cannot be written is reported once and breaks nothing",
          "[events][audit]") {
  TempDir dir;
  const auto state = dir.path() / "lab.xml";
  fs::copy_file(MAMA_SAMPLE_LAB, state);
  const auto r = run_mama({"--state", state, "--audit-log", dir.path() / "missing" / "a.jsonl",
                           "run", "charlie", "--", "sh", "-c", "echo ran"});
  CHECK(r.status == 0);
  CHECK(r.out == "ran\n");
  const std::string what = "mama: cannot open the audit log";
  const auto first = r.err.find(what);
  REQUIRE(first != std::string::npos);
  CHECK(r.err.find(what, first + 1) == std::string::npos);  // four events, one message

  SECTION("a bad size is a usage error") {
    const auto bad = run_mama({"--state", state, "list"}, {"MAMA_AUDIT_MAX_SIZE=lots"});
    CHECK(bad.status == 2);
    CHECK(bad.err.find("MAMA_AUDIT_MAX_SIZE='lots' is not a size") != std::string::npos);
    CHECK(run_mama({"--state", state, "--audit-max-size", "12", "list"}).status == 2);
  }
}

TEST_CASE("the --on-stale hook gets the event in its environment and on stdin", "[events][hook]") {
  TempDir dir;
  const auto state = dir.path() / "lab.xml";
  fs::copy_file(MAMA_SAMPLE_LAB, state);
  const auto env_out = dir.path() / "hook.env";
  const auto json_out = dir.path() / "hook.json";
  const std::string hook = "env > '" + env_out.string() + "'; cat > '" + json_out.string() + "'";

  SECTION("from --on-stale, for a stale job a claim cleared") {
    const auto r = run_mama({"--state", state, "--on-stale", hook, "run", "charlie", "--", "true"});
    REQUIRE(r.status == 0);
  }
  SECTION("from MAMA_ON_STALE, for `mama clear`") {
    const auto r = run_mama({"--state", state, "clear", "charlie"}, {"MAMA_ON_STALE=" + hook});
    REQUIRE(r.status == 0);
  }
  // mama waits for its hooks before it exits: the files are complete now.
  const std::string env = read_file(env_out);
  for (const std::string& expected :
       std::vector<std::string>{"MAMA_EVENT=stale_cleared\n", "MAMA_MACHINE=charlie\n",
                                "MAMA_JOB=run test-job x86_64/fedora\n", "MAMA_JOB_PID=4194305\n",
                                "MAMA_REASON=process not running\n",
                                "MAMA_STATE=" + state.string() + "\n", "MAMA_HOST=", "MAMA_TIME="})
    CHECK(env.find(expected) != std::string::npos);
  const auto j = json::parse(read_file(json_out));
  CHECK(j["event"] == "stale_cleared");
  CHECK(j["machine"] == "charlie");
  CHECK(j["job_pid"] == 4194305);
  // The same line as in the audit log.
  const auto logged = lines_of(fs::path(state.string() + ".d") / "audit.jsonl");
  const auto same = std::find(logged.begin(), logged.end(), j);
  CHECK(same != logged.end());
}

TEST_CASE("a forced clear runs the hook too", "[events][hook]") {
  TempDir dir;
  const auto state = dir.path() / "lab.xml";
  fs::copy_file(MAMA_SAMPLE_LAB, state);
  const auto out = dir.path() / "hook.out";
  const auto r = run_mama({"--state", state, "--on-stale",
                           "echo \"$MAMA_EVENT $MAMA_MACHINE\" > '" + out.string() + "'", "clear",
                           "--force", "bravo"});
  REQUIRE(r.status == 0);
  CHECK(read_file(out) == "forced_clear bravo\n");
}

TEST_CASE("a hanging hook is killed with its children; the claim and the command go on",
          "[events][hook]") {
  TempDir dir;
  const auto state = dir.path() / "lab.xml";
  fs::copy_file(MAMA_SAMPLE_LAB, state);
  const auto pid_file = dir.path() / "child.pid";
  // The hook starts a child in the background and waits for it: both must be killed.
  const std::string hook =
      "sleep 1000 >/dev/null 2>&1 & echo $! > '" + pid_file.string() + "'; wait";
  const auto r = run_mama({"--state", state, "--on-stale", hook, "--hook-timeout", "0.5", "run",
                           "charlie", "--", "sh", "-c", "echo ran"});
  CHECK(r.status == 0);
  CHECK(r.out == "ran\n");
  CHECK(r.err.find("did not finish within 0.5 s; killed it") != std::string::npos);
  REQUIRE(eventually([&] { return !read_file(pid_file).empty(); }));
  const pid_t child = std::stoi(read_file(pid_file));
  CHECK(eventually([&] { return process_gone(child); }));
  if (!process_gone(child)) ::kill(child, SIGKILL);
  // The claim went through: the machine was claimed and released.
  const auto lines = lines_of(fs::path(state.string() + ".d") / "audit.jsonl");
  CHECK(events_of(lines) ==
        std::vector<std::string>{"stale_detected", "stale_cleared", "claimed", "released"});
}

TEST_CASE("a failing hook is reported and ignored", "[events][hook]") {
  TempDir dir;
  const auto state = dir.path() / "lab.xml";
  fs::copy_file(MAMA_SAMPLE_LAB, state);
  const auto r = run_mama({"--state", state, "--on-stale", "echo hook says hi; exit 7", "run",
                           "charlie", "--", "sh", "-c", "exit 5"});
  CHECK(r.status == 5);  // the command's status, not the hook's
  CHECK(r.out.empty());  // the hook's output goes to stderr
  CHECK(r.err.find("hook says hi") != std::string::npos);
  CHECK(r.err.find("failed with exit status 7; ignored") != std::string::npos);
  CHECK(read_file(state).find("4194305") == std::string::npos);
}

TEST_CASE("a process the hook leaves in the background does not hold the machine",
          "[events][hook]") {
  TempDir dir;
  const auto state = dir.path() / "lab.xml";
  fs::copy_file(MAMA_SAMPLE_LAB, state);
  const auto pid_file = dir.path() / "bg.pid";
  const std::string hook =
      "sleep 100 </dev/null >/dev/null 2>&1 & echo $! > '" + pid_file.string() + "'";
  // The hook runs while `mama run` holds charlie's job lock.
  REQUIRE(run_mama({"--state", state, "--on-stale", hook, "run", "charlie", "--", "true"}).status ==
          0);
  REQUIRE(eventually([&] { return !read_file(pid_file).empty(); }));
  const pid_t bg = std::stoi(read_file(pid_file));
  CHECK_FALSE(process_gone(bg));  // still running...
  // ...and yet the machine is free: a claim that does not wait gets it.
  const auto again = run_mama({"--state", state, "run", "charlie", "--timeout", "0", "--", "true"});
  CHECK(again.status == 0);
  CHECK(again.err.empty());
  ::kill(bg, SIGKILL);
}

TEST_CASE("mama stats counts stale jobs, blocked time and claims from the log", "[events][stats]") {
  TempDir dir;
  const auto log = dir.path() / "audit.jsonl";
  const long now = now_s();
  const long day = 86400;
  auto line = [](const std::string& event, const std::string& machine, long epoch,
                 const std::string& job, std::optional<long> started) {
    json j;
    j["time"] = "x";
    j["epoch"] = epoch;
    j["event"] = event;
    j["machine"] = machine;
    j["job"] = job;
    j["job_started"] = started ? json(*started) : json(nullptr);
    return j.dump() + "\n";
  };
  // The rotated generation: an old stale job on alpha (outside a 7-day window).
  write_file(log.string() + ".1",
             line("stale_cleared", "alpha", now - 30 * day, "nightly", now - 30 * day - 7200) +
                 line("claimed", "alpha", now - 30 * day, "t", now - 30 * day));
  write_file(log,
             // alpha: two stale jobs this week, blocked 10 min and 30 min; three claims.
             line("stale_detected", "alpha", now - 2 * day, "nightly", now - 2 * day - 600) +
                 line("stale_cleared", "alpha", now - 2 * day, "nightly", now - 2 * day - 600) +
                 line("claimed", "alpha", now - 2 * day, "t", now - 2 * day) +
                 line("released", "alpha", now - 2 * day + 5, "t", now - 2 * day) +
                 line("stale_cleared", "alpha", now - day, "smoke", now - day - 1800) +
                 line("claimed", "alpha", now - day, "t", now - day) +
                 line("claimed", "alpha", now - 3600, "t", now - 3600) +
                 // bravo: a stale job of unknown start, a forced clear, one claim.
                 line("stale_cleared", "bravo", now - 3 * day, "nightly", std::nullopt) +
                 line("forced_clear", "bravo", now - 3 * day, "hung", now - 4 * day) +
                 line("claimed", "bravo", now - 3 * day, "t", now - 3 * day) + "not json at all\n" +
                 "{\"torn\": \n");

  SECTION("this week, as JSON") {
    const auto r = run_mama({"--audit-log", log, "stats", "--since", "7d", "--json"});
    REQUIRE(r.status == 0);
    const auto j = json::parse(r.out);
    CHECK(j["malformed_lines"] == 2);
    REQUIRE(j["machines"].size() == 2);
    const auto& alpha = j["machines"][0];
    CHECK(alpha["machine"] == "alpha");
    CHECK(alpha["claims"] == 3);
    CHECK(alpha["stale_cleared"] == 2);
    CHECK(alpha["blocked_known"] == 2);
    CHECK(alpha["blocked_mean_s"] == 1200);
    CHECK(alpha["blocked_max_s"] == 1800);
    const auto& bravo = j["machines"][1];
    CHECK(bravo["machine"] == "bravo");
    CHECK(bravo["claims"] == 1);
    CHECK(bravo["stale_cleared"] == 1);
    CHECK(bravo["forced_clears"] == 1);
    CHECK(bravo["blocked_known"] == 0);
    CHECK(bravo["blocked_mean_s"].is_null());
    REQUIRE(j["jobs"].size() == 2);
    CHECK(j["jobs"][0]["job"] == "nightly");
    CHECK(j["jobs"][0]["stale_cleared"] == 2);
    CHECK(j["jobs"][0]["machines"] == json::array({"alpha", "bravo"}));
    CHECK(j["jobs"][1]["job"] == "smoke");
    CHECK(j["jobs"][1]["stale_cleared"] == 1);
  }
  SECTION("all time includes the rotated generation") {
    const auto r = run_mama({"--audit-log", log, "stats", "--json"});
    REQUIRE(r.status == 0);
    const auto j = json::parse(r.out);
    CHECK(j["log"].size() == 2);
    const auto& alpha = j["machines"][0];
    CHECK(alpha["stale_cleared"] == 3);
    CHECK(alpha["claims"] == 4);
    CHECK(alpha["blocked_mean_s"] == (600 + 1800 + 7200) / 3);
    CHECK(alpha["blocked_max_s"] == 7200);
  }
  SECTION("all time, as a table: the log's files and a job's machines, comma-separated") {
    const auto r = run_mama({"--audit-log", log, "stats"});
    REQUIRE(r.status == 0);
    CHECK(r.out.starts_with("Audit log: " + log.string() + ".1, " + log.string() + "\n"));
    CHECK(r.out.find("    3  alpha,bravo  nightly\n") != std::string::npos);
    CHECK(r.out.find("    1  alpha        smoke\n") != std::string::npos);
  }
  SECTION("one machine, as a table") {
    const auto r = run_mama({"--audit-log", log, "stats", "--since", "7d", "--machine", "alpha"});
    REQUIRE(r.status == 0);
    CHECK(r.out.find("Machine  Claims  Stale  Forced  Blocked mean  Blocked max  Last stale\n") !=
          std::string::npos);
    CHECK(r.out.find("alpha         3      2       0   20 min 00 s  30 min 00 s  ") !=
          std::string::npos);
    CHECK(r.out.find("bravo") == std::string::npos);
    CHECK(r.out.find("    2  alpha     nightly\n") == std::string::npos);  // nightly: 1 here
    CHECK(r.out.find("    1  alpha     nightly\n") != std::string::npos);
    CHECK(r.out.find("    1  alpha     smoke\n") != std::string::npos);
  }
  SECTION("bad input") {
    const auto bad = run_mama({"--audit-log", log, "stats", "--since", "yesterday"});
    CHECK(bad.status == 2);
    CHECK(bad.err.find("'yesterday' is neither a duration") != std::string::npos);
    const auto missing = run_mama({"--audit-log", dir.path() / "nope.jsonl", "stats"});
    CHECK(missing.status == 1);
    CHECK(missing.err.find("mama: no audit log at") != std::string::npos);
  }
}
