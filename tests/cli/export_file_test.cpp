// tests/cli/export_file_test.cpp — how `mama export` puts its file in place
// (mama::detail::write_new_file): a temporary file under a fresh random name created with
// O_EXCL|O_NOFOLLOW (a link planted at a predictable name is never written through), and no
// check-then-rename race (an existing file is refused at the rename itself, not only before).
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <mama/pg_import_export.hpp>

#include "support.hpp"

namespace fs = std::filesystem;
using mama::test::read_file;
using mama::test::TempDir;
using mama::test::write_file;

namespace {
std::size_t entries(const fs::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}
}  // namespace

TEST_CASE("export writes a new file and leaves no temporary file", "[export]") {
  TempDir dir;
  const auto out = dir / "out.xml";
  mama::detail::write_new_file(out, "<settings/>\n", false);
  CHECK(read_file(out) == "<settings/>\n");
  CHECK(entries(dir.path()) == 1);
  struct stat st {};
  REQUIRE(::stat(out.c_str(), &st) == 0);
  const mode_t mask = ::umask(0);
  ::umask(mask);
  CHECK((st.st_mode & 0777) == (0644 & ~mask));
}

TEST_CASE("export never writes through a link planted beside the target", "[export]") {
  TempDir dir;
  const auto out = dir / "out.xml", victim = dir / "victim";
  write_file(victim, "precious\n");
  // The name the previous export used for its temporary file, known in advance.
  fs::create_symlink(victim, dir / "out.xml.mama-export.tmp");
  mama::detail::write_new_file(out, "<settings/>\n", false);
  CHECK(read_file(victim) == "precious\n");
  CHECK(read_file(out) == "<settings/>\n");
  CHECK(fs::is_symlink(dir / "out.xml.mama-export.tmp"));
  CHECK(entries(dir.path()) == 3);
}

TEST_CASE("export refuses, at the rename itself, a target that exists", "[export]") {
  TempDir dir;
  const auto out = dir / "out.xml";
  write_file(out, "someone else's\n");
  try {
    mama::detail::write_new_file(out, "<settings/>\n", false);
    FAIL("an existing file was replaced without overwrite");
  } catch (const mama::error& e) {
    CHECK(e.code() == mama::errc::invalid_argument);
    CHECK(std::string(e.what()).find("exists; export to a new file") != std::string::npos);
  }
  CHECK(read_file(out) == "someone else's\n");
  CHECK(entries(dir.path()) == 1);  // the temporary file is gone too

  mama::detail::write_new_file(out, "<settings/>\n", true);
  CHECK(read_file(out) == "<settings/>\n");
  CHECK(entries(dir.path()) == 1);
}

TEST_CASE("export into a directory that does not exist fails and names the file", "[export]") {
  TempDir dir;
  const auto out = dir / "missing" / "out.xml";
  CHECK_THROWS_AS(mama::detail::write_new_file(out, "x", false), mama::error);
  CHECK_FALSE(fs::exists(out));
}
