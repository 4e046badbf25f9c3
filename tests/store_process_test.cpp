// The mama.xml store with real processes that are really killed: crash safety at every step of a
// save (I3), exact liveness through inherited lock files and instant wake-ups (I1, I2), mutual
// exclusion under a race, and a user who may read but not write the file.
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <mama/guard.hpp>
#include <mama/xml_state_store.hpp>
#include <sstream>

#include "support.hpp"

namespace fs = std::filesystem;
using mama::JobRecord;
using mama::SaveStep;
using mama::XmlStateStore;
using mama::XmlStoreOptions;
using mama::test::Child;
using mama::test::read_file;
using mama::test::TempDir;
using mama::test::write_file;

namespace {

std::string sample(const std::string& name) {
  return read_file(fs::path(MAMA_TEST_DATA_DIR) / name);
}

mama::GuardOptions quiet(std::string job = "test job") {
  mama::GuardOptions o;
  o.job = std::move(job);
  o.on_event = [](const mama::Event&) {};
  return o;
}

/// A one-way pipe for a child to tell the parent how far it got.
class Pipe {
 public:
  Pipe() { REQUIRE(::pipe(fds_) == 0); }
  ~Pipe() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  void send(const std::string& s) const { (void)!::write(fds_[1], s.data(), s.size()); }
  /// Reads one line (without '\n'); empty at end of file.
  std::string line() const {
    std::string out;
    char c;
    while (::read(fds_[0], &c, 1) == 1 && c != '\n') out += c;
    return out;
  }
  int write_fd() const { return fds_[1]; }
  int read_fd() const { return fds_[0]; }

 private:
  int fds_[2]{-1, -1};
};

int killed_by(int status) { return WIFSIGNALED(status) ? WTERMSIG(status) : 0; }

const std::array<SaveStep, 6> all_steps{SaveStep::journal_written, SaveStep::journal_renamed,
                                        SaveStep::file_truncated,  SaveStep::file_half_written,
                                        SaveStep::file_written,    SaveStep::journal_removed};

XmlStoreOptions crash_at(SaveStep at, XmlStoreOptions o = {}) {
  o.crash_hook = [at](SaveStep s) {
    if (s == at) ::kill(::getpid(), SIGKILL);
  };
  return o;
}

}  // namespace

TEST_CASE("a claimer killed at any step of a save leaves the old or the new file",
          "[xml_store][crash]") {
  TempDir dir;
  const auto file = dir / "mama.xml";
  write_file(file, sample("php_written.xml"));

  for (const SaveStep step : all_steps) {
    for (int round = 0; round < 3; ++round) {
      INFO("crash at " << mama::to_string(step) << ", round " << round);
      const std::string old_bytes = read_file(file);
      JobRecord old_record;
      {
        XmlStateStore store(file);
        old_record = *store.begin().find("vm-1");
        REQUIRE(old_record.job.empty());
      }
      const std::string job = "crash job " + std::to_string(round);
      Child claimer([&] {
        mama::JobGuard guard(XmlStateStore(file, crash_at(step)), "vm-1", quiet(job));
        return 0;  // never reached: the hook kills us inside the claim's save
      });
      REQUIRE(killed_by(claimer.wait()) == SIGKILL);

      // What the killed process left on disk, before anyone recovers it.
      const std::string left = read_file(file);
      const bool journal = fs::exists(dir / "mama.xml.d" / "journal");
      if (step == SaveStep::file_truncated || step == SaveStep::file_half_written) {
        CHECK(journal);
        CHECK(left.find("</settings>") == std::string::npos);  // PHP refuses it, never misreads
      }
      if (step == SaveStep::journal_written) CHECK(left == old_bytes);

      // The next access restores a whole file: exactly the old or exactly the new content.
      XmlStateStore store(file);
      JobRecord now;
      {
        auto tx = store.begin();
        now = *tx.find("vm-1");
        CHECK(tx.find("test-machine")->pid == "12345");
      }
      const std::string after = read_file(file);
      CHECK(!fs::exists(dir / "mama.xml.d" / "journal"));
      if (now.job.empty()) {
        CHECK(after == old_bytes);
        CHECK((step == SaveStep::journal_written || step == SaveStep::journal_renamed));
      } else {
        CHECK(now.job == job);
        CHECK(now.pid == std::to_string(claimer.pid()));
        CHECK(step != SaveStep::journal_written);
      }
      if (step >= SaveStep::file_truncated) CHECK(now.job == job);

      // The next claim gets the machine at once: the killed claimer's hold died with it.
      std::vector<std::string> stale;
      auto options = quiet("next job");
      options.on_event = [&](const mama::Event& e) {
        if (e.kind == mama::EventKind::stale_detected) stale.emplace_back(e.record.job);
      };
      {
        auto next = mama::JobGuard::try_claim(store, "vm-1", options);
        REQUIRE(next);
        CHECK(stale ==
              (now.job.empty() ? std::vector<std::string>{} : std::vector<std::string>{job}));
      }
      REQUIRE(store.begin().find("vm-1")->job.empty());
    }
  }
}

