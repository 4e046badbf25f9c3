// Several Unix users sharing one mama.xml (issue 12): what the store creates beside the file
// (`<file>.d/`, lock files, the save journal) and the CLI's audit log must be usable by every
// user who may write the file, whoever created them first. Real users: as root the test
// creates a group and two users (removed at the end) and runs every step in a child process
// that really switched to one of them; without root it exits with CTest's skip status (77).
#define CATCH_CONFIG_RUNNER
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <iostream>
#include <mama/guard.hpp>
#include <mama/xml_state_store.hpp>

#include "support.hpp"

namespace fs = std::filesystem;
using mama::XmlStateStore;
using mama::XmlStoreOptions;
using mama::test::Child;
using mama::test::read_file;
using mama::test::TempDir;
using mama::test::write_file;

namespace {

constexpr const char* lab_group = "mama-lab-t";
constexpr const char* user1 = "mama-lab-u1";  // primary group: the lab group
constexpr const char* user2 = "mama-lab-u2";  // its own primary group; a member of the lab group
constexpr int skip_status = 77;               // SKIP_RETURN_CODE in CMakeLists.txt

bool sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

void remove_users() {
  sh(std::string("userdel ") + user1);
  sh(std::string("userdel ") + user2);
  sh(std::string("groupdel ") + user2);
  sh(std::string("groupdel ") + lab_group);
}

bool create_users() {
  remove_users();  // left over from a run that was killed
  const std::string nologin = " --no-create-home --shell /usr/sbin/nologin ";
  return sh(std::string("groupadd --system ") + lab_group) &&
         sh("useradd --system" + nologin + "-g " + lab_group + " " + user1) &&
         sh("useradd --system" + nologin + "--user-group -G " + lab_group + " " + user2);
}

gid_t group_id(const char* name) {
  const group* g = ::getgrnam(name);
  REQUIRE(g);
  return g->gr_gid;
}

/// Runs `body` in a child process as `user` (its primary and supplementary groups, umask 077
/// so that nothing is group-usable by accident); returns its exit status (90: could not switch).
int as_user(const char* user, const std::function<int()>& body) {
  const passwd* pw = ::getpwnam(user);
  REQUIRE(pw);
  const uid_t uid = pw->pw_uid;
  const gid_t gid = pw->pw_gid;
  std::vector<gid_t> groups(64);
  int n = static_cast<int>(groups.size());
  REQUIRE(::getgrouplist(user, gid, groups.data(), &n) >= 0);
  groups.resize(static_cast<std::size_t>(n));
  Child c([&] {
    if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0)
      return 90;
    ::umask(077);
    return body();
  });
  const int status = c.wait();
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

mama::GuardOptions quiet(std::string job) {
  mama::GuardOptions o;
  o.job = std::move(job);
  o.on_event = [](const mama::Event&) {};
  return o;
}

const std::string lab_xml =
    "<?xml version=\"1.0\"?>\n<settings>\n"
    "  <machine>\n    <name>m1</name>\n    <job/>\n    <job_pid/>\n  </machine>\n"
    "  <machine>\n    <name>m2</name>\n    <job/>\n    <job_pid/>\n  </machine>\n"
    "</settings>\n";

/// A lab directory (root's, the lab group's, group-writable, not setgid) holding mama.xml of
/// user1 and the lab group, mode 0664.
struct Lab {
  TempDir tmp;
  fs::path dir = tmp / "lab";
  fs::path file = dir / "mama.xml";
  fs::path runtime = dir / "mama.xml.d";
  gid_t gid = group_id(lab_group);
  Lab() {
    REQUIRE(::chmod(tmp.path().c_str(), 0755) == 0);
    fs::create_directory(dir);
    REQUIRE(::chown(dir.c_str(), 0, gid) == 0);
    REQUIRE(::chmod(dir.c_str(), 0775) == 0);
    write_file(file, lab_xml);
    REQUIRE(::chown(file.c_str(), ::getpwnam(user1)->pw_uid, gid) == 0);
    REQUIRE(::chmod(file.c_str(), 0664) == 0);
  }
};

struct stat stat_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st;
}

int claim_and_release(const fs::path& file, const char* machine, XmlStoreOptions o = {}) {
  mama::JobGuard guard(XmlStateStore(file, o), machine, quiet("job"));
  return guard.active() ? 0 : 1;
}

}  // namespace

