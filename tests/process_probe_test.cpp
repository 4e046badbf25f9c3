// tests/process_probe_test.cpp — ProcProbe on real processes that really exit, really turn into
// zombies and really run as another user; the /proc/PID/stat parser on hostile command names;
// and FakeProbe's bookkeeping.
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <mama/process_probe.hpp>
#include <optional>
#include <string>

#include "support.hpp"

using mama::Liveness;
using mama::ProcProbe;
using mama::test::Child;
using mama::test::eventually;

namespace {

std::uint64_t start_of(pid_t pid) {
  const auto stat = mama::detail::read_proc_stat(pid);
  REQUIRE(stat);
  return stat->start;
}

char state_of(pid_t pid) {
  const auto stat = mama::detail::read_proc_stat(pid);
  return stat ? stat->state : '?';
}

/// A pipe to learn that a child reached a point: the child writes one byte, the parent reads it
/// (or end of file, when the child died first).
class Signal {
 public:
  Signal() { REQUIRE(::pipe2(fds_, O_CLOEXEC) == 0); }
  ~Signal() {
    for (int fd : fds_)
      if (fd >= 0) ::close(fd);
  }
  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;
  void notify() const { (void)!::write(fds_[1], "!", 1); }
  bool await() {
    ::close(fds_[1]);
    fds_[1] = -1;
    char c;
    return ::read(fds_[0], &c, 1) == 1;
  }

 private:
  int fds_[2] = {-1, -1};
};

int sleep_forever() {
  for (;;) ::pause();
}

/// Exit status of a reaped child, or -1 when it did not exit normally.
int exit_status(int raw) { return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1; }

}  // namespace

TEST_CASE("ProcProbe: a child that exited and was reaped is gone", "[probe][real]") {
  Child child([] { return 0; });
  const pid_t pid = child.pid();
  REQUIRE(exit_status(child.wait()) == 0);
  ProcProbe probe;
  CHECK(probe.check(pid, std::nullopt) == Liveness::gone);
  CHECK(probe.check(pid, 12345) == Liveness::gone);
}

TEST_CASE("ProcProbe: a zombie (exited, not reaped) is gone", "[probe][real]") {
  Child child([] { return 3; });
  const pid_t pid = child.pid();
  REQUIRE(eventually([&] { return state_of(pid) == 'Z'; }));
  ProcProbe probe;
  CHECK(::kill(pid, 0) == 0);  // the kernel still knows the PID: kill() alone would say alive
  CHECK(probe.check(pid, std::nullopt) == Liveness::gone);
  CHECK(exit_status(child.wait()) == 3);
}

TEST_CASE("ProcProbe: a live child is alive at its start time and 'reused' at any other",
          "[probe][real]") {
  Child child(sleep_forever);
  const pid_t pid = child.pid();
  REQUIRE(eventually([&] { return state_of(pid) == 'S'; }));
  const auto start = start_of(pid);
  ProcProbe probe;
  CHECK(probe.check(pid, start) == Liveness::alive);
  CHECK(probe.check(pid, std::nullopt) == Liveness::alive);
  CHECK(probe.check(pid, start + 1) == Liveness::reused);
  CHECK(probe.check(pid, start - 1) == Liveness::reused);
  child.kill_and_reap();
  CHECK(probe.check(pid, start) == Liveness::gone);
}

TEST_CASE("ProcProbe: PIDs that cannot be processes are gone", "[probe]") {
  ProcProbe probe;
  CHECK(probe.check(0, std::nullopt) == Liveness::gone);
  CHECK(probe.check(-1, std::nullopt) == Liveness::gone);
}

