// Replays the fuzzing corpus (tests/fuzz/corpus, and reproducers kept in tests/fuzz/regressions)
// through the fuzz target's property with the normal compiler, so CI checks it without clang.
#include <catch2/catch.hpp>
#include <filesystem>

#include "round_trip.hpp"
#include "support.hpp"

TEST_CASE("every corpus file survives the load-claim-reload round trip", "[fuzz][xml]") {
  mama::test::TempDir dir;
  int files = 0;
  for (const char* sub : {"corpus", "regressions"}) {
    const std::filesystem::path folder = std::filesystem::path(MAMA_FUZZ_DIR) / sub;
    if (!std::filesystem::exists(folder)) continue;
    for (const auto& entry : std::filesystem::directory_iterator(folder)) {
      if (!entry.is_regular_file()) continue;
      INFO(entry.path());
      const std::string input = mama::test::read_file(entry.path());
      CHECK(mama::fuzz::round_trip(input, dir.path()) == "");
      ++files;
    }
  }
  CHECK(files >= 5);
}
