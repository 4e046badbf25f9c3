// examples/cli/job_process.cpp — see job_process.hpp.
#include "job_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <iostream>
#include <mama/error.hpp>
#include <mama/process_probe.hpp>

namespace mama::cli {

namespace {

constexpr int passed_on[] = {SIGINT, SIGTERM, SIGHUP};

enum phase : int { claiming = 0, running = 1, ending = 2 };

// The child's status when it exits without running the command (`mama run` went away first).
constexpr int exit_not_started = 127;

// Shared with the signal handler (it may run on any thread, e.g. a store's watcher thread).
volatile sig_atomic_t g_phase = claiming;
volatile sig_atomic_t g_pgid = 0;  // the job's group while any of it may remain; 0 otherwise
int g_pipe[2] = {-1, -1};          // self-pipe: the handler writes signal numbers here

constexpr char abandon_message[] =
    "\nmama: interrupted while ending the job; the machine is not released (its record reads as "
    "stale once the job's processes are gone)\n";

void on_signal(int sig) {
  const int saved = errno;
  if (g_phase == ending && sig != SIGCHLD) {
    // A second interruption: give up ending and releasing. The kernel drops our hold at exit.
    if (g_pgid > 0) ::kill(-g_pgid, SIGKILL);
    [[maybe_unused]] auto n = ::write(2, abandon_message, sizeof abandon_message - 1);
    ::_exit(128 + sig);
  }
  const unsigned char c = static_cast<unsigned char>(sig);
  [[maybe_unused]] auto n = ::write(g_pipe[1], &c, 1);
  errno = saved;
}

void install_handlers() {
  if (g_pipe[0] < 0 && ::pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
    throw_errno("cannot create a pipe for signals");
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigfillset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : passed_on) ::sigaction(sig, &sa, nullptr);
  ::sigaction(SIGCHLD, &sa, nullptr);  // also when the command stops (^Z)
}

void restore_handlers() {
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  for (int sig : passed_on) ::sigaction(sig, &sa, nullptr);
  ::sigaction(SIGCHLD, &sa, nullptr);
}

// tcsetpgrp from a background group raises SIGTTOU: ignored while we do it, as shells do.
void set_terminal_group(int fd, pid_t pgrp) noexcept {
  struct sigaction ign {
  }, old{};
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  ::sigaction(SIGTTOU, &ign, &old);
  ::tcsetpgrp(fd, pgrp);
  ::sigaction(SIGTTOU, &old, nullptr);
}

bool group_gone(pid_t pgid) noexcept { return ::kill(-pgid, 0) != 0 && errno == ESRCH; }

}  // namespace

JobProcess::JobProcess(const std::vector<std::string>& command, Options options)
    : options_(options) {
  std::vector<char*> argv;
  for (const auto& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);

  int go[2], report[2];
  if (::pipe2(go, O_CLOEXEC) != 0) throw_errno("cannot create a pipe to start the command");
  if (::pipe2(report, O_CLOEXEC) != 0) {
    ::close(go[0]);
    ::close(go[1]);
    throw_errno("cannot create a pipe to start the command");
  }
  // Job processes whose parent dies come to us, to be reaped (and not to init, out of sight).
  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  install_handlers();
  g_phase = running;

  own_pgrp_ = ::getpgrp();
  tty_fd_ = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  const bool foreground = tty_fd_ >= 0 && ::tcgetpgrp(tty_fd_) == own_pgrp_;

  sigset_t all, old;
  sigfillset(&all);
  ::sigprocmask(SIG_BLOCK, &all, &old);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int saved = errno;
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    for (int fd : {go[0], go[1], report[0], report[1]}) ::close(fd);
    errno = saved;
    throw_errno("cannot start the command (fork)");
  }
  if (pid == 0) {
    // Only async-signal-safe calls from here to exec: other threads may hold locks.
    restore_handlers();
    ::setpgid(0, 0);
    if (options_.die_with_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
      if (::getppid() != parent) ::_exit(exit_not_started);
    }
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    ::close(go[1]);
    ::close(report[0]);
    char c = 0;
    ssize_t n;
    do n = ::read(go[0], &c, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) ::_exit(exit_not_started);  // `mama run` died or gave up before handing over
    ::execvp(argv[0], argv.data());
    const int e = errno;
    [[maybe_unused]] auto w = ::write(report[1], &e, sizeof e);
    ::_exit(127);
  }
  pid_ = pid;
  ::setpgid(pid, pid);  // also here, so the group exists before either side goes on
  g_pgid = pid;
  ::sigprocmask(SIG_SETMASK, &old, nullptr);
  ::close(go[0]);
  ::close(report[1]);
  go_fd_ = go[1];
  report_fd_ = report[0];
  if (const auto stat = detail::read_proc_stat(pid)) start_ = stat->start;
  if (foreground) {
    set_terminal_group(tty_fd_, pid);
    gave_terminal_ = true;
    terminal_job_ = true;
  }
}

JobProcess::~JobProcess() {
  if (go_fd_ >= 0) abandon();
  restore_handlers();
  g_phase = claiming;
  g_pgid = 0;
  take_terminal_back();
  for (int fd : {go_fd_, report_fd_, tty_fd_})
    if (fd >= 0) ::close(fd);
}

