// bench/bench_support.hpp — what the benchmarks share: a lab generator, a scratch directory,
// process helpers and the `mama list` sweep loop.
//
// A generated lab has N machines in the shape of SPEC §2 (22 fields each). Machine i is:
//   i % 3 == 0  a dead holder: job set, job_pid a PID with no process (kill says ESRCH)
//   i % 3 == 1  a running holder: job set, job_pid this benchmark process
//   i % 3 == 2  idle
// Records are either as this library writes them (job_host, job_boot_id, job_start, job_token)
// or as the PHP tool writes them (job and job_pid only, plus job_timestamp).
#pragma once

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <mama/guard.hpp>
#include <optional>
#include <string>
#include <vector>

extern char** environ;

namespace mama_bench {

/// Which third of the lab a machine falls in.
enum class role { dead, running, idle };
inline role role_of(std::size_t i) {
  return i % 3 == 0 ? role::dead : i % 3 == 1 ? role::running : role::idle;
}

/// Record style: written by this library, or by the PHP tool (no token, no start time).
enum class style { mama, php };

/// The scratch directory for state files (set by main from --mama_dir).
std::filesystem::path& scratch_dir();
/// A scratch directory on tmpfs (memory), to tell the disk's share from the software's; empty
/// when there is none (set by main from --mama_tmpfs_dir, default /dev/shm).
std::filesystem::path& tmpfs_dir();

inline std::string machine_name(std::size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "lab-%05zu", i);
  return buf;
}

/// PIDs with no process right now, from the top of the PID range down.
inline const std::vector<int>& dead_pids(std::size_t count) {
  static std::vector<int> pids;
  static int next = [] {
    std::string text;
    int max = 32768;
    if (mama::detail::read_small_file("/proc/sys/kernel/pid_max", text))
      max = std::atoi(text.c_str());
    return max - 1;
  }();
  while (pids.size() < count && next > 300) {
    if (::kill(next, 0) != 0 && errno == ESRCH) pids.push_back(next);
    --next;
  }
  return pids;
}

/// This process as a recorded holder.
inline const mama::ProcessIdentity& self_identity() {
  static const mama::ProcessIdentity id = mama::ProcProbe{}.self();
  return id;
}

/// The job fields machine `i` carries.
inline mama::JobRecord job_of(std::size_t i, style s) {
  static const std::string host = mama::ProcProbe{}.host_name();
  static const std::string boot = mama::ProcProbe{}.boot_id();
  mama::JobRecord r;
  const role ro = role_of(i);
  if (ro == role::idle) return r;
  r.job = "run test-job-" + std::to_string(i) + " x86_64/fedora";
  r.timestamp = "1763047845";
  if (ro == role::dead) {
    r.pid = std::to_string(dead_pids(i / 3 + 1)[i / 3]);
  } else {
    r.pid = std::to_string(self_identity().pid);
  }
  if (s == style::mama) {
    r.host = host;
    r.boot_id = boot;
    r.start = ro == role::dead ? "4242" : std::to_string(self_identity().start);
    char token[40];
    std::snprintf(token, sizeof token, "%08zx%024x", i, 0x5eed);
    r.token = token;
  }
  return r;
}

/// The non-job fields of machine `i`, in the PHP tool's order.
inline std::vector<std::pair<std::string, std::string>> fields_of(std::size_t i) {
  char mac[24], ip[24];
  std::snprintf(mac, sizeof mac, "aa:bb:cc:%02zx:%02zx:%02zx", (i >> 16) & 255, (i >> 8) & 255,
                i & 255);
  std::snprintf(ip, sizeof ip, "10.%zu.%zu.%zu", (i >> 16) & 255, (i >> 8) & 255, i & 255);
  return {{"mac", mac},        {"ip", ip},
          {"is_started", "1"}, {"only_vm", "0"},
          {"arch", "x86_64"},  {"os", "fedora"},
          {"kernel", ""},      {"pwr_dev", "mpower1"},
          {"pwr_slot", "3"},   {"rly_dev", ""},
          {"rly_slot", "0"},   {"reservation", ""},
          {"resources", ""},   {"boot_params", ""},
          {"vm_params", ""},   {"startcmd", ""},
          {"stopcmd", ""},     {"start_timeout", "240"}};
}

