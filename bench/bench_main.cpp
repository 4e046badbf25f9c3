// mama_bench — every benchmark of bench/ in one binary, so they run side by side in one run.
//
//   mama_bench [--mama_dir=DIR] [--mama_tmpfs_dir=DIR] [--mama_handoff_iterations=N] [Google
//   Benchmark flags]
//
// --mama_dir: where the scratch state files go (default $TMPDIR or /tmp); its file system is
// recorded in the JSON context. --mama_tmpfs_dir: a tmpfs directory for the *_tmpfs variants
// (default /dev/shm; skipped when it is not tmpfs). --mama_handoff_iterations: iterations of each
// handoff and crash-recovery benchmark (default 15).
#include <benchmark/benchmark.h>
#include <sys/statfs.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "bench_support.hpp"

namespace mama_bench {

std::filesystem::path& scratch_dir() {
  static std::filesystem::path dir;
  return dir;
}

std::filesystem::path& tmpfs_dir() {
  static std::filesystem::path dir;
  return dir;
}

void register_handoff(int iterations);

}  // namespace mama_bench

namespace {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

std::string fs_type(const std::filesystem::path& p) {
  struct statfs s {};
  if (::statfs(p.c_str(), &s) != 0) return "unknown";
  switch (static_cast<unsigned long>(s.f_type)) {
    case 0xEF53:
      return "ext4 (ext2/3/4)";
    case 0x01021994:
      return "tmpfs";
    case 0x9123683E:
      return "btrfs";
    case 0x58465342:
      return "xfs";
    case 0x794C7630:
      return "overlayfs";
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "0x%lx", static_cast<unsigned long>(s.f_type));
      return buf;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string base = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
  std::string tmpfs_base = "/dev/shm";
  int handoff_iterations = 15;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a.starts_with("--mama_dir=")) {
      base = std::string(a.substr(11));
    } else if (a.starts_with("--mama_tmpfs_dir=")) {
      tmpfs_base = std::string(a.substr(17));
    } else if (a.starts_with("--mama_handoff_iterations=")) {
      handoff_iterations = std::max(1, std::atoi(argv[i] + 26));
    } else {
      rest.push_back(argv[i]);
    }
  }
  std::filesystem::create_directories(base);
  std::string tmpl = (std::filesystem::path(base) / "mama-bench.XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) {
    std::perror(("mama_bench: cannot create a scratch directory under " + base).c_str());
    return 1;
  }
  mama_bench::scratch_dir() = tmpl;
  std::string tmpfs_tmpl = (std::filesystem::path(tmpfs_base) / "mama-bench.XXXXXX").string();
  if (!tmpfs_base.empty() && fs_type(tmpfs_base) == "tmpfs" && ::mkdtemp(tmpfs_tmpl.data()))
    mama_bench::tmpfs_dir() = tmpfs_tmpl;

  benchmark::AddCustomContext("mama_cpu_model", cpu_model());
  benchmark::AddCustomContext("mama_nproc", std::to_string(::sysconf(_SC_NPROCESSORS_ONLN)));
  benchmark::AddCustomContext("mama_scratch_dir", tmpl);
  benchmark::AddCustomContext("mama_scratch_fs", fs_type(tmpl));
  benchmark::AddCustomContext("mama_handoff_iterations", std::to_string(handoff_iterations));

  mama_bench::register_handoff(handoff_iterations);
  int rest_argc = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rest_argc, rest.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
  if (!mama_bench::tmpfs_dir().empty()) std::filesystem::remove_all(mama_bench::tmpfs_dir(), ec);
  return 0;
}
