// mama/process_probe.hpp — the ProcessProbe policy: is a recorded holder still alive?
//
// A probe answers for one recorded holder (PID plus, when recorded, its start time) and tells
// who "we" are: this process, its host and its boot. The Linux model reads /proc; the fake
// keeps a table of live processes and counts its calls.
//
// | Expression             | Returns            | Throws | Meaning                                    |
// |------------------------|--------------------|--------|--------------------------------------------|
// | `p.check(pid, start)`  | `mama::Liveness`   | no     | alive / gone (or zombie) / reused (start differs) / unknown |
// | `p.self()`             | `ProcessIdentity`  | no     | this process: PID and start time           |
// | `p.host_name()`        | `std::string`      | no     | this host's name                           |
// | `p.boot_id()`          | `std::string`      | no     | this boot's id (empty when unknown)        |
// | `p.is_ancestor(pid, start)` | `bool`        | no     | `pid` is this process or one of its ancestors (and started at `start`, when given) |
//
// `start` is a `std::optional<std::uint64_t>`: clock ticks since boot (field 22 of
// /proc/PID/stat); nullopt when the record has none.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "mama/record.hpp"
#include "mama/staleness.hpp"

namespace mama {

/// Who a process is: its PID and its start time (clock ticks since boot).
struct ProcessIdentity {
  int pid = 0;
  std::uint64_t start = 0;
  friend bool operator==(const ProcessIdentity&, const ProcessIdentity&) = default;
};

/// The ProcessProbe policy (see the table at the top of this header).
template <class P>
concept process_probe = requires(P& p, int pid, std::optional<std::uint64_t> start) {
  { p.check(pid, start) } -> std::same_as<Liveness>;
  { p.self() } -> std::same_as<ProcessIdentity>;
  { p.host_name() } -> std::convertible_to<std::string>;
  { p.boot_id() } -> std::convertible_to<std::string>;
  { p.is_ancestor(pid, start) } -> std::same_as<bool>;
};

namespace detail {

/// The fields of /proc/PID/stat this library uses.
struct ProcStat {
  char state = '?';
  int ppid = 0;
  std::uint64_t start = 0;
};

/// Parses the text of /proc/PID/stat. The command name (field 2) is in parentheses and may
/// itself contain ')' and spaces, so fields are counted from the *last* ')'.
inline std::optional<ProcStat> parse_proc_stat(std::string_view text) noexcept {
  const auto close = text.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view rest = text.substr(close + 1);
  ProcStat out;
  // Field numbers as in proc(5): 3 state, 4 ppid, 22 starttime.
  for (int field = 3; field <= 22; ++field) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    const auto end = rest.find(' ');
    const std::string_view token = rest.substr(0, end);
    if (token.empty()) return std::nullopt;
    if (field == 3) {
      out.state = token.front();
    } else if (field == 4) {
      const auto v = parse_decimal<int>(token);
      if (!v) return std::nullopt;
      out.ppid = *v;
    } else if (field == 22) {
      auto digits = token;
      while (!digits.empty() && (digits.back() == '\n')) digits.remove_suffix(1);
      const auto v = parse_decimal<std::uint64_t>(digits);
      if (!v) return std::nullopt;
      out.start = *v;
    }
    if (end == std::string_view::npos)
      rest = {};
    else
      rest.remove_prefix(end);
  }
  return out;
}

/// Reads a small file whole with one open/read (no iostreams: this is on the hot path).
/// Returns false and leaves errno set on failure.
inline bool read_small_file(const char* path, std::string& out) noexcept {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[1024];
  out.clear();
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int saved = errno;
      ::close(fd);
      errno = saved;
      return false;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return true;
}

/// Reads /proc/PID/stat of `pid`; nullopt (errno set) when it cannot be read or parsed.
inline std::optional<ProcStat> read_proc_stat(int pid) noexcept {
  char path[40];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  std::string text;
  if (!read_small_file(path, text)) return std::nullopt;
  auto parsed = parse_proc_stat(text);
  if (!parsed) errno = EINVAL;
  return parsed;
}

}  // namespace detail

