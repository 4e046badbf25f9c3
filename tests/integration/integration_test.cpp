// Runs the runner examples (examples/integration) and the mama CLI as real processes against
// temporary state files: the record is set while a run goes on and cleared after; a runner
// killed with SIGKILL leaves a job that the next run reports as stale and clears.
// The programs come from the environment CTest sets: MAMA_IT_CATCH2, MAMA_IT_CATCH2_V3,
// MAMA_IT_DOCTEST, MAMA_IT_GTEST, MAMA_IT_BENCHMARK, MAMA_IT_CLI (empty when not built).
// MAMA_IT_CATCH2_V3 is set by catch2_v3_test.sh, which builds that suite on its own.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <mama/guard.hpp>
#include <string>
#include <utility>
#include <vector>

#include "support.hpp"

namespace {

using mama::test::TempDir;
using Env = std::vector<std::pair<std::string, std::string>>;

const std::string lab_xml = R"(<?xml version="1.0"?>
<settings>
  <machine>
    <name>test-machine</name>
    <mac>aa:bb:cc:dd:ee:ff</mac>
    <ip>192.168.1.10</ip>
    <job/>
    <job_pid/>
  </machine>
  <machine>
    <name>other-machine</name>
    <job/>
    <job_pid/>
  </machine>
</settings>
)";

std::string program(const char* var) {
  const char* v = std::getenv(var);
  return v ? v : "";
}

/// A started process: stdout and stderr go to files in `dir`.
struct Process {
  pid_t pid = -1;
  std::filesystem::path out, err;

