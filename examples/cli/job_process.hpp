// examples/cli/job_process.hpp — how `mama run` runs its command: the job's process group, the
// terminal, signals, leftovers.
//
// The command runs in a process group of its own (setpgid in the child and in the parent, as a
// shell does). When `mama run` is the foreground of a terminal, the group gets the terminal, so
// ^C reaches every process of the job and not `mama run`; the terminal is taken back when the
// command ends. A ^Z that stops the job stops `mama run` too (the shell's job), and `fg`
// continues both with the terminal given back to the job. `mama run` is a child subreaper (PR_SET_CHILD_SUBREAPER): job processes whose
// parent dies are reparented to it and reaped. SIGINT, SIGTERM and SIGHUP sent to `mama run`
// are passed on to the whole group (kill(-pgid)).
//
// The child is forked, then waits on a pipe until start() is told to let it go (go()): in
// between, the caller records the child as the job's process (StaleJobGuard::hand_over), so the
// record never names a process that is not the job, and the command never runs under a record
// naming someone else. If `mama run` dies before go(), the child sees the pipe close and exits
// without running the command.
//
// When the command exits, a forwarded signal arrives, or stop() is called (the hold was lost),
// what remains of the group is ended: SIGTERM, a grace period, SIGKILL; every process of the
// group is reaped before wait() returns. Processes that left the group (setsid) are not
// touched: they keep the machine busy (the store sees them holding its lock).
//
// Signals, by phase: while claiming (before JobProcess exists) SIGINT/SIGTERM/SIGHUP end
// `mama run` at once as usual. While the command runs they are passed on to the group. Once the
// job is ending or being released (after the command exited, or after a first forwarded
// signal), one of them SIGKILLs what remains of the group and ends `mama run` at once, without
// finishing the release: the kernel drops the machine's lock at exit, so the record reads as
// stale (SPEC §3).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace mama::cli {

class JobProcess {
 public:
  struct Options {
    /// How long the group gets between SIGTERM and SIGKILL.
    std::chrono::nanoseconds kill_grace = std::chrono::seconds(10);
    /// Whether the command must die with `mama run` (PR_SET_PDEATHSIG(SIGKILL)): for holds that
    /// a server keeps for `mama run`'s session, which ends when `mama run` dies.
    bool die_with_parent = false;
    /// Called by wait() when the stop fd becomes readable, before the group is ended.
    std::function<void()> on_stop{};
  };

  /// Installs the signal handlers, makes this process a child subreaper, and forks the child,
  /// which waits for go(). Throws mama::error when the child cannot be created.
  JobProcess(const std::vector<std::string>& command, Options options);
  ~JobProcess();
  JobProcess(const JobProcess&) = delete;
  JobProcess& operator=(const JobProcess&) = delete;

  /// The child's PID (also the process group's ID).
  pid_t pid() const noexcept { return pid_; }
  /// The child's start time (field 22 of /proc/PID/stat), 0 when unreadable.
  std::uint64_t start_ticks() const noexcept { return start_; }

  /// Lets the child exec the command. Returns 0, or the errno of a failed exec (the child has
  /// then exited and been reaped).
  int go();
  /// Kills the waiting child (SIGKILL) and reaps it: used when the command must not run.
  void abandon() noexcept;

  /// A file descriptor that, when readable, asks wait() to stop the job (e.g. an eventfd the
  /// hold-lost callback writes to). -1: none.
  void watch_stop_fd(int fd) noexcept { stop_fd_ = fd; }

  /// Waits for the command, passing signals on, then ends what remains of the group and reaps
  /// it. Returns the command's raw wait status. After it returns, signals end `mama run` at once
  /// (the release phase).
  int wait();
  /// Whether wait() returned because the stop fd became readable.
  bool stopped() const noexcept { return stopped_; }
  /// How many processes of the group were still there after the command exited.
  int leftovers_ended() const noexcept { return leftovers_; }

 private:
  void end_group(std::chrono::steady_clock::time_point deadline, bool& killed);
  void reap_children();
  void take_terminal_back() noexcept;
  void suspend_with_job();

  Options options_;
  pid_t pid_ = -1;
  std::uint64_t start_ = 0;
  int go_fd_ = -1;
  int report_fd_ = -1;
  int stop_fd_ = -1;
  int tty_fd_ = -1;
  pid_t own_pgrp_ = 0;
  bool gave_terminal_ = false;
  bool terminal_job_ = false;  // the job had the terminal: ^Z stops mama run too
  std::optional<int> status_;
  bool stopped_ = false;
  int leftovers_ = 0;
};

}  // namespace mama::cli
