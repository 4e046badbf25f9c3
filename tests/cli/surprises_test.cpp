// Small things that surprised a new user (issue 16, item 5), each on the real binary: the exit
// status of a directory as the state file, output lost to a full disk, an unknown command, large
// --timeout values, an empty --state, an empty command after `run --`, a user who may read but
// not change the lab, a name used by two machines, a machine without a name. The immutable
// (chattr +i) case is the test case tagged [chattr], run as its own CTest test that is skipped
// (status 77) where chattr cannot set the flag.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "mama_runner.hpp"

namespace fs = std::filesystem;
using namespace mama::test;

namespace {

const std::string lab_xml =
    "<?xml version=\"1.0\"?>\n<settings>\n"
    "  <machine>\n    <name>alpha</name>\n    <job/>\n    <job_pid/>\n  </machine>\n"
    "  <machine>\n    <name>stale</name>\n    <job>old job</job>\n"
    "    <job_pid>4194305</job_pid>\n    <job_timestamp>1763047845</job_timestamp>\n"
    "  </machine>\n</settings>\n";

struct Lab {
  TempDir dir;
  fs::path file = dir / "mama.xml";
  explicit Lab(const std::string& content = lab_xml) { write_file(file, content); }
  Result run(std::vector<std::string> args, const std::vector<std::string>& env = {}) const {
    args.insert(args.begin(), {"--state", file.string(), "--no-audit-log"});
    return run_mama(args, env);
  }
};

}  // namespace

TEST_CASE("a directory as the state file is a bad state file (status 6)", "[cli][surprise]") {
  TempDir dir;
  const Result r = run_mama({"--state", dir.path().string(), "--no-audit-log", "list"});
  CHECK(r.status == 6);
  CHECK(r.err.find("is a directory") != std::string::npos);
}

// Its own CTest test (dev_full_test), skipped where there is no /dev/full.
TEST_CASE("output lost to a full disk fails the command", "[dev_full][.]") {
  if (!fs::exists("/dev/full")) mama::test::skip_test("no /dev/full");
  Lab l;
  const Result r =
      run_capture({"sh", "-c", "exec \"$0\" --state \"$1\" --no-audit-log list > /dev/full",
                   MAMA_CLI, l.file.string()});
  CHECK(r.status == 1);
  CHECK(r.err.find("cannot write to standard output (No space left on device)") !=
        std::string::npos);
}

TEST_CASE("an unknown command is named, with the closest one", "[cli][surprise]") {
  const Result r = run_mama({"lst"});
  CHECK(r.status == 2);
  CHECK(r.err.find("unknown command 'lst' (did you mean 'list'?)") != std::string::npos);
  CHECK(r.err.find("A subcommand is required") == std::string::npos);
  const Result far = run_mama({"--state", "/x", "frobnicate"});
  CHECK(far.status == 2);
  CHECK(far.err.find("unknown command 'frobnicate'; the commands are: list, info") !=
        std::string::npos);
  const Result none = run_mama({});
  CHECK(none.status == 2);  // no command at all: CLI11's own message
}

TEST_CASE("large --timeout values are seconds; only garbage and overflow are refused",
          "[cli][surprise]") {
  Lab l;
  CHECK(l.run({"wait", "alpha", "--timeout", "2000000000"}).status == 0);
  CHECK(l.run({"wait", "alpha", "--timeout", "9223372036"}).status == 0);
  CHECK(l.run({"--stale-after", "2000000000", "wait", "alpha"}).status == 0);
  const Result big = l.run({"wait", "alpha", "--timeout", "9223372037"});
  CHECK(big.status == 2);
  CHECK(big.err.find("more than mama can count (at most 9223372036") != std::string::npos);
  const Result huge = l.run({"wait", "alpha", "--timeout", "99999999999999999999999"});
  CHECK(huge.status == 2);
  CHECK(huge.err.find("more than mama can count") != std::string::npos);
  for (const std::string bad : {"abc", "1.2.3", "1e3", "-5"}) {
    INFO("--timeout '" << bad << "'");
    const Result r = l.run({"wait", "alpha", "--timeout=" + bad});
    CHECK(r.status == 2);
    CHECK(r.err.find("not a number of seconds") != std::string::npos);
  }
}

TEST_CASE("an empty --state is an error, not the default file", "[cli][surprise]") {
  TempDir home;
  write_file(home / "mama.xml", lab_xml);
  const Result r = run_mama({"--state", "", "list"}, {"MAMA_PATH=" + home.path().string()});
  CHECK(r.status == 2);
  CHECK(r.out.empty());
  CHECK(r.err.find("--state was given an empty value") != std::string::npos);
}

TEST_CASE("run with an empty command says so", "[cli][surprise]") {
  Lab l;
  const std::string before = read_file(l.file);
  const Result r = l.run({"run", "alpha", "--", ""});
  CHECK(r.status == 2);
  CHECK(r.err.find("the command after `--` is empty") != std::string::npos);
  CHECK(r.err.find("job text") == std::string::npos);
  CHECK(read_file(l.file) == before);
}