TEST_CASE("a journal older than a file PHP wrote after the crash is discarded",
          "[xml_store][crash]") {
  TempDir dir;
  const auto file = dir / "mama.xml";
  write_file(file, sample("php_written.xml"));
  Child claimer([&] {
    mama::JobGuard guard(XmlStateStore(file, crash_at(SaveStep::journal_renamed)), "vm-1",
                         quiet("lost job"));
    return 0;
  });
  REQUIRE(killed_by(claimer.wait()) == SIGKILL);
  REQUIRE(fs::exists(file.string() + ".d/journal"));
  // PHP saves in place (truncate, rewrite) under the same flock: the inode stays the same.
  std::string php = sample("php_written.xml");
  php.replace(php.find("<os>debian</os>"), std::string("<os>debian</os>").size(), "<os>arch</os>");
  {
    mama::detail::unique_fd fd(::open(file.c_str(), O_RDWR));
    REQUIRE(mama::detail::flock_retry(fd.get(), LOCK_EX) == 0);
    REQUIRE(::ftruncate(fd.get(), 0) == 0);
    REQUIRE(mama::detail::pwrite_all(fd.get(), php, 0));
  }
  XmlStateStore store(file);
  {
    auto tx = store.begin();
    CHECK(tx.find("vm-1")->job.empty());
    CHECK(tx.machines().front().field("os") == "arch");
  }
  CHECK(read_file(file) == php);
  CHECK(!fs::exists(file.string() + ".d/journal"));
}

TEST_CASE("standalone mode: a crash before the rename leaves the old file", "[xml_store][crash]") {
  TempDir dir;
  const auto file = dir / "mama.xml";
  write_file(file, sample("php_written.xml"));
  XmlStoreOptions standalone;
  standalone.mode = XmlStoreOptions::LockMode::standalone;
  for (int round = 0; round < 3; ++round) {
    const std::string old_bytes = read_file(file);
    Child claimer([&] {
      mama::JobGuard guard(XmlStateStore(file, crash_at(SaveStep::file_written, standalone)),
                           "vm-1", quiet());
      return 0;
    });
    REQUIRE(killed_by(claimer.wait()) == SIGKILL);
    CHECK(read_file(file) == old_bytes);
    auto next = mama::JobGuard::try_claim(XmlStateStore(file, standalone), "vm-1", quiet());
    CHECK(next);
    CHECK(next->record().pid == std::to_string(::getpid()));
  }
}