TEST_CASE("ProcProbe: a process of another user is alive", "[probe][real]") {
  if (::geteuid() != 0) {
    WARN("not root: cannot start a process as 'nobody'; the other-user test is skipped");
    return;
  }
  // getpwnam returns one static buffer: copy each answer before the next call.
  uid_t target_uid = 0, checker_uid = 0;
  gid_t target_gid = 0, checker_gid = 0;
  if (const passwd* nobody = ::getpwnam("nobody")) {
    target_uid = nobody->pw_uid;
    target_gid = nobody->pw_gid;
  }
  if (const passwd* daemon = ::getpwnam("daemon")) {
    checker_uid = daemon->pw_uid;
    checker_gid = daemon->pw_gid;
  }
  if (target_uid == 0 || checker_uid == 0 || target_uid == checker_uid) {
    WARN("no distinct 'nobody' and 'daemon' users; the other-user test is skipped");
    return;
  }

  Signal ready;
  Child target([&] {
    if (::setgroups(0, nullptr) != 0 || ::setgid(target_gid) != 0 || ::setuid(target_uid) != 0)
      return 90;
    ready.notify();
    return sleep_forever();
  });
  REQUIRE(ready.await());
  const auto start = start_of(target.pid());

  SECTION("seen by root") { CHECK(ProcProbe().check(target.pid(), start) == Liveness::alive); }

  SECTION("seen by a third user: kill() says EPERM, the probe says alive") {
    const pid_t pid = target.pid();
    Child checker([&] {
      if (::setgroups(0, nullptr) != 0 || ::setgid(checker_gid) != 0 || ::setuid(checker_uid) != 0)
        return 90;
      if (::kill(pid, 0) == 0 || errno != EPERM) return 10;
      if (ProcProbe().check(pid, start) != Liveness::alive) return 11;
      if (ProcProbe().check(pid, start + 1) != Liveness::reused) return 12;
      return 0;
    });
    CHECK(exit_status(checker.wait()) == 0);
  }

  SECTION("seen by a third user through /proc mounted hidepid=2: the kill() EPERM path") {
    const pid_t pid = target.pid();
    Child checker([&] {
      // A private /proc that hides other users' processes, so the probe must fall back to kill().
      if (::unshare(CLONE_NEWNS) != 0) return 77;
      if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 77;
      if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2") != 0)
        return 77;
      if (::setgroups(0, nullptr) != 0 || ::setgid(checker_gid) != 0 || ::setuid(checker_uid) != 0)
        return 90;
      if (mama::detail::read_proc_stat(pid)) return 13;  // not hidden: the test proves nothing
      if (ProcProbe().check(pid, start) != Liveness::alive) return 11;
      // And a PID that does not exist still reads as gone through the same fallback (ESRCH).
      Child gone([] { return 0; });
      const pid_t dead = gone.pid();
      gone.wait();
      if (ProcProbe().check(dead, std::nullopt) != Liveness::gone) return 14;
      return 0;
    });
    const int status = exit_status(checker.wait());
    if (status == 77) {
      WARN("cannot mount a private /proc with hidepid=2 here; the EPERM fallback is not tested");
    } else {
      CHECK(status == 0);
    }
  }
}

TEST_CASE("ProcProbe::self is this process, with the start time /proc shows", "[probe][real]") {
  ProcProbe probe;
  const auto self = probe.self();
  CHECK(self.pid == ::getpid());
  CHECK(self.start == start_of(::getpid()));
  CHECK(self.start > 0);
}

TEST_CASE("ProcProbe knows this host and this boot", "[probe][real]") {
  ProcProbe probe;
  char host[256] = {};
  REQUIRE(::gethostname(host, sizeof host - 1) == 0);
  CHECK(probe.host_name() == host);
  const std::string boot = probe.boot_id();
  CHECK(boot.size() == 36);  // a UUID, without the newline of the /proc file
  CHECK(mama::test::read_file("/proc/sys/kernel/random/boot_id") == boot + "\n");
}

TEST_CASE("ProcProbe::is_ancestor follows the real parent chain", "[probe][real]") {
  ProcProbe probe;
  const pid_t self = ::getpid();
  const auto self_start = start_of(self);
  CHECK(probe.is_ancestor(self, std::nullopt));
  CHECK(probe.is_ancestor(self, self_start));
  CHECK_FALSE(probe.is_ancestor(self, self_start + 1));
  CHECK(probe.is_ancestor(::getppid(), std::nullopt));
  CHECK(probe.is_ancestor(::getppid(), start_of(::getppid())));
  CHECK_FALSE(probe.is_ancestor(0, std::nullopt));
  // init is everyone's ancestor but never a job holder: a record naming PID 1 is not nested into.
  CHECK_FALSE(probe.is_ancestor(1, std::nullopt));

  SECTION("a child is not our ancestor, but we are the child's") {
    Child child([&] {
      if (!ProcProbe().is_ancestor(self, self_start)) return 20;
      if (ProcProbe().is_ancestor(self, self_start + 1)) return 21;
      return 0;
    });
    CHECK(exit_status(child.wait()) == 0);
    Child sleeper(sleep_forever);
    REQUIRE(eventually([&] { return state_of(sleeper.pid()) == 'S'; }));
    CHECK_FALSE(probe.is_ancestor(sleeper.pid(), std::nullopt));
  }
}

