// tests/cli/sweep_test.cpp — how a sweep over the lab (`mama list`, `info`, `stats`, `clear
// all`, MAC lookup) reads it: mama::for_each_machine (the transaction's own, or machines()),
// the flock holds of a whole runtime directory from one read of /proc/locks (checked against
// real flocks of real processes, really killed), and `mama list` using them instead of opening
// each held lock file, with the same verdicts and the same bytes of output.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <mama/detail/xml/lock_files.hpp>
#include <mama/lookup.hpp>
#include <mama/state_store.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "mama_runner.hpp"

namespace {

namespace fs = std::filesystem;
using mama::detail::file_key;
using mama::test::Background;
using mama::test::eventually;
using mama::test::read_file;
using mama::test::Result;
using mama::test::TempDir;
using mama::test::write_file;

file_key key_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return {::major(st.st_dev), ::minor(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
}

bool listed(const fs::path& p) {
  const auto files = mama::detail::read_flocked_files();
  REQUIRE(files.has_value());
  return std::binary_search(files->begin(), files->end(), key_of(p));
}

// A child that opens `p`, takes `how` (LOCK_EX or LOCK_SH) on it, says so through a pipe and
// sleeps; killed with SIGKILL by the test.
struct Locker {
  int ready[2] = {-1, -1};
  std::unique_ptr<mama::test::Child> child;
  Locker(const fs::path& p, int how) {
    REQUIRE(::pipe(ready) == 0);
    child = std::make_unique<mama::test::Child>([&]() -> int {
      const int fd = ::open(p.c_str(), O_RDONLY | O_CREAT, 0644);
      if (fd < 0 || ::flock(fd, how) != 0) return 1;
      if (::write(ready[1], "x", 1) != 1) return 2;
      for (;;) ::pause();
    });
    ::close(ready[1]);
    char c = 0;
    REQUIRE(::read(ready[0], &c, 1) == 1);
    ::close(ready[0]);
  }
};

}  // namespace

TEST_CASE("a line of /proc/locks names the file of a held flock, and only then", "[sweep]") {
  using mama::detail::parse_flock_line;
  const auto k = parse_flock_line("1: FLOCK  ADVISORY  WRITE 2001 08:01:7864554 0 EOF");
  REQUIRE(k);
  CHECK(*k == file_key{8, 1, 7864554});
  // Device numbers are hex, the inode decimal.
  CHECK(parse_flock_line("12: FLOCK  ADVISORY  READ  42 fd:1a:123 0 EOF") ==
        file_key{0xfd, 0x1a, 123});
  CHECK(parse_flock_line("3: FLOCK  ADVISORY  WRITE 1568 00:2f:32388 0 EOF") ==
        file_key{0, 0x2f, 32388});
  // A process blocked waiting holds nothing; POSIX, OFD and lease locks are not flocks.
  CHECK_FALSE(parse_flock_line("1: -> FLOCK  ADVISORY  WRITE 2002 08:01:7864554 0 EOF"));
  CHECK_FALSE(parse_flock_line("4: POSIX  ADVISORY  WRITE 699 00:16:28457 0 EOF"));
  CHECK_FALSE(parse_flock_line("8: OFDLCK ADVISORY  READ  -1 00:06:1028 0 EOF"));
  CHECK_FALSE(parse_flock_line("9: LEASE  ACTIVE    READ  3548 08:01:7867240 0 EOF"));
  CHECK_FALSE(parse_flock_line("5: FLOCK  ADVISORY  UNLCK 2001 08:01:7864554 0 EOF"));
  // Malformed: no device, bad hex, inode not a number, cut short.
  CHECK_FALSE(parse_flock_line("1: FLOCK  ADVISORY  WRITE 2001 08017864554 0 EOF"));
  CHECK_FALSE(parse_flock_line("1: FLOCK  ADVISORY  WRITE 2001 0g:01:7864554 0 EOF"));
  CHECK_FALSE(parse_flock_line("1: FLOCK  ADVISORY  WRITE 2001 08:01:78x 0 EOF"));
  CHECK_FALSE(parse_flock_line("1: FLOCK  ADVISORY  WRITE"));
  CHECK_FALSE(parse_flock_line(""));
}

TEST_CASE("read_flocked_files reads a whole file of lines, and nothing from one it cannot read",
          "[sweep]") {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 3000; ++i)  // more than one read's worth: lines cut between reads
    text += std::to_string(i + 1) +
            (i % 3 == 0 ? ": POSIX  ADVISORY  WRITE " : ": FLOCK  ADVISORY  WRITE ") +
            "100 08:01:" + std::to_string(1000000 + i) + " 0 EOF\n";
  text += "3001: FLOCK  ADVISORY  WRITE 100 08:02:77 0 EOF";  // no newline at the end
  write_file(dir / "locks", text);
  const auto files = mama::detail::read_flocked_files((dir / "locks").c_str());
  REQUIRE(files);
  CHECK(files->size() == 2000 + 1);
  CHECK(std::is_sorted(files->begin(), files->end()));
  CHECK(std::binary_search(files->begin(), files->end(), file_key{8, 1, 1000001}));
  CHECK_FALSE(std::binary_search(files->begin(), files->end(), file_key{8, 1, 1000000}));
  CHECK(std::binary_search(files->begin(), files->end(), file_key{8, 2, 77}));
  CHECK_FALSE(mama::detail::read_flocked_files((dir / "missing").c_str()));
}