TEST_CASE("a job's child outliving its killed claimer keeps the machine busy",
          "[xml_store][liveness]") {
  REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);  // orphaned grandchildren come back to us
  TempDir dir;
  const auto file = dir / "mama.xml";
  write_file(file, sample("php_written.xml"));
  Pipe report;
  Child claimer([&] {
    mama::JobGuard guard(XmlStateStore(file), "vm-1", quiet("long job"));
    const pid_t job = ::fork();
    if (job == 0) {
      ::pause();  // the job's process: inherits the hold, outlives the claimer
      ::_exit(0);
    }
    report.send(std::to_string(job) + "\n");
    ::pause();
    return 0;
  });
  const pid_t job = std::stoi(report.line());
  REQUIRE(killed_by(claimer.kill_and_reap()) == SIGKILL);

  XmlStateStore store(file);
  for (int i = 0; i < 3; ++i) CHECK(!mama::JobGuard::try_claim(store, "vm-1", quiet()));
  CHECK(store.begin().find("vm-1")->pid == std::to_string(claimer.pid()));

  ::kill(job, SIGKILL);
  ::waitpid(job, nullptr, 0);
  std::vector<std::string> reasons;
  auto options = quiet("next job");
  options.on_event = [&](const mama::Event& e) {
    if (e.kind == mama::EventKind::stale_detected) reasons.emplace_back(e.reason);
  };
  auto next = mama::JobGuard::try_claim(store, "vm-1", options);
  REQUIRE(next);
  CHECK(reasons == std::vector<std::string>{"process not running"});
}