/// Writes a lab of `n` machines to `path` (the whole file, as the PHP tool formats it).
inline void write_lab(const std::filesystem::path& path, std::size_t n, style s) {
  std::string out = "<?xml version=\"1.0\"?>\n<settings>\n";
  auto field = [&out](const std::string& k, const std::string& v) {
    out += "    <" + k + (v.empty() ? "/>\n" : ">" + v + "</" + k + ">\n");
  };
  for (std::size_t i = 0; i < n; ++i) {
    const auto fields = fields_of(i);
    const auto job = job_of(i, s);
    out += "  <machine>\n";
    field("name", machine_name(i));
    for (std::size_t f = 0; f < fields.size(); ++f) {
      if (fields[f].first == "startcmd") {  // job fields sit before startcmd, as in SPEC §2
        for (std::size_t j = 0; j < mama::job_field_names.size(); ++j) {
          const std::string& v = job.*mama::job_field_members[j];
          if (s == style::php && j >= 3) continue;  // PHP drops the fields it does not know
          field(std::string(mama::job_field_names[j]), v);
        }
      }
      field(fields[f].first, fields[f].second);
    }
    out += "  </machine>\n";
  }
  out += "</settings>\n";
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << out;
}

/// A lab file in the scratch directory, written once per (name, n, style) and reused.
inline std::filesystem::path lab_file(const std::string& name, std::size_t n, style s,
                                      bool on_tmpfs = false) {
  const auto path =
      (on_tmpfs ? tmpfs_dir() : scratch_dir()) / (name + "-" + std::to_string(n)) / "mama.xml";
  if (!std::filesystem::exists(path)) {
    write_lab(path, n, s);
    // A lab where mama ran before has its runtime directory, where the check record lives (a
    // read never creates it).
    std::filesystem::create_directories(std::filesystem::canonical(path).string() + ".d");
  }
  return path;
}

/// A memory store with the same job records (names and job fields only, so its transactions
/// cost little beyond the records themselves).
inline mama::MemoryStateStore memory_lab(std::size_t n, style s) {
  mama::MemoryStateStore store(/*exact_liveness=*/s == style::mama);
  for (std::size_t i = 0; i < n; ++i) store.add_machine(machine_name(i), job_of(i, s));
  return store;
}

/// Store options with `sync` on or off (everything else the default).
inline mama::XmlStoreOptions xml_options(bool sync) {
  mama::XmlStoreOptions o;
  o.sync = sync;
  return o;
}

/// CLOCK_MONOTONIC in nanoseconds.
inline std::int64_t mono_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

/// Runs argv (searched in PATH) with stdout/stderr to /dev/null and waits; returns the exit
/// status, or -1 when it could not run.
inline int spawn_and_wait(const std::vector<const char*>& argv) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  std::vector<char*> args;
  for (const char* a : argv) args.push_back(const_cast<char*>(a));
  args.push_back(nullptr);
  const int rc = ::posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// The original method's liveness check: `ps -p PID`, exit status 0 when the process exists.
inline bool ps_says_alive(int pid) {
  const std::string p = std::to_string(pid);
  return spawn_and_wait({"ps", "-p", p.c_str()}) == 0;
}

/// Verdict counts of one sweep, indexed by mama::Verdict.
using Counts = std::array<std::size_t, 5>;

/// What `mama list` does for every machine: assess it with the probe, asking the store's hold
/// for records that carry a token. One transaction, never committed.
template <class Store, class Probe>
Counts sweep(Store& store, const Probe& probe, mama::Observation& here) {
  Counts counts{};
  auto tx = store.begin();
  const auto machines = tx.machines();
  for (const auto& m : machines) {
    here.hold = mama::HoldState::none;
    std::optional<typename Store::hold> hold;
    if (!m.job.idle() && !m.job.token.empty() && store.exact_liveness()) {
      hold = tx.try_hold(m.name);
      here.hold = hold ? mama::HoldState::free : mama::HoldState::held;
    }
    const auto a = mama::assess(m.job, here,
                                [&probe](int pid, auto start) { return probe.check(pid, start); });
    ++counts[static_cast<std::size_t>(a.verdict)];
  }
  return counts;
}

/// The counts a lab of n machines must give: dead ones stale, running ones running, the rest idle.
inline Counts expected_counts(std::size_t n) {
  Counts c{};
  for (std::size_t i = 0; i < n; ++i)
    ++c[static_cast<std::size_t>(role_of(i) == role::dead      ? mama::Verdict::stale
                                 : role_of(i) == role::running ? mama::Verdict::running
                                                               : mama::Verdict::idle)];
  return c;
}

/// An event handler that ignores everything (benchmarks must not measure stderr).
inline void ignore_event(const mama::Event&) {}

}  // namespace mama_bench