// Its own CTest test (read_only_user_test), skipped as root without setpriv.
TEST_CASE("a user who may read but not change the lab is told so before anything is cleared",
          "[read_only_user][.]") {
  Lab l;
  fs::permissions(l.dir.path(), fs::perms::owner_all | fs::perms::group_read |
                                    fs::perms::group_exec | fs::perms::others_read |
                                    fs::perms::others_exec);
  fs::permissions(l.file, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                              fs::perms::others_read);
  const std::string before = read_file(l.file);
  // As root, run mama as nobody (root may write any file); otherwise make the file read-only.
  std::vector<std::string> prefix;
  if (::geteuid() == 0) {
    if (::access("/usr/bin/setpriv", X_OK) != 0) {
      mama::test::skip_test("running as root without setpriv: cannot run as another user");
    }
    prefix = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
  } else {
    fs::permissions(l.file, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  }
  for (const std::string command : {"run", "wait", "clear"}) {
    std::vector<std::string> argv = prefix;
    for (const std::string a : {std::string(MAMA_CLI), std::string("--state"), l.file.string(),
                                std::string("--no-audit-log"), command, std::string("stale")})
      argv.push_back(a);
    if (command == "run") argv.insert(argv.end(), {"--", "true"});
    const Result r = run_capture(argv, run_env({}));
    INFO(command << ": " << r.err);
    CHECK(r.status == 1);
    CHECK(r.err.find("cannot change " + l.file.string()) != std::string::npos);
    CHECK(r.err.find("has no write permission") != std::string::npos);
    CHECK(r.err.find("Detected stale job") == std::string::npos);
  }
  CHECK(read_file(l.file) == before);
  // Reading still works.
  std::vector<std::string> list = prefix;
  for (const std::string a : {std::string(MAMA_CLI), std::string("--state"), l.file.string(),
                              std::string("--no-audit-log"), std::string("list")})
    list.push_back(a);
  CHECK(run_capture(list, run_env({})).status == 0);
}

TEST_CASE("a name used by two machines: the lab is shown, only that name is refused",
          "[cli][surprise]") {
  Lab l(
      "<?xml version=\"1.0\"?>\n<settings>\n"
      "  <machine>\n    <name>twin</name>\n    <job>first</job>\n  </machine>\n"
      "  <machine>\n    <name>twin</name>\n  </machine>\n"
      "  <machine>\n    <name>other</name>\n  </machine>\n</settings>\n");
  const Result list = l.run({"list"});
  CHECK(list.status == 0);
  CHECK(list.out.find("\n1   other ") != std::string::npos);
  CHECK(list.out.find("\n2   twin ") != std::string::npos);
  CHECK(list.out.find("\n3   twin ") != std::string::npos);
  CHECK(list.err.find("names machine 'twin' more than once") != std::string::npos);
  // Another machine works as usual.
  CHECK(l.run({"run", "other", "--", "true"}).status == 0);
  CHECK(l.run({"info", "other"}).status == 0);
  const std::string before = read_file(l.file);
  for (const auto& cmd : std::vector<std::vector<std::string>>{
           {"run", "twin", "--", "true"}, {"clear", "twin"}, {"info", "twin"}, {"wait", "twin"}}) {
    const Result r = l.run(cmd);
    INFO(cmd[0] << ": " << r.err);
    CHECK(r.status == 6);
    CHECK(r.err.find("names machine 'twin' twice") != std::string::npos);
  }
  CHECK(read_file(l.file) == before);
  // `clear all` clears the others and says which name it skipped.
  const Result all = l.run({"clear", "all"});
  CHECK(all.status == 0);
  CHECK(all.err.find("skipped 'twin'") != std::string::npos);
  CHECK(read_file(l.file) == before);
}

TEST_CASE("a machine without a name shows its job", "[cli][surprise]") {
  Lab l(
      "<?xml version=\"1.0\"?>\n<settings>\n"
      "  <machine>\n    <mac>aa:bb:cc:00:00:09</mac>\n    <job>orphan job</job>\n"
      "    <job_pid>4194305</job_pid>\n  </machine>\n</settings>\n");
  const Result r = l.run({"list"});
  CHECK(r.status == 0);
  CHECK(r.out.find("aa:bb:cc:00:00:09 -            -         orphan job [UNKNOWN]\n") !=
        std::string::npos);
}

TEST_CASE("an immutable state file is reported as such", "[chattr][.]") {
  Lab l;
  const std::string file = l.file.string();
  if (std::system(("chattr +i '" + file + "' 2>/dev/null").c_str()) != 0) {
    std::cerr << "skipped: chattr +i does not work here (needs root and a file system with "
                 "the flag)\n";
    std::exit(77);
  }
  struct Unset {
    std::string file;
    ~Unset() { [[maybe_unused]] int rc = std::system(("chattr -i '" + file + "'").c_str()); }
  } unset{file};
  const std::string before = read_file(l.file);
  CHECK(l.run({"list"}).status == 0);  // reading works
  for (const auto& cmd : std::vector<std::vector<std::string>>{
           {"clear", "stale"}, {"run", "alpha", "--", "true"}, {"wait", "stale"}}) {
    const Result r = l.run(cmd);
    INFO(cmd[0] << ": " << r.err);
    CHECK(r.status == 1);
    CHECK(r.err.find("is immutable or append-only (chattr +i or +a") != std::string::npos);
    CHECK(r.err.find("Detected stale job") == std::string::npos);
  }
  CHECK(read_file(l.file) == before);
}