TEST_CASE("a waiter wakes when the holder dies or releases, not at its next poll",
          "[xml_store][liveness]") {
  TempDir dir;
  const auto file = dir / "mama.xml";
  write_file(file, sample("php_written.xml"));
  const bool by_kill = GENERATE(true, false);
  INFO((by_kill ? "holder killed" : "holder releases"));

  Pipe holder_says, go;
  Child holder([&] {
    std::optional<mama::JobGuard> guard;
    guard.emplace(XmlStateStore(file), "vm-1", quiet("holder"));
    holder_says.send("held\n");
    char c;
    while (::read(go.read_fd(), &c, 1) != 1) {
    }
    guard.reset();
    ::pause();
    return 0;
  });
  REQUIRE(holder_says.line() == "held");

  Pipe waiter_says;
  Child waiter([&] {
    auto options = quiet("waiter");
    options.poll_interval = std::chrono::seconds(30);
    options.on_event = [&](const mama::Event& e) {
      if (e.kind == mama::EventKind::waiting) waiter_says.send("waiting\n");
    };
    mama::JobGuard guard(XmlStateStore(file), "vm-1", options);
    waiter_says.send("claimed\n");
    ::pause();
    return 0;
  });
  REQUIRE(waiter_says.line() == "waiting");
  // Let the waiter get into its 30 s wait (it subscribes, then looks once more).
  std::this_thread::sleep_for(std::chrono::milliseconds(200));

  const auto t0 = std::chrono::steady_clock::now();
  if (by_kill) {
    holder.kill_and_reap();
  } else {
    go.send("x");
  }
  std::string said;
  do said = waiter_says.line();
  while (said == "waiting");
  const auto took = std::chrono::steady_clock::now() - t0;
  CHECK(said == "claimed");
  CHECK(took < std::chrono::seconds(5));  // far below the 30 s poll: woken by inotify
  WARN("waiter took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                      << " ms");
  XmlStateStore store(file);
  CHECK(store.begin().find("vm-1")->pid == std::to_string(waiter.pid()));
}

TEST_CASE("processes racing for one machine never hold it at the same time", "[xml_store][race]") {
  TempDir dir;
  const auto file = dir / "mama.xml";
  const auto log = dir / "holds.log";
  write_file(file, sample("php_written.xml"));
  write_file(log, "");
  constexpr int racers = 3, rounds = 25;
  std::vector<std::unique_ptr<Child>> children;
  for (int r = 0; r < racers; ++r) {
    children.push_back(std::make_unique<Child>([&, r] {
      mama::detail::unique_fd out(::open(log.c_str(), O_WRONLY | O_APPEND));
      XmlStoreOptions o;
      o.sync = r != 0;  // one racer saves without fsync: no effect on exclusion
      for (int i = 0; i < rounds; ++i) {
        mama::JobGuard guard(XmlStateStore(file, o), "vm-1", quiet("racer " + std::to_string(r)));
        const std::string me = std::to_string(::getpid());
        const std::string start = "S " + me + "\n", end = "E " + me + "\n";
        (void)!::write(out.get(), start.data(), start.size());
        std::this_thread::sleep_for(std::chrono::microseconds(500));
        (void)!::write(out.get(), end.data(), end.size());
      }
      return 0;
    }));
  }
  for (auto& c : children) {
    const int status = c->wait();
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
  }
  std::istringstream lines(read_file(log));
  std::string kind, pid, holder;
  int holds = 0;
  while (lines >> kind >> pid) {
    if (kind == "S") {
      REQUIRE(holder.empty());  // nobody else holds the machine
      holder = pid;
      ++holds;
    } else {
      REQUIRE(holder == pid);
      holder.clear();
    }
  }
  CHECK(holds == racers * rounds);
  CHECK(XmlStateStore(file).begin().find("vm-1")->job.empty());
}

TEST_CASE("a user who may read but not write can list, and gets a clear error on save",
          "[xml_store][perm]") {
  TempDir dir;
  const auto file = dir / "mama.xml";
  write_file(file, sample("php_written.xml"));
  const bool root = ::geteuid() == 0;
  const passwd* nobody = ::getpwnam("nobody");
  if (root && !nobody) {
    MAMA_SKIP("running as root and there is no user 'nobody' to be the other user");
  }
  REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
  // Runs `body` as a user other than the file's owner: nobody when we are root, else as us
  // after the file's mode took our rights away.
  const auto as_other_user = [&](const std::function<int()>& body) {
    Child c([&] {
      if (root && (::setgid(nobody->pw_gid) != 0 || ::setuid(nobody->pw_uid) != 0)) return 90;
      return body();
    });
    const int status = c.wait();
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
  };

  SECTION("read-only") {
    REQUIRE(::chmod(file.c_str(), 0644) == 0);
    if (!root) REQUIRE(::chmod(file.c_str(), 0444) == 0);
    const std::string before = read_file(file);
    const int result = as_other_user([&] {
      XmlStateStore store(file);
      auto tx = store.begin();
      if (tx.machines().size() != 2) return 1;
      tx.write("vm-1", JobRecord{"job", "1", "2", "", "", "", ""});
      try {
        tx.commit();
        return 2;
      } catch (const mama::error& e) {
        const std::string what = e.what();
        if (what.find(file.string()) == std::string::npos) return 3;
        if (what.find("no write permission") == std::string::npos) return 4;
        if (e.code() != std::error_code(EACCES, std::system_category())) return 5;
      }
      return 0;
    });
    CHECK(result == 0);
    CHECK(read_file(file) == before);
  }
  SECTION("unreadable") {
    REQUIRE(::chmod(file.c_str(), root ? 0600 : 0000) == 0);
    const int result = as_other_user([&] {
      try {
        XmlStateStore(file).begin();
        return 1;
      } catch (const mama::error& e) {
        const std::string what = e.what();
        if (what.find(file.string()) == std::string::npos) return 3;
        if (what.find("permission") == std::string::npos) return 4;
      }
      return 0;
    });
    CHECK(result == 0);
    REQUIRE(::chmod(file.c_str(), 0644) == 0);
    CHECK(read_file(file) == sample("php_written.xml"));
  }
}

TEST_CASE("hold_owner names the live process that still holds a machine's hold",
          "[xml_store][liveness]") {
  REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);  // the orphaned grandchild comes back to us
  TempDir dir;
  const auto file = dir / "mama.xml";
  write_file(file, sample("php_written.xml"));
  XmlStateStore store(file);
  const auto owner = [&] { return store.begin().hold_owner("vm-1"); };
  const auto started = [](pid_t pid) {
    const auto st = mama::detail::read_proc_stat(pid);
    REQUIRE(st);
    return st->start;
  };

  CHECK(!owner());  // no lock file yet
  auto hold = store.begin().try_hold("vm-1");
  REQUIRE(hold);
  CHECK(!owner());  // only this process holds it: it never names itself

  // A job process that inherits the hold and starts one of its own after a tick or two, so
  // that the two start times differ.
  Pipe says;
  Child job([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const pid_t grandchild = ::fork();
    if (grandchild == 0) {
      ::pause();
      ::_exit(0);
    }
    says.send(std::to_string(grandchild) + "\n");
    ::pause();
    return 0;
  });
  const pid_t grandchild = std::stoi(says.line());
  hold.reset();  // the parent's copy goes: only the job's processes hold it now
  REQUIRE(!store.begin().try_hold("vm-1"));
  // A process with the lock file open but without its lock (a waiter's probe) is no holder.
  Child waiter([&] {
    const int fd = ::open((store.runtime_dir() / "machine.vm-1.lock").c_str(), O_RDONLY);
    if (fd < 0) return 1;
    says.send("open\n");
    ::pause();
    return 0;
  });
  REQUIRE(says.line() == "open");

  const auto first = owner();
  REQUIRE(first);
  CHECK(first->pid == job.pid());  // the oldest of the holders
  CHECK(first->start == started(job.pid()));
  CHECK(started(job.pid()) < started(grandchild));

  REQUIRE(killed_by(job.kill_and_reap()) == SIGKILL);
  const auto second = owner();
  REQUIRE(second);
  CHECK(second->pid == grandchild);
  CHECK(second->start == started(grandchild));

  ::kill(grandchild, SIGKILL);
  ::waitpid(grandchild, nullptr, 0);
  CHECK(!owner());  // the waiter still has the file open, but holds nothing
  CHECK(store.begin().try_hold("vm-1"));
}

