// tests/cli/run_support.hpp — what the `mama run` tests share: a lab file, a background `mama`
// whose end can be awaited with a time limit, and looks at processes and process groups.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <mama/detail/text.hpp>

#include "mama_runner.hpp"

namespace mama::test {

inline std::string one_machine_lab(const std::string& job = "", const std::string& pid = "") {
  std::string m =
      "<?xml version=\"1.0\"?>\n<settings>\n  <machine>\n    <name>m</name>\n"
      "    <mac>52:54:00:00:00:01</mac>\n    <ip>10.0.0.1</ip>\n";
  if (!job.empty()) m += "    <job>" + job + "</job>\n";
  if (!pid.empty()) m += "    <job_pid>" + pid + "</job_pid>\n";
  return m + "    <start_timeout>240</start_timeout>\n  </machine>\n</settings>\n";
}

/// A mama.xml with one machine `m` in a temporary directory.
struct RunLab {
  TempDir dir;
  std::filesystem::path file = dir / "mama.xml";
  explicit RunLab(const std::string& content = one_machine_lab()) { write_file(file, content); }
  std::string content() const { return read_file(file); }
  std::string path(const std::string& name) const { return (dir / name).string(); }
  RunResult run(std::vector<std::string> args, const std::vector<std::string>& env = {}) const {
    args.insert(args.begin(), {"--state", file.string()});
    return run_mama(args, env);
  }
  /// The value of <field> in the file ("" when absent).
  std::string field(const std::string& name) const { return field_of(content(), name); }
  static std::string field_of(const std::string& text, const std::string& name) {
    const auto open = "<" + name + ">";
    const auto at = text.find(open);
    if (at == std::string::npos) return {};
    const auto end = text.find("</" + name + ">", at);
    return text.substr(at + open.size(), end - at - open.size());
  }
};

/// `mama --state FILE args...` in the background (output to files in the lab's directory).
class RunningMama {
 public:
  RunningMama(const RunLab& lab, std::vector<std::string> args) : err_(lab.dir / "mama.err") {
    args.insert(args.begin(), {"--state", lab.file.string()});
    const auto argv = mama_argv(args);
    const auto env = run_env({});
    const auto out = lab.dir / "mama.out";
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int e = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(o, 1);
      ::dup2(e, 2);
      exec_with_env(argv, env);
    }
  }
  ~RunningMama() {
    if (!status_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  RunningMama(const RunningMama&) = delete;
  RunningMama& operator=(const RunningMama&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) const { ::kill(pid_, sig); }
  /// Its exit status (as a shell reports it) if it ends within `limit`.
  std::optional<int> exited_within(std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
      if (status_) return status_;
      int raw = 0;
      if (::waitpid(pid_, &raw, WNOHANG) == pid_) {
        status_ = exit_status_of(raw);
        return status_;
      }
      if (std::chrono::steady_clock::now() >= end) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  std::string err() const { return read_file(err_); }

 private:
  pid_t pid_ = -1;
  std::filesystem::path err_;
  std::optional<int> status_;
};

/// SIGKILLs the processes it names when the test ends (so that a failed test leaves nothing).
struct KillAtExit {
  std::vector<pid_t> pids;
  ~KillAtExit() {
    for (pid_t p : pids)
      if (p > 0) ::kill(p, SIGKILL);
  }
};

/// The PID written (with a newline) to `file` by a test's command; waits up to 10 s for it.
inline pid_t pid_from(const std::filesystem::path& file) {
  if (!eventually([&] { return read_file(file).find('\n') != std::string::npos; })) return -1;
  return static_cast<pid_t>(std::stol(read_file(file)));
}

/// Whether process `pid` exists (zombies included, as kill(2) sees them).
inline bool process_exists(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

/// Whether a process of group `pgid` exists.
inline bool group_exists(pid_t pgid) { return ::kill(-pgid, 0) == 0 || errno == EPERM; }

/// Field 22 of /proc/PID/stat (start time in clock ticks), "" when unreadable.
inline std::string start_ticks(pid_t pid) {
  std::string text = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close = text.rfind(')');
  if (close == std::string::npos) return {};
  std::string rest = text.substr(close + 2);
  for (int field = 3; field < 22; ++field) rest = rest.substr(rest.find(' ') + 1);
  return rest.substr(0, rest.find(' '));
}

/// Whether `text` is valid UTF-8 (what SimpleXML demands of mama.xml): the library's own rule.
inline bool valid_utf8(const std::string& text) { return mama::detail::valid_utf8(text); }

}  // namespace mama::test