int JobProcess::go() {
  const char c = 'g';
  [[maybe_unused]] auto w = ::write(go_fd_, &c, 1);
  ::close(go_fd_);
  go_fd_ = -1;
  int exec_errno = 0;
  ssize_t got;
  do got = ::read(report_fd_, &exec_errno, sizeof exec_errno);
  while (got < 0 && errno == EINTR);
  ::close(report_fd_);
  report_fd_ = -1;
  if (got != static_cast<ssize_t>(sizeof exec_errno)) return 0;
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  status_ = status;
  g_pgid = 0;
  take_terminal_back();
  return exec_errno;
}

void JobProcess::abandon() noexcept {
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  if (go_fd_ >= 0) {
    ::close(go_fd_);
    go_fd_ = -1;
  }
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  status_ = status;
  g_pgid = 0;
  take_terminal_back();
}

void JobProcess::take_terminal_back() noexcept {
  if (!gave_terminal_) return;
  set_terminal_group(tty_fd_, own_pgrp_);
  gave_terminal_ = false;
}

void JobProcess::reap_children() {
  for (;;) {
    int status = 0;
    const pid_t got = ::waitpid(-1, &status, WNOHANG | WUNTRACED);
    if (got <= 0) return;
    if (got != pid_) continue;
    if (WIFSTOPPED(status)) {
      if (terminal_job_ && g_phase == running) suspend_with_job();
      continue;
    }
    status_ = status;
  }
}

// ^Z on the terminal stopped the job's group, and only it: stop `mama run`'s own group as well,
// so that the shell sees its job stopped and takes the terminal back; when continued (`fg`),
// give the terminal back to the job and continue it. (In an orphaned group, as under a shell
// without job control, the kernel discards the stop and the job simply goes on.)
void JobProcess::suspend_with_job() {
  take_terminal_back();
  ::kill(0, SIGTSTP);
  // Continued (or the stop was discarded).
  if (tty_fd_ >= 0 && ::tcgetpgrp(tty_fd_) == own_pgrp_) {
    set_terminal_group(tty_fd_, pid_);
    gave_terminal_ = true;
  }
  ::kill(-pid_, SIGCONT);
}

int JobProcess::wait() {
  using clock = std::chrono::steady_clock;
  bool is_ending = false, term_sent = false, killed = false, stop_seen = false;
  clock::time_point deadline{};
  const auto begin_ending = [&](int sig) {
    is_ending = true;
    g_phase = ending;
    if (sig) ::kill(-pid_, sig);
    if (sig == SIGTERM) {
      term_sent = true;
      ::kill(-pid_, SIGCONT);  // a stopped process acts on SIGTERM only then
    }
    deadline = clock::now() + options_.kill_grace;
  };

  reap_children();
  for (;;) {
    if (status_ && !term_sent) {
      // The command is done. Whatever it left in its group is ended now (also after a passed-on
      // signal that the leftovers ignored).
      take_terminal_back();
      if (!group_gone(pid_)) {
        std::cerr << "mama: the command left processes behind in its group " << pid_
                  << "; ending them (SIGTERM, SIGKILL after the grace period)\n"
                  << std::flush;
        ++leftovers_;
      }
      begin_ending(SIGTERM);
    }
    if (is_ending && status_ && group_gone(pid_)) break;

    int timeout_ms = -1;
    if (is_ending) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
      if (left <= 0) {
        if (killed) {
          std::cerr << "mama: processes of the job's group " << pid_
                    << " did not end after SIGKILL; going on without them\n";
          break;
        }
        ::kill(-pid_, SIGKILL);
        ::kill(pid_, SIGKILL);
        killed = true;
        deadline = clock::now() + std::chrono::seconds(5);
        continue;
      }
      // Processes of the group that are not our children end without telling us: look often.
      timeout_ms = static_cast<int>(std::min<long long>(left, 50));
    }
    pollfd fds[2] = {{g_pipe[0], POLLIN, 0}, {stop_seen ? -1 : stop_fd_, POLLIN, 0}};
    const int n = ::poll(fds, 2, timeout_ms);
    if (n < 0 && errno != EINTR) throw_errno("cannot wait for the command (poll)");
    if (n > 0 && (fds[0].revents & POLLIN)) {
      unsigned char sigs[64];
      ssize_t got;
      while ((got = ::read(g_pipe[0], sigs, sizeof sigs)) > 0) {
        for (ssize_t i = 0; i < got; ++i) {
          const int sig = sigs[i];
          if (sig == SIGCHLD) continue;       // reaped below
          if (!is_ending) begin_ending(sig);  // passed on to the whole group
        }
      }
    }
    if (n > 0 && fds[1].fd >= 0 && (fds[1].revents & (POLLIN | POLLERR | POLLHUP))) {
      stop_seen = true;
      stopped_ = true;
      if (!is_ending) {
        take_terminal_back();
        if (options_.on_stop) options_.on_stop();
      }
      if (!term_sent) begin_ending(SIGTERM);
    }
    reap_children();
  }
  g_pgid = 0;
  take_terminal_back();
  return status_.value_or(0);
}

}  // namespace mama::cli