TEST_CASE("/proc/locks lists a real flock while its holder lives, not after SIGKILL", "[sweep]") {
  TempDir dir;
  const fs::path file = dir / "machine.m.lock";
  const int how = GENERATE(LOCK_EX, LOCK_SH);
  write_file(file, "");
  CHECK_FALSE(listed(file));
  Locker holder(file, how);
  CHECK(listed(file));
  holder.child->kill_and_reap();
  // The kernel drops the lock when the holder's last descriptor is closed.
  CHECK(eventually([&] { return !listed(file); }));
}

TEST_CASE("flock_snapshot says held for a lock file a live process holds, else not known",
          "[sweep]") {
  TempDir dir;
  const fs::path runtime = dir / "mama.xml.d";
  fs::create_directory(runtime);
  const fs::path lock = runtime / mama::detail::lock_file_name("m");
  write_file(lock, "");
  write_file(runtime / mama::detail::lock_file_name("free"), "");
  Locker holder(lock, LOCK_EX);

  const mama::detail::flock_snapshot snap(runtime);
  REQUIRE(snap.usable());
  CHECK(snap.held("m"));
  CHECK_FALSE(snap.held("free"));     // exists, nobody holds it
  CHECK_FALSE(snap.held("missing"));  // no lock file at all

  // Without /proc/locks (or without the directory) nothing is known: every machine is probed.
  const mama::detail::flock_snapshot blind(runtime, (dir / "no-such-file").c_str());
  CHECK_FALSE(blind.usable());
  CHECK_FALSE(blind.held("m"));
  const mama::detail::flock_snapshot no_dir(dir / "absent.d");
  CHECK_FALSE(no_dir.usable());
  CHECK_FALSE(no_dir.held("m"));

  // A snapshot is one read: taken after the holder died, it does not list the file.
  holder.child->kill_and_reap();
  REQUIRE(eventually([&] { return !listed(lock); }));
  CHECK_FALSE(mama::detail::flock_snapshot(runtime).held("m"));
}

namespace {
// A transaction with machines() only (as PgStateStore's): for_each_machine iterates those.
struct ListingOnly {
  std::vector<mama::MachineInfo> all;
  mutable int listed = 0;
  std::vector<mama::MachineInfo> machines() const {
    ++listed;
    return all;
  }
  std::optional<mama::JobRecord> find(std::string_view m) const {
    for (const auto& x : all)
      if (x.name == m) return x.job;
    return std::nullopt;
  }
};
}  // namespace