  Process(const std::vector<std::string>& argv, const Env& env, const TempDir& dir,
          const std::string& tag) {
    out = dir / (tag + ".out");
    err = dir / (tag + ".err");
    pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::setpgid(0, 0);  // its own group, so a kill reaches the whole run
      for (const char* v : {"MAMA_MACHINE", "MAMA_JOB", "MAMA_STATE", "MAMA_PATH", "MAMA_TIMEOUT"})
        ::unsetenv(v);
      for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(o, 1);
      ::dup2(e, 2);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  /// Waits for the end; returns the exit status (128 + signal when killed).
  int wait() {
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  void kill_group() {
    ::kill(-pid, SIGKILL);
    wait();
  }
  ~Process() {
    if (pid > 0) kill_group();
  }
  std::string stdout_text() const { return mama::test::read_file(out); }
  std::string stderr_text() const { return mama::test::read_file(err); }
};

struct Outcome {
  int status;
  std::string out, err;
};

Outcome run(const std::vector<std::string>& argv, const Env& env, const TempDir& dir,
            const std::string& tag = "run") {
  Process p(argv, env, dir, tag);
  const int status = p.wait();
  Outcome o{status, p.stdout_text(), p.stderr_text()};
  UNSCOPED_INFO("status " << o.status << "\nstdout:\n" << o.out << "\nstderr:\n" << o.err);
  return o;
}

mama::JobRecord record_of(const std::filesystem::path& state, const std::string& machine) {
  mama::XmlStateStore store(state);
  auto r = store.begin().find(machine);
  if (!r) throw std::runtime_error("machine missing");
  return *r;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

struct Runner {
  std::string name;                 // for messages
  std::string path;                 // the program
  std::vector<std::string> normal;  // extra arguments of a normal run
  std::vector<std::string> pause;   // extra arguments of a run that stops until killed
};

std::vector<Runner> test_runners() {
  std::vector<Runner> out;
  if (auto p = program("MAMA_IT_CATCH2"); !p.empty()) out.push_back({"catch2", p, {}, {"[pause]"}});
  if (auto p = program("MAMA_IT_CATCH2_V3"); !p.empty())
    out.push_back({"catch2 v3", p, {}, {"[pause]"}});
  if (auto p = program("MAMA_IT_DOCTEST"); !p.empty())
    out.push_back({"doctest", p, {}, {"--no-skip", "--test-case=stop until killed"}});
  if (auto p = program("MAMA_IT_GTEST"); !p.empty())
    out.push_back(
        {"gtest",
         p,
         {},
         {"--gtest_also_run_disabled_tests", "--gtest_filter=*DISABLED_StopUntilKilled"}});
  return out;
}

std::vector<std::string> with(std::string first, const std::vector<std::string>& rest) {
  std::vector<std::string> v{std::move(first)};
  v.insert(v.end(), rest.begin(), rest.end());
  return v;
}

}  // namespace

TEST_CASE("the example programs are given to this test", "[integration]") {
  REQUIRE_FALSE(program("MAMA_IT_CATCH2").empty());
}

TEST_CASE("a test runner holds MAMA_MACHINE for its whole run and releases it after",
          "[integration]") {
  for (const auto& runner : test_runners()) {
    DYNAMIC_SECTION(runner.name) {
      TempDir dir;
      const auto state = dir / "mama.xml";
      mama::test::write_file(state, lab_xml);

      SECTION("with the job text from MAMA_JOB") {
        const auto o = run(with(runner.path, runner.normal),
                           {{"MAMA_MACHINE", "test-machine"},
                            {"MAMA_STATE", state.string()},
                            {"MAMA_JOB", "nightly " + runner.name}},
                           dir);
        CHECK(o.status == 0);
        // The suite's own test printed this after checking job text and PID in the file.
        CHECK(contains(o.out, "mama: test-machine held by PID "));
        CHECK(contains(o.out, "for job 'nightly " + runner.name + "'"));
        CHECK(record_of(state, "test-machine") == mama::JobRecord{});
        CHECK(record_of(state, "other-machine") == mama::JobRecord{});
      }
      SECTION("with the binary's name as the default job text, found through MAMA_PATH") {
        const auto o =
            run(with(runner.path, runner.normal),
                {{"MAMA_MACHINE", "test-machine"}, {"MAMA_PATH", dir.path().string()}}, dir);
        CHECK(o.status == 0);
        const auto binary = std::filesystem::path(runner.path).filename().string();
        CHECK(contains(o.out, "for job '" + binary + "'"));
        CHECK(record_of(state, "test-machine") == mama::JobRecord{});
      }
      SECTION("without MAMA_MACHINE it claims nothing and leaves the file as it was") {
        const auto o = run(with(runner.path, runner.normal), {{"MAMA_STATE", state.string()}}, dir);
        CHECK(o.status == 0);
        CHECK_FALSE(contains(o.out, "held by PID"));
        CHECK(mama::test::read_file(state) == lab_xml);
      }
      SECTION("a failed claim fails the run before any test, naming machine and file") {
        const auto o =
            run(with(runner.path, runner.normal),
                {{"MAMA_MACHINE", "no-such-machine"}, {"MAMA_STATE", state.string()}}, dir);
        CHECK(o.status != 0);
        const auto all = o.out + o.err;
        CHECK(contains(all, "cannot claim machine 'no-such-machine' in " + state.string()));
        CHECK_FALSE(contains(o.out, "held by PID"));
        CHECK(mama::test::read_file(state) == lab_xml);
      }
      SECTION("a busy machine and MAMA_TIMEOUT=0: the run fails with a timeout naming the holder") {
        // A sibling process (not an ancestor of the runner) holds the machine.
        mama::test::Child holder([&] {
          mama::XmlStateStore store(state);
          mama::JobGuard guard(store, "test-machine", {.job = "someone else's job"});
          for (;;) ::pause();
          return 0;
        });
        REQUIRE(mama::test::eventually(
            [&] { return record_of(state, "test-machine").job == "someone else's job"; }));
        const auto o = run(with(runner.path, runner.normal),
                           {{"MAMA_MACHINE", "test-machine"},
                            {"MAMA_STATE", state.string()},
                            {"MAMA_TIMEOUT", "0"}},
                           dir);
        CHECK(o.status != 0);
        CHECK(contains(o.out + o.err, "timed out"));
        CHECK(contains(o.out + o.err, "someone else's job"));
        CHECK(record_of(state, "test-machine").pid == std::to_string(holder.pid()));
      }
      SECTION("a runner killed with SIGKILL leaves a job the next run clears as stale") {
        const Env env{{"MAMA_MACHINE", "test-machine"},
                      {"MAMA_STATE", state.string()},
                      {"MAMA_JOB", "killed " + runner.name}};
        pid_t killed_pid = 0;
        {
          Process p(with(runner.path, runner.pause), env, dir, "killed");
          killed_pid = p.pid;
          REQUIRE(mama::test::eventually([&] { return contains(p.stdout_text(), "paused"); },
                                         std::chrono::seconds(30)));
          CHECK(record_of(state, "test-machine").pid == std::to_string(p.pid));
          p.kill_group();
        }
        CHECK(record_of(state, "test-machine").job == "killed " + runner.name);  // left behind

        const auto o = run(with(runner.path, runner.normal), env, dir, "next");
        CHECK(o.status == 0);
        CHECK(contains(o.err, "Detected stale job: killed " + runner.name + " (PID: " +
                                  std::to_string(killed_pid) + ", process not running)"));
        CHECK(record_of(state, "test-machine") == mama::JobRecord{});
      }
    }
  }
}

TEST_CASE("a benchmark program holds MAMA_MACHINE while its benchmarks run", "[integration]") {
  const auto path = program("MAMA_IT_BENCHMARK");
  if (path.empty()) {
    MAMA_SKIP("the Google Benchmark example is not built (MAMA_IT_BENCHMARK is not set)");
  }
  TempDir dir;
  const auto state = dir / "mama.xml";
  mama::test::write_file(state, lab_xml);
  const std::vector<std::string> argv{path, "--benchmark_filter=BM_locked_read_of_claim",
                                      "--benchmark_min_time=0.001", "--benchmark_format=json"};

  SECTION("claimed during the run, cleared after") {
    const auto o = run(argv,
                       {{"MAMA_MACHINE", "test-machine"},
                        {"MAMA_STATE", state.string()},
                        {"MAMA_JOB", "nightly benchmark"}},
                       dir);
    CHECK(o.status == 0);
    CHECK(contains(o.out, "\"name\": \"BM_locked_read_of_claim\""));
    CHECK_FALSE(contains(o.out, "error_occurred"));  // the benchmark found its own claim
    CHECK(record_of(state, "test-machine") == mama::JobRecord{});
  }
  SECTION("a failed claim runs no benchmark and names machine and file") {
    const auto o =
        run(argv, {{"MAMA_MACHINE", "no-such-machine"}, {"MAMA_STATE", state.string()}}, dir);
    CHECK(o.status == 1);
    CHECK(contains(o.err, "cannot claim machine 'no-such-machine' in " + state.string()));
    CHECK_FALSE(contains(o.out, "BM_locked_read_of_claim"));
    CHECK(mama::test::read_file(state) == lab_xml);
  }
}

TEST_CASE("mama run killed with SIGKILL leaves a job the next mama run clears as stale",
          "[integration][cli]") {
  const auto cli = program("MAMA_IT_CLI");
  if (cli.empty()) {
    MAMA_SKIP("the mama CLI is not built (MAMA_IT_CLI is not set)");
  }
  TempDir dir;
  const auto state = dir / "mama.xml";
  mama::test::write_file(state, lab_xml);
  pid_t killed_pid = 0;
  {
    Process p({cli, "--state", state.string(), "run", "test-machine", "--job", "wrapped suite",
               "--", "/bin/sh", "-c", "echo paused; exec sleep 1000"},
              {}, dir, "killed");
    REQUIRE(mama::test::eventually([&] { return contains(p.stdout_text(), "paused"); },
                                   std::chrono::seconds(30)));
    // The record names the command (mama run hands the claim over to it), a child of mama run.
    const auto recorded = record_of(state, "test-machine").pid;
    REQUIRE_FALSE(recorded.empty());
    CHECK(recorded != std::to_string(p.pid));
    killed_pid = std::stoi(recorded);
    const auto stat = mama::detail::read_proc_stat(killed_pid);
    REQUIRE(stat);
    CHECK(stat->ppid == p.pid);
    // The runner and its job, as when a CI job is killed: mama run's group, and the command's
    // own group (mama run gives the command a process group of its own, as a shell does).
    p.kill_group();
    ::kill(-killed_pid, SIGKILL);
    ::kill(killed_pid, SIGKILL);
    REQUIRE(mama::test::eventually([&] { return ::kill(killed_pid, 0) != 0; },
                                   std::chrono::seconds(10)));
  }
  CHECK(record_of(state, "test-machine").job == "wrapped suite");
  const auto o = run({cli, "--state", state.string(), "run", "test-machine", "--job", "next",
                      "--timeout", "30", "--", "/bin/true"},
                     {}, dir);
  CHECK(o.status == 0);
  CHECK(contains(o.err, "Detected stale job: wrapped suite (PID: " + std::to_string(killed_pid) +
                            ", process not running)"));
  CHECK(record_of(state, "test-machine") == mama::JobRecord{});
}