TEST_CASE("parse_proc_stat counts fields from the last ')'", "[probe]") {
  // Fields 5..21 are filler numbers; field 22 (starttime) is 987654321; more fields follow.
  const std::string filler = " 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21";
  SECTION("a command name containing ') ' and spaces") {
    const std::string text = "4321 (evil) R 1 (x) ) S 77" + filler + " 987654321 23 24\n";
    const auto stat = mama::detail::parse_proc_stat(text);
    REQUIRE(stat);
    CHECK(stat->state == 'S');
    CHECK(stat->ppid == 77);
    CHECK(stat->start == 987654321u);
  }
  SECTION("starttime as the last field, with its newline") {
    const auto stat = mama::detail::parse_proc_stat("1 (init) Z 0" + filler + " 42\n");
    REQUIRE(stat);
    CHECK(stat->state == 'Z');
    CHECK(stat->start == 42u);
  }
  SECTION("text that is not a stat line") {
    CHECK_FALSE(mama::detail::parse_proc_stat(""));
    CHECK_FALSE(mama::detail::parse_proc_stat("4321 no parenthesis S 1"));
    CHECK_FALSE(mama::detail::parse_proc_stat("4321 (short) S 1 2 3"));
    CHECK_FALSE(mama::detail::parse_proc_stat("4321 (bad ppid) S x" + filler + " 42"));
    CHECK_FALSE(mama::detail::parse_proc_stat("4321 (bad start) S 1" + filler + " 4x2"));
  }
}

TEST_CASE("ProcProbe reads a real process whose command name contains ') ' and spaces",
          "[probe][real]") {
  const pid_t parent = ::getpid();
  Signal named;
  Child child([&] {
    ::prctl(PR_SET_NAME, "a) b ) S 1 2", 0, 0, 0);  // the kernel keeps 15 bytes
    named.notify();
    return sleep_forever();
  });
  REQUIRE(named.await());
  const auto text = mama::test::read_file("/proc/" + std::to_string(child.pid()) + "/stat");
  REQUIRE_THAT(text, Catch::Contains("(a) b ) S 1 2)"));
  const auto stat = mama::detail::parse_proc_stat(text);
  REQUIRE(stat);
  CHECK(stat->ppid == parent);
  CHECK(ProcProbe().check(child.pid(), stat->start) == Liveness::alive);
  CHECK(ProcProbe().check(child.pid(), stat->start + 1) == Liveness::reused);
}

TEST_CASE("FakeProbe keeps a table of live processes and counts its checks", "[probe][fake]") {
  mama::FakeProbe probe;
  mama::FakeProbe copy = probe;  // copies share the table
  CHECK(probe.self() == mama::ProcessIdentity{4242, 1000});
  CHECK(probe.check(4242, 1000) == Liveness::alive);
  CHECK(probe.check(100, std::nullopt) == Liveness::gone);
  copy.spawn(100, 7);
  CHECK(probe.check(100, 7) == Liveness::alive);
  CHECK(probe.check(100, 8) == Liveness::reused);
  copy.zombify(100);
  CHECK(probe.check(100, 7) == Liveness::gone);
  copy.spawn(101).kill(101);
  CHECK(probe.check(101, std::nullopt) == Liveness::gone);
  CHECK(probe.checks() == 6);
  CHECK(copy.checks() == 6);

  copy.add_ancestor(50, 9);
  CHECK(probe.is_ancestor(50, 9));
  CHECK(probe.is_ancestor(50, std::nullopt));
  CHECK_FALSE(probe.is_ancestor(50, 10));
  CHECK(probe.is_ancestor(4242, 1000));
  CHECK_FALSE(probe.is_ancestor(100, std::nullopt));
  CHECK(probe.host_name() == "testhost");
  CHECK(probe.boot_id() == "boot-1");
}