TEST_CASE("for_each_machine uses the transaction's own when it has one, else machines()",
          "[sweep]") {
  mama::MemoryStateStore store;
  mama::JobRecord busy;
  busy.job = "x";
  store.add_machine("a", {}, {{"mac", "52:54:00:AA:00:01"}})
      .add_machine("b", busy, {{"mac", "52:54:00:aa:00:02"}})
      .add_machine("c", {}, {{"mac", "52:54:00:AA:00:02"}});
  {
    auto tx = store.begin();
    std::vector<std::string> seen;
    mama::for_each_machine(tx, [&](const mama::MachineInfo& m) { seen.push_back(m.name); });
    CHECK(seen == std::vector<std::string>{"a", "b", "c"});
    CHECK(store.for_each_calls() == 1);
    // MAC lookup goes through it too, any letter case, the first machine in file order.
    CHECK(mama::find_machine(std::as_const(tx), "52:54:00:AA:00:02") == "b");
    CHECK(store.for_each_calls() == 2);
    CHECK(mama::find_machine(std::as_const(tx), "c") == "c");  // a name: no sweep
    CHECK(store.for_each_calls() == 2);
    CHECK_FALSE(mama::find_machine(std::as_const(tx), "52:54:00:aa:00:09"));
  }

  ListingOnly t;
  t.all = {{"x", {{"mac", "00:11:22:33:44:55"}}, {}}, {"y", {}, {}}};
  std::vector<std::string> seen;
  mama::for_each_machine(t, [&](const mama::MachineInfo& m) { seen.push_back(m.name); });
  CHECK(seen == std::vector<std::string>{"x", "y"});
  CHECK(t.listed == 1);
  CHECK(mama::find_machine(t, "00:11:22:33:44:55") == "x");
  CHECK(t.listed == 2);
}

namespace {
struct Lab {
  TempDir dir;
  fs::path file = dir / "mama.xml";
  explicit Lab(const std::string& content) { write_file(file, content); }
  Result run(std::vector<std::string> args) const {
    args.insert(args.begin(), {"--state", file.string()});
    return mama::test::run_mama(args);
  }
};

std::string lab_of(const std::vector<std::string>& names) {
  std::string s = "<?xml version=\"1.0\"?>\n<settings>\n";
  int i = 0;
  for (const auto& n : names)
    s += "  <machine>\n    <name>" + n + "</name>\n    <mac>52:54:00:00:00:1" +
         std::to_string(i++) + "</mac>\n    <ip>10.0.0.1</ip>\n  </machine>\n";
  return s + "</settings>\n";
}

// Opens of `path` seen by an inotify watch since the last call.
struct OpenWatch {
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  explicit OpenWatch(const fs::path& path) {
    REQUIRE(fd >= 0);
    REQUIRE(::inotify_add_watch(fd, path.c_str(), IN_OPEN) >= 0);
  }
  ~OpenWatch() { ::close(fd); }
  int opens() {
    alignas(inotify_event) char buf[4096];
    int n = 0;
    for (;;) {
      const ssize_t got = ::read(fd, buf, sizeof buf);
      if (got <= 0) return n;
      for (ssize_t at = 0; at < got;) {
        const auto* e = reinterpret_cast<const inotify_event*>(buf + at);
        if (e->mask & IN_OPEN) ++n;
        at += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
      }
    }
  }
};
}  // namespace

// `count` machines s00, s01, ... whose records mama wrote (a token) for a holder that is gone.
std::string stale_claims(int count) {
  std::string s;
  for (int i = 0; i < count; ++i)
    s += "  <machine>\n    <name>s" + std::to_string(10 + i) +
         "</name>\n    <job>old job</job>\n    <job_pid>4194305</job_pid>\n"
         "    <job_token>0123456789abcdef0123456789abcdef</job_token>\n  </machine>\n";
  return s;
}

/// A lab of machines m and n after 17 stale claims (so `list` reads /proc/locks once it reaches
/// m), with `mama run m` holding m for a `sleep` command whose PID is `sleeper`.
struct LongJob {
  Lab lab{[] {
    std::string content = lab_of({"m", "n"});
    content.insert(content.find("  <machine>"), stale_claims(17));
    return content;
  }()};
  fs::path pidfile = lab.dir / "cmd.pid";
  Background holder{
      mama::test::mama_argv({"--state", lab.file.string(), "run", "m", "--job", "long job", "--",
                             "sh", "-c", "echo $$ > " + pidfile.string() + "; exec sleep 100"}),
      mama::test::run_env({}), lab.dir / "h.out", lab.dir / "h.err"};
  fs::path lock = lab.dir / "mama.xml.d" / mama::detail::lock_file_name("m");
  pid_t sleeper = 0;

  LongJob() {
    REQUIRE(eventually([&] { return read_file(pidfile).find('\n') != std::string::npos; }));
    sleeper = std::stoi(read_file(pidfile));
    REQUIRE(listed(lock));
  }
};

