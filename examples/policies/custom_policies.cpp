// custom_policies — write your own Clock and ProcessProbe and plug them into StaleJobGuard.
//
// KillProbe answers liveness with kill(pid, 0) alone, for systems without a /proc it may read.
// CountingClock is the system clock plus a count of the waits, for a progress display.
// Both go into a StaleJobGuard together with the in-memory store; with mama::XmlStateStore in
// its place the same guard works on mama.xml.
//
//   custom_policies        (exits 0 after claiming a machine whose holder is gone)
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <iostream>
#include <mama/guard.hpp>
#include <optional>
#include <string>
#include <thread>

// A Clock: wall time for the file, steady time for deadlines, and a wait that may be cut short.
class CountingClock {
 public:
  std::chrono::system_clock::time_point now() const { return std::chrono::system_clock::now(); }
  std::chrono::steady_clock::time_point steady_now() const {
    return std::chrono::steady_clock::now();
  }
  // Ignores the store's wake descriptor: waits the whole slice. Returns "not woken".
  bool wait_for(std::chrono::nanoseconds d, int /*wake_fd*/) {
    ++waits_;
    std::this_thread::sleep_for(d);
    return false;
  }
  int waits() const { return waits_; }

 private:
  int waits_ = 0;
};
static_assert(mama::guard_clock<CountingClock>);

// A ProcessProbe: is a recorded holder alive, and who are we.
class KillProbe {
 public:
  // kill(pid, 0): 0 or EPERM (another user's process) means alive; ESRCH means gone. Without
  // /proc there is no start time to compare, so this probe never answers "reused".
  mama::Liveness check(int pid, std::optional<std::uint64_t> /*start*/) const {
    if (pid <= 0) return mama::Liveness::gone;
    if (::kill(pid, 0) == 0 || errno == EPERM) return mama::Liveness::alive;
    return errno == ESRCH ? mama::Liveness::gone : mama::Liveness::unknown;
  }
  // Start time 0: unknown, so the guard writes no job_start.
  mama::ProcessIdentity self() const { return {static_cast<int>(::getpid()), 0}; }
  std::string host_name() const {
    char buf[256] = {};
    return ::gethostname(buf, sizeof buf - 1) == 0 ? std::string(buf) : std::string();
  }
  // Empty: unknown boot, so the "host rebooted" rule is not applied.
  std::string boot_id() const { return {}; }
  // Only ourselves and our parent: enough for a job that claims once and runs children.
  bool is_ancestor(int pid, std::optional<std::uint64_t> /*start*/) const {
    return pid == ::getpid() || pid == ::getppid();
  }
};
static_assert(mama::process_probe<KillProbe>);

// The PID of a process that is certainly gone: a child that exited and was reaped.
static int dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return static_cast<int>(pid);
}

int main() {
  // A lab with one machine whose job was left behind by a crashed process.
  mama::MemoryStateStore store;
  mama::JobRecord phantom;
  phantom.job = "run test-job x86_64/fedora";
  phantom.pid = std::to_string(dead_pid());
  store.add_machine("test-machine", phantom);

  using Guard = mama::StaleJobGuard<CountingClock, KillProbe, mama::MemoryStateStore>;
  try {
    mama::GuardOptions options;
    options.job = "custom policies example";
    options.timeout = std::chrono::seconds(30);
    Guard guard(store, "test-machine", options);  // prints "Detected stale job: ..." to stderr
    std::cout << "claimed " << guard.machine() << " for '" << guard.record().job << "' as PID "
              << guard.record().pid << " after " << guard.clock().waits() << " waits\n";
  } catch (const mama::error& e) {
    std::cerr << "custom_policies: " << e.what() << '\n';
    return 1;
  }
  // Released at the end of the scope above.
  return store.record("test-machine").idle() ? 0 : 1;
}