TEST_CASE("the runtime directory, lock files and journal are the lab group's, whoever made them",
          "[multiuser]") {
  Lab lab;
  // user1's primary group is the file's group: the case that used to leave out the setgid bit.
  REQUIRE(as_user(user1, [&] { return claim_and_release(lab.file, "m1"); }) == 0);
  const auto dir = stat_of(lab.runtime);
  CHECK(dir.st_gid == lab.gid);
  CHECK((dir.st_mode & S_ISGID) != 0);
  CHECK((dir.st_mode & 0070) == 0070);  // the group may create and remove lock files
  CHECK(stat_of(lab.runtime / "machine.m1.lock").st_gid == lab.gid);

  // user2 (another primary group) dies in a save: its lock file and journal stay behind.
  XmlStoreOptions crash;
  crash.crash_hook = [](mama::SaveStep s) {
    if (s == mama::SaveStep::journal_renamed) ::kill(::getpid(), SIGKILL);
  };
  CHECK(as_user(user2, [&] { return claim_and_release(lab.file, "m2", crash); }) == 128 + SIGKILL);
  const auto lock2 = stat_of(lab.runtime / "machine.m2.lock");
  CHECK(lock2.st_gid == lab.gid);
  const auto journal = stat_of(lab.runtime / "journal");
  CHECK(journal.st_gid == lab.gid);
  CHECK((journal.st_mode & 0060) == 0060);

  // user1 finishes or discards user2's journal, clears user2's dead claim and claims m2.
  CHECK(as_user(user1, [&] { return claim_and_release(lab.file, "m2"); }) == 0);
  CHECK(!fs::exists(lab.runtime / "journal"));
  // And user2 uses what user1 made.
  CHECK(as_user(user2, [&] { return claim_and_release(lab.file, "m1"); }) == 0);
  CHECK(XmlStateStore(lab.file).begin().find("m1")->idle());
  CHECK(XmlStateStore(lab.file).begin().find("m2")->idle());
}

#ifdef MAMA_CLI
namespace {
// Runs `mama args...` as `user`; 0 when it succeeded and said nothing about the audit log.
int mama_as(const char* user, const std::vector<std::string>& args) {
  return as_user(user, [&] {
    std::vector<std::string> argv{MAMA_CLI};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto r = mama::test::run_capture(
        argv, {"MAMA_STATE", "MAMA_AUDIT_LOG", "MAMA_AUDIT_MAX_SIZE", "MAMA_ON_STALE", "NO_COLOR"});
    if (r.status != 0 || r.err.find("audit") != std::string::npos) {
      std::cerr << "mama as " << user << ": status " << r.status << ": " << r.err << "\n";
      return r.status != 0 ? 10 : 11;
    }
    return 0;
  });
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("the CLI's audit log is the lab group's and writable by the group", "[multiuser][cli]") {
  Lab lab;
  SECTION("beside mama.xml") {
    // user1 makes the runtime directory; user2 then starts the audit log; user1 appends.
    REQUIRE(as_user(user1, [&] { return claim_and_release(lab.file, "m1"); }) == 0);
    CHECK(mama_as(user2, {"--state", lab.file.string(), "run", "m1", "--", "true"}) == 0);
    const auto log = lab.runtime / "audit.jsonl";
    const auto st = stat_of(log);
    CHECK(st.st_gid == lab.gid);
    CHECK((st.st_mode & 0060) == 0060);
    CHECK(mama_as(user1, {"--state", lab.file.string(), "run", "m1", "--", "true"}) == 0);
    const std::string text = read_file(log);
    CHECK(count(text, std::string("\"user\":\"") + user1 + "\"") >= 1);
    CHECK(count(text, std::string("\"user\":\"") + user2 + "\"") >= 1);
  }
  SECTION("in a directory of its own, given with --audit-log") {
    const auto logs = lab.tmp / "logs";
    fs::create_directory(logs);
    REQUIRE(::chmod(logs.c_str(), 0777) == 0);  // anyone may create files; no setgid
    const auto log = logs / "audit.jsonl";
    CHECK(mama_as(user2, {"--state", lab.file.string(), "--audit-log", log.string(), "run", "m1",
                          "--", "true"}) == 0);
    const auto st = stat_of(log);
    CHECK(st.st_gid == lab.gid);
    CHECK((st.st_mode & 0060) == 0060);
    CHECK(mama_as(user1, {"--state", lab.file.string(), "--audit-log", log.string(), "run", "m1",
                          "--", "true"}) == 0);
    CHECK(count(read_file(log), std::string("\"user\":\"") + user1 + "\"") >= 1);
  }
}
#endif

int main(int argc, char** argv) {
  if (::geteuid() != 0) {
    std::cout << "multiuser_test: not root, so no test users can be made: skipped\n";
    return skip_status;
  }
  if (!create_users()) {
    std::cout << "multiuser_test: groupadd/useradd failed: skipped\n";
    remove_users();
    return skip_status;
  }
  const int result = Catch::Session().run(argc, argv);
  remove_users();
  return result;
}
