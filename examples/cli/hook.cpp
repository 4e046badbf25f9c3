// examples/cli/hook.cpp — see hook.hpp.
#include "hook.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "cli.hpp"

namespace mama::cli {

namespace {

// Writes all of `text` to stderr (one write when it fits, as it does here).
void say(const std::string& text) noexcept {
  const char* p = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(2, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

// Closes every descriptor above 2: the machine's job lock and the state file's lock must not
// live on in the hook or in anything it leaves running.
void close_inherited_fds() noexcept {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return;
#endif
  long max = ::sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536) max = 65536;
  for (int fd = 3; fd < max; ++fd) ::close(fd);
}

std::string seconds_text(std::chrono::nanoseconds d) {
  const double s = std::chrono::duration<double>(d).count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", s);
  return buf;
}

// The supervisor: runs the hook, kills its process group after `timeout`, reports, exits.
[[noreturn]] void supervise(const std::string& command, std::chrono::nanoseconds timeout,
                            const std::string& stdin_text,
                            const std::vector<std::pair<std::string, std::string>>& env) {
  close_inherited_fds();
  // The supervisor outlives a ^C or a hang-up of mama so that the timeout is always enforced.
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGQUIT, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGTERM, SIG_DFL);
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigset_t old;
  ::sigprocmask(SIG_BLOCK, &chld, &old);

  const std::string what = "mama: the --on-stale hook `" + esc(command) + "`";
  int in[2];
  if (::pipe(in) != 0) {
    say(what + " could not be started: " + std::strerror(errno) + "\n");
    ::_exit(1);
  }
  const pid_t hook = ::fork();
  if (hook < 0) {
    say(what + " could not be started (fork): " + std::strerror(errno) + "\n");
    ::_exit(1);
  }
  if (hook == 0) {
    ::setpgid(0, 0);
    ::dup2(in[0], 0);
    ::dup2(2, 1);  // the hook's output goes to mama's stderr
    ::close(in[0]);
    ::close(in[1]);
    for (const auto& [name, value] : env) ::setenv(name.c_str(), value.c_str(), 1);
    for (int sig : {SIGINT, SIGQUIT, SIGHUP, SIGTERM, SIGPIPE, SIGCHLD}) ::signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    say(what + " could not be run: /bin/sh: " + std::strerror(errno) + "\n");
    ::_exit(127);
  }
  ::setpgid(hook, hook);  // also here: no race with the kill below
  ::close(in[0]);
  // The JSON line is far below a pipe's capacity: this does not block even if the hook never
  // reads its stdin. A hook that exits early gives EPIPE, which is fine.
  {
    const char* p = stdin_text.data();
    std::size_t left = stdin_text.size();
    while (left > 0) {
      const ssize_t n = ::write(in[1], p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  }
  ::close(in[1]);

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  bool ended = false;
  for (;;) {
    const pid_t got = ::waitpid(hook, &status, WNOHANG);
    if (got == hook) {
      ended = true;
      break;
    }
    if (got < 0 && errno != EINTR) break;
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::nanoseconds::zero()) break;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    struct timespec ts {
      static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)
    };
    ::sigtimedwait(&chld, nullptr, &ts);
  }
  if (!ended) {
    ::kill(-hook, SIGKILL);
    while (::waitpid(hook, &status, 0) < 0 && errno == EINTR) {
    }
    say(what + " did not finish within " + seconds_text(timeout) +
        "; killed it (give it more time with --hook-timeout SEC)\n");
    ::_exit(1);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    say(what + " failed with exit status " + std::to_string(WEXITSTATUS(status)) + "; ignored\n");
    ::_exit(1);
  }
  if (WIFSIGNALED(status)) {
    say(what + " was killed by signal " + std::to_string(WTERMSIG(status)) + "; ignored\n");
    ::_exit(1);
  }
  ::_exit(0);
}

}  // namespace

void HookRunner::start(const std::string& stdin_text,
                       const std::vector<std::pair<std::string, std::string>>& env) noexcept {
  std::cout.flush();
  std::cerr.flush();
  const pid_t pid = ::fork();
  if (pid < 0) {
    say("mama: the --on-stale hook `" + esc(command_) +
        "` could not be started (fork): " + std::strerror(errno) + "\n");
    return;
  }
  if (pid == 0) supervise(command_, timeout_, stdin_text, env);
  try {
    supervisors_.push_back(pid);
  } catch (...) {
  }
}

void HookRunner::wait_all() noexcept {
  for (const pid_t pid : supervisors_) {
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  supervisors_.clear();
}

bool runs_hook(EventKind kind) noexcept {
  return kind == EventKind::stale_cleared || kind == EventKind::forced_clear;
}

std::vector<std::pair<std::string, std::string>> hook_environment(const Event& e,
                                                                  const Origin& origin,
                                                                  const std::string& time) {
  return {
      {"MAMA_EVENT", std::string(to_string(e.kind))},
      {"MAMA_MACHINE", std::string(e.machine)},
      {"MAMA_JOB", e.record.job},
      {"MAMA_JOB_PID", e.record.pid},
      {"MAMA_JOB_HOST", e.record.host},
      {"MAMA_JOB_STARTED", e.record.timestamp},
      {"MAMA_REASON", std::string(e.reason)},
      {"MAMA_STATE", std::string(e.store)},
      {"MAMA_HOST", origin.host},
      {"MAMA_USER", origin.user},
      {"MAMA_TIME", time},
  };
}

}  // namespace mama::cli