TEST_CASE(
    "a store that remembered the file recovers another process's killed save and reads "
    "what a fresh store reads",
    "[xml_store][crash]") {
  TempDir dir;
  const auto file = dir / "mama.xml";
  write_file(file, sample("php_written.xml"));
  XmlStateStore remembering(file);  // lives across every crash below, as a long `mama run` does

  for (const SaveStep step : all_steps) {
    INFO("crash at " << mama::to_string(step));
    const std::string old_bytes = read_file(file);
    REQUIRE(remembering.begin().find("vm-1")->job.empty());  // remembers old_bytes now
    Child claimer([&] {
      mama::JobGuard guard(XmlStateStore(file, crash_at(step)), "vm-1", quiet("killed job"));
      return 0;
    });
    REQUIRE(killed_by(claimer.wait()) == SIGKILL);

    // The remembering store recovers; then it, and a fresh store, read the same whole file.
    std::vector<mama::MachineInfo> seen;
    { seen = remembering.begin().machines(); }
    const std::string after = read_file(file);
    CHECK(after.find("</settings>") != std::string::npos);
    CHECK_FALSE(fs::exists(dir / "mama.xml.d" / "journal"));
    const auto fresh = XmlStateStore(file).begin().machines();
    REQUIRE(seen.size() == fresh.size());
    for (std::size_t i = 0; i < seen.size(); ++i) {
      CHECK(seen[i].name == fresh[i].name);
      CHECK(seen[i].job == fresh[i].job);
      CHECK(seen[i].fields == fresh[i].fields);
    }
    const auto vm1 = XmlStateStore(file).begin().find("vm-1");
    if (step >= SaveStep::file_truncated) CHECK(vm1->job == "killed job");
    if (vm1->job.empty()) CHECK(after == old_bytes);

    // Its next save starts from the recovered bytes, not from what it remembered before.
    {
      auto tx = remembering.begin();
      tx.write("vm-1", JobRecord{});
      tx.commit();
    }
    CHECK(XmlStateStore(file).begin().find("vm-1")->job.empty());
    CHECK(XmlStateStore(file).begin().find("test-machine")->pid == "12345");

    // The file replaced by a rename (a new inode) with other bytes: read as a fresh store does.
    std::string replaced = read_file(file);
    const auto at = replaced.find("12345");
    REQUIRE(at != std::string::npos);
    replaced.replace(at, 5, "54321");
    write_file(dir / "mama.xml.new", replaced);
    fs::rename(dir / "mama.xml.new", file);
    CHECK(remembering.begin().find("test-machine")->pid == "54321");
    replaced.replace(at, 5, "12345");
    write_file(dir / "mama.xml.new", replaced);
    fs::rename(dir / "mama.xml.new", file);
    CHECK(remembering.begin().find("test-machine")->pid == "12345");
  }
}