/// The Linux probe: /proc/PID/stat for existence, zombies and start time; kill(pid, 0) when
/// /proc does not show the process (hidepid) to tell "gone" (ESRCH) from "another user's" (EPERM).
class ProcProbe {
 public:
  Liveness check(int pid, std::optional<std::uint64_t> start) const noexcept {
    if (pid <= 0) return Liveness::gone;
    if (const auto stat = detail::read_proc_stat(pid)) {
      if (stat->state == 'Z' || stat->state == 'X') return Liveness::gone;
      if (start && *start != stat->start) return Liveness::reused;
      return Liveness::alive;
    }
    const int read_errno = errno;
    if (::kill(pid, 0) == 0 || errno == EPERM) {
      // The process exists but /proc hides it from us: alive, start time not checkable.
      return read_errno == ENOENT || read_errno == EACCES ? Liveness::alive : Liveness::unknown;
    }
    if (errno == ESRCH) return Liveness::gone;
    return Liveness::unknown;
  }

  ProcessIdentity self() const noexcept {
    const int pid = static_cast<int>(::getpid());
    const auto stat = detail::read_proc_stat(pid);
    return {pid, stat ? stat->start : 0};
  }

  std::string host_name() const {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0) return {};
    return buf;
  }

  std::string boot_id() const {
    static const std::string id = [] {
      std::string text;
      if (!detail::read_small_file("/proc/sys/kernel/random/boot_id", text)) return std::string();
      while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
      return text;
    }();
    return id;
  }

  /// PID 1 is never an ancestor for this purpose: init is every process's ancestor and never
  /// holds a job, so a record naming PID 1 must be judged, not nested into.
  bool is_ancestor(int pid, std::optional<std::uint64_t> start) const noexcept {
    if (pid <= 1) return false;
    int current = static_cast<int>(::getpid());
    // Bounded walk: PID 1 (or a reparenting subreaper) ends every chain.
    for (int depth = 0; depth < 4096 && current > 0; ++depth) {
      const auto stat = detail::read_proc_stat(current);
      if (!stat) return false;
      if (current == pid) return !start || *start == stat->start;
      current = stat->ppid;
    }
    return false;
  }
};
static_assert(process_probe<ProcProbe>);

/// A fake probe: a table of live processes that a test edits, this process's identity, its
/// ancestors, and a count of check() calls. Copies share one table.
class FakeProbe {
 public:
  FakeProbe() : state_(std::make_shared<State>()) {
    state_->self = {4242, 1000};
    state_->live[4242] = {1000, false};
  }

  Liveness check(int pid, std::optional<std::uint64_t> start) const {
    ++state_->checks;
    const auto it = state_->live.find(pid);
    if (it == state_->live.end() || it->second.zombie) return Liveness::gone;
    if (start && *start != it->second.start) return Liveness::reused;
    return Liveness::alive;
  }
  ProcessIdentity self() const { return state_->self; }
  std::string host_name() const { return state_->host; }
  std::string boot_id() const { return state_->boot; }
  bool is_ancestor(int pid, std::optional<std::uint64_t> start) const {
    if (pid == state_->self.pid) return !start || *start == state_->self.start;
    const auto it = state_->ancestors.find(pid);
    if (it == state_->ancestors.end()) return false;
    return !start || *start == it->second;
  }

  /// Makes `pid` a live process that started at `start`.
  FakeProbe& spawn(int pid, std::uint64_t start = 1) {
    state_->live[pid] = {start, false};
    return *this;
  }
  /// Removes `pid` from the live processes.
  FakeProbe& kill(int pid) {
    state_->live.erase(pid);
    return *this;
  }
  /// Leaves `pid` a zombie: present but dead.
  FakeProbe& zombify(int pid) {
    state_->live[pid].zombie = true;
    return *this;
  }
  /// Makes `pid` (started at `start`) an ancestor of this process.
  FakeProbe& add_ancestor(int pid, std::uint64_t start = 1) {
    state_->ancestors[pid] = start;
    spawn(pid, start);
    return *this;
  }
  /// Sets who this process is.
  FakeProbe& set_self(ProcessIdentity id) {
    state_->self = id;
    spawn(id.pid, id.start);
    return *this;
  }
  FakeProbe& set_host(std::string host) {
    state_->host = std::move(host);
    return *this;
  }
  FakeProbe& set_boot_id(std::string boot) {
    state_->boot = std::move(boot);
    return *this;
  }
  /// How many times check() ran.
  std::size_t checks() const noexcept { return state_->checks; }

 private:
  struct Proc {
    std::uint64_t start = 1;
    bool zombie = false;
  };
  struct State {
    std::map<int, Proc> live;
    std::map<int, std::uint64_t> ancestors;
    ProcessIdentity self;
    std::string host = "testhost";
    std::string boot = "boot-1";
    std::size_t checks = 0;
  };
  std::shared_ptr<State> state_;
};
static_assert(process_probe<FakeProbe>);

}  // namespace mama