TEST_CASE("list learns a live job's hold from /proc/locks without opening its lock file",
          "[sweep][cli]") {
  LongJob job;
  Lab& l = job.lab;
  Background& holder = job.holder;
  const pid_t sleeper = job.sleeper;
  const fs::path& lock = job.lock;
  OpenWatch watch(lock);

  const Result busy = l.run({"list"});
  CHECK(busy.status == 0);
  CHECK(busy.out.find("long job\n") != std::string::npos);
  CHECK(busy.out.find("old job [STALE]\n") != std::string::npos);
  CHECK(watch.opens() == 0);  // held per /proc/locks: no try-lock

  // `mama run` SIGKILLed, its command still running with the inherited lock: still busy.
  CHECK(holder.signal_and_wait(SIGKILL) == 128 + SIGKILL);
  const Result leftover = l.run({"list"});
  CHECK(leftover.out.find("long job\n") != std::string::npos);
  CHECK(leftover.out.find("long job [STALE]") == std::string::npos);

  // Everything gone: /proc/locks no longer lists the file, so list probes it (opens it, takes
  // the free lock) and the job is stale.
  ::kill(sleeper, SIGKILL);
  REQUIRE(eventually([&] { return !listed(lock); }));
  watch.opens();
  const Result stale = l.run({"list"});
  CHECK(stale.out.find("long job [STALE]\n") != std::string::npos);
  CHECK(watch.opens() >= 1);
}

TEST_CASE("list with a live job's lock file replaced by another inode: the job still runs",
          "[sweep][cli]") {
  // Someone replaced m's lock file (a cleanup of the runtime directory) while `mama run` holds
  // the old inode: /proc/locks lists the old inode only, the new one is free. The sweep must not
  // call the job stale while its recorded process lives, nor busy once everything is gone.
  LongJob job;
  Lab& l = job.lab;
  Background& holder = job.holder;
  const pid_t sleeper = job.sleeper;
  const fs::path& lock = job.lock;
  write_file(l.dir / "mama.xml.d" / "replacement", "");
  fs::rename(l.dir / "mama.xml.d" / "replacement", lock);
  REQUIRE_FALSE(listed(lock));

  const Result live = l.run({"list"});
  CHECK(live.status == 0);
  CHECK(live.out.find("long job\n") != std::string::npos);
  CHECK(live.out.find("long job [STALE]") == std::string::npos);
  CHECK(live.out.find("old job [STALE]\n") != std::string::npos);
  const std::string before = read_file(l.file);
  CHECK(l.run({"list"}).out == live.out);
  CHECK(read_file(l.file) == before);

  // Everything gone: stale, not busy forever (the new inode is free, the process is dead).
  CHECK(holder.signal_and_wait(SIGKILL) == 128 + SIGKILL);
  ::kill(sleeper, SIGKILL);
  // kill() returns before the signal has ended the process: wait until it is gone or a zombie
  // (reparented, it may not be reaped at once), then one list must call the job stale.
  REQUIRE(eventually([&] {
    const std::string stat = read_file("/proc/" + std::to_string(sleeper) + "/stat");
    const auto close = stat.rfind(')');
    return stat.empty() || (close != std::string::npos && stat.compare(close, 3, ") Z") == 0);
  }));
  const Result gone = l.run({"list"});
  CHECK(gone.out.find("long job [STALE]\n") != std::string::npos);
}

TEST_CASE("list --json prints exactly what nlohmann::json prints for the whole document",
          "[sweep][cli]") {
  for (const std::string& content :
       {lab_of({"b", "a", "c\"q"}), lab_of({}),
        std::string("<?xml version=\"1.0\"?>\n<settings>\n  <machine>\n    <name>x</name>\n"
                    "    <job>run t</job>\n    <job_pid>4194305</job_pid>\n"
                    "    <job_timestamp>1700000000</job_timestamp>\n  </machine>\n"
                    "  <machine>\n    <name>y</name>\n  </machine>\n</settings>\n")}) {
    Lab l(content);
    const Result r = l.run({"list", "--json"});
    REQUIRE(r.status == 0);
    const auto j = nlohmann::ordered_json::parse(r.out);
    CHECK(r.out == j.dump(2) + "\n");  // the same bytes as print_json's
    CHECK(j["state"] == l.file.string());
  }
}
