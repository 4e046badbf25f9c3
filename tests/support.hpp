// tests/support.hpp — helpers shared by the tests: temporary directories, whole-file I/O, child
// processes that are really started and really killed.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace mama::test {

/// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string templ = std::string(base && *base ? base : "/tmp") + "/mama-test-XXXXXX";
    if (!::mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_file(const std::filesystem::path& p, const std::string& content) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

/// A forked child running `body` (its return value is the exit status). Killed with SIGKILL
/// and reaped on destruction if still running.
class Child {
 public:
  explicit Child(const std::function<int()>& body) {
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      int status = 1;
      try {
        status = body();
      } catch (...) {
        status = 99;
      }
      ::_exit(status);
    }
  }
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const noexcept { return pid_; }
  /// Sends SIGKILL and reaps; returns the raw wait status.
  int kill_and_reap(int sig = SIGKILL) {
    ::kill(pid_, sig);
    return wait();
  }
  /// Waits for the child to end; returns the raw wait status.
  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
    return status;
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

/// The exit status CTest counts as "skipped" (SKIP_RETURN_CODE 77 in the CMake files).
inline constexpr int skip_status = 77;

/// Ends the test program as skipped: says why on stderr and exits with skip_status. Only for a
/// test case that runs as its own CTest test (tagged hidden, "[.]", and named on the command
/// line of an add_test with SKIP_RETURN_CODE 77), so that no other case is skipped with it.
[[noreturn]] inline void skip_test(const std::string& why) {
  std::fprintf(stderr, "skipped: %s\n", why.c_str());
  std::exit(skip_status);
}

/// The reasons of the cases of this test program that skipped a check (see MAMA_SKIP). The
/// program's main (tests/test_main.cpp) runs every case, then exits with skip_status when a case
/// skipped and none failed, so CTest (SKIP_RETURN_CODE 77) reports the test as skipped, not passed.
inline std::vector<std::string>& skipped_checks() {
  static std::vector<std::string> reasons;
  return reasons;
}

/// Records that a check of the running case did not run (says why on stderr); the case goes on.
/// Use MAMA_SKIP to end the case there.
inline void skip_check(const std::string& why) {
  std::fprintf(stderr, "skipped: %s\n", why.c_str());
  skipped_checks().push_back(why);
}

/// The main process's exit status after a Catch2 session: its failures (0 to 255) when any failed,
/// else skip_status when a check was skipped, else 0.
inline int exit_status_after(int failures) {
  if (failures != 0) return failures == skip_status ? skip_status + 1 : failures;
  return skipped_checks().empty() ? 0 : skip_status;
}

/// Polls `cond` every millisecond for up to `limit`; returns whether it became true.
inline bool eventually(const std::function<bool()>& cond,
                       std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return cond();
}

/// What a finished program did.
struct RunResult {
  int status = -1;  ///< exit status, or 128 + signal (as a shell reports it)
  std::string out;
  std::string err;
};

/// A raw wait status as a shell reports it: the exit status, or 128 + the signal.
inline int exit_status_of(int raw) {
  return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
}

/// For a child about to exec: "NAME=value" entries are set, bare "NAME" entries unset.
inline void apply_env(const std::vector<std::string>& env) {
  for (const auto& e : env) {
    const auto eq = e.find('=');
    if (eq == std::string::npos)
      ::unsetenv(e.c_str());
    else
      ::setenv(e.substr(0, eq).c_str(), e.substr(eq + 1).c_str(), 1);
  }
}

/// Execs `argv` (argv[0] searched in PATH) after apply_env(env); exits 126 if it cannot.
[[noreturn]] inline void exec_with_env(const std::vector<std::string>& argv,
                                       const std::vector<std::string>& env) {
  apply_env(env);
  std::vector<char*> v;
  for (const auto& a : argv) v.push_back(const_cast<char*>(a.c_str()));
  v.push_back(nullptr);
  ::execvp(v[0], v.data());
  ::_exit(126);
}

/// Runs `argv` to completion with the environment edits `env`, capturing stdout and stderr
/// through pipes (so the program does not see a terminal).
inline RunResult run_capture(const std::vector<std::string>& argv,
                             const std::vector<std::string>& env = {}) {
  int out[2], err[2];
  if (::pipe(out) != 0 || ::pipe(err) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    for (int fd : {out[0], out[1], err[0], err[1]}) ::close(fd);
    exec_with_env(argv, env);
  }
  ::close(out[1]);
  ::close(err[1]);
  RunResult r;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open = 2;
  while (open > 0) {
    if (::poll(fds, 2, -1) < 0) continue;
    for (auto& f : fds) {
      if (f.fd < 0 || !(f.revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      const ssize_t n = ::read(f.fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(f.fd);
        f.fd = -1;
        --open;
      } else {
        (f.fd == out[0] ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  int raw = 0;
  ::waitpid(pid, &raw, 0);
  r.status = exit_status_of(raw);
  return r;
}

/// `argv` running in the background with the environment edits `env`, its stdout and stderr
/// going to files; killed with SIGKILL and reaped on destruction if still running.
class Background {
 public:
  Background(const std::vector<std::string>& argv, const std::vector<std::string>& env,
             const std::filesystem::path& out, const std::filesystem::path& err)
      : err_(err) {
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(o, 1);
      ::dup2(e, 2);
      exec_with_env(argv, env);
    }
  }
  ~Background() {
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  pid_t pid() const { return pid_; }
  /// Sends `sig`, waits; returns the exit status as a shell reports it.
  int signal_and_wait(int sig) {
    ::kill(pid_, sig);
    return wait();
  }
  int wait() {
    int raw = 0;
    ::waitpid(pid_, &raw, 0);
    reaped_ = true;
    return exit_status_of(raw);
  }
  /// What it wrote to stderr so far.
  std::string err() const { return read_file(err_); }

 private:
  pid_t pid_ = -1;
  std::filesystem::path err_;
  bool reaped_ = false;
};

}  // namespace mama::test

/// Ends the running test case as skipped (see skip_check): the other cases still run.
#define MAMA_SKIP(why)             \
  do {                             \
    ::mama::test::skip_check(why); \
    return;                        \
  } while (false)
