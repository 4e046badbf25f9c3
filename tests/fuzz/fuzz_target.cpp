// libFuzzer target over XmlStateStore: load a state file, write a claim, read it back (see
// round_trip.hpp for the property). Built by tests/fuzz/run.sh with clang-14 and
// -fsanitize=fuzzer,address,undefined.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "round_trip.hpp"

namespace {
std::filesystem::path work_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/mama-fuzz-XXXXXX";
  if (!::mkdtemp(templ.data())) std::abort();
  static std::string made = templ;
  std::atexit([] {
    std::error_code ec;
    std::filesystem::remove_all(made, ec);
  });
  return templ;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  static const std::filesystem::path dir = work_dir();
  const std::string failure =
      mama::fuzz::round_trip(std::string_view(reinterpret_cast<const char*>(data), size), dir);
  if (!failure.empty()) {
    std::fprintf(stderr, "mama round-trip property broken: %s\n", failure.c_str());
    std::abort();
  }
  return 0;
}
