// The check record `<file>.d/checked` (include/mama/detail/xml/check_record.hpp) by itself,
// without pugixml: its format, what makes it describe a content or not, the incremental block
// sums, and writing it beside planted links and files. How the store uses it is in
// xml_state_store_test.cpp ("[check_record]").
#include "mama/detail/xml/check_record.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "support.hpp"

#ifdef PUGIXML_VERSION
#error "check_record_test.cpp must not include pugixml"
#endif

namespace fs = std::filesystem;
using mama::detail::block_sums;
using mama::detail::check_block;
using mama::detail::check_record;
using mama::detail::check_record_matches;
using mama::detail::decode_check_record;
using mama::detail::encode_check_record;
using mama::detail::machine_extent;
using namespace mama::test;

namespace {

// A content of `machines` machine elements (about 150 bytes each), with their extents and
// names.
struct Lab {
  std::string content = "<?xml version=\"1.0\"?>\n<settings>\n";
  std::vector<machine_extent> extents;
  std::vector<std::string> names;

  explicit Lab(std::size_t machines) {
    for (std::size_t i = 0; i < machines; ++i) {
      const std::string name = "vm-" + std::to_string(i);
      const std::size_t begin = content.size() + 2;
      content += "  <machine>\n    <name>" + name +
                 "</name>\n    <arch>x86_64</arch>\n    <job></job>\n    <jobpid/>\n"
                 "    <notes>nothing to say about this one at all</notes>\n  </machine>";
      extents.push_back({begin, content.size()});
      content += '\n';
      names.push_back(name);
    }
    content += "</settings>\n";
  }
  std::string record() const {
    return encode_check_record(content.size(), true, block_sums(content), extents, names);
  }
};

}  // namespace

TEST_CASE("a record decodes to what was encoded, and describes its content", "[check_record]") {
  const Lab lab(2000);  // about 300 KB: several blocks
  REQUIRE(lab.content.size() > 4 * check_block);
  const auto r = decode_check_record(lab.record());
  REQUIRE(r);
  CHECK(r->size == lab.content.size());
  CHECK(r->utf8);
  CHECK(r->names == lab.names);
  REQUIRE(r->extents.size() == lab.extents.size());
  for (std::size_t i = 0; i < lab.extents.size(); ++i) {
    CHECK(r->extents[i].begin == lab.extents[i].begin);
    CHECK(r->extents[i].end == lab.extents[i].end);
  }
  std::vector<std::uint64_t> sums;
  CHECK(check_record_matches(*r, lab.content, sums));
  CHECK(sums == r->sums);

  SECTION("names that are empty, long or hold any byte") {
    Lab odd(3);
    odd.names = {"", std::string(70000, 'x'), std::string("a\0b\xff", 4)};
    const auto d = decode_check_record(odd.record());
    REQUIRE(d);
    CHECK(d->names == odd.names);
  }
  SECTION("an ISO-8859-1 (ASCII) content keeps its flag") {
    const auto d = decode_check_record(
        encode_check_record(lab.content.size(), false, block_sums(lab.content), {}, {}));
    REQUIRE(d);
    CHECK(!d->utf8);
  }
}

TEST_CASE("a torn, changed or foreign record is not believed", "[check_record]") {
  const Lab lab(300);
  const std::string good = lab.record();
  SECTION("cut anywhere") {
    for (std::size_t n = 0; n < good.size(); n += 7)
      CHECK(!decode_check_record(std::string_view(good).substr(0, n)));
  }
  SECTION("zeros where a crash left a block unwritten") {
    std::string torn = good;
    REQUIRE(torn.size() > 3000);
    std::fill(torn.begin() + 1000, torn.begin() + 3000, '\0');
    CHECK(!decode_check_record(torn));
  }
  SECTION("any one byte changed") {
    for (std::size_t i = 0; i < good.size(); i += 13) {
      std::string bad = good;
      bad[i] = static_cast<char>(bad[i] ^ 0x20);
      CHECK(!decode_check_record(bad));
    }
  }
  SECTION("bytes after it") { CHECK(!decode_check_record(good + "x")); }
  SECTION("another format") {
    std::string other = good;
    other[13] = '2';  // "MAMA-CHECKED 2"
    CHECK(!decode_check_record(other));
    CHECK(!decode_check_record("MAMA-JOURNAL 3 0 0 0 0\n"));
  }
  SECTION("counts the body cannot hold are refused before anything is allocated") {
    const std::string body;
    char header[160];
    std::snprintf(header, sizeof header, "MAMA-CHECKED 1 0 1 0 999999999999 0 %016llx\n",
                  static_cast<unsigned long long>(mama::detail::wide_checksum64(body)));
    CHECK(!decode_check_record(header));
  }
}

TEST_CASE("a record describes only the bytes it was made of", "[check_record]") {
  const Lab lab(2000);
  const auto r = decode_check_record(lab.record());
  REQUIRE(r);
  std::vector<std::uint64_t> sums;
  SECTION("one byte changed in any block, size kept (as a same-length write by PHP)") {
    for (std::size_t at = 100; at < lab.content.size(); at += check_block / 3) {
      std::string changed = lab.content;
      changed[at] = changed[at] == 'a' ? 'b' : 'a';
      CHECK(!check_record_matches(*r, changed, sums));
    }
  }
  SECTION("a byte more or less") {
    CHECK(!check_record_matches(*r, lab.content + "\n", sums));
    CHECK(!check_record_matches(*r, lab.content.substr(0, lab.content.size() - 1), sums));
  }
  SECTION("extents that do not point at machine elements") {
    check_record bad = *r;
    bad.extents[5].begin += 1;
    CHECK(!check_record_matches(bad, lab.content, sums));
    bad = *r;
    bad.extents[5].end -= 1;
    CHECK(!check_record_matches(bad, lab.content, sums));
    bad = *r;
    std::swap(bad.extents[5], bad.extents[6]);  // out of order
    CHECK(!check_record_matches(bad, lab.content, sums));
    bad = *r;
    bad.extents.back().end = lab.content.size() + 10;
    CHECK(!check_record_matches(bad, lab.content, sums));
  }
  SECTION("a tag that only starts like <machine") {
    Lab other(2);
    other.content.replace(other.extents[0].begin, 9, "<machinex>");
    other.content.replace(other.content.find("</machine>"), 10, "</machinex>");
    other.extents[0].end += 2;
    other.extents[1].begin += 2;
    other.extents[1].end += 2;
    const auto d = decode_check_record(other.record());
    REQUIRE(d);
    CHECK(!check_record_matches(*d, other.content, sums));
  }
}

TEST_CASE("block sums after a change equal the sums computed afresh", "[check_record]") {
  const Lab lab(3000);
  const auto before = block_sums(lab.content);
  REQUIRE(before.size() > 5);
  for (std::size_t at : {std::size_t{0}, check_block - 1, check_block, 3 * check_block + 17,
                         lab.content.size() - 20}) {
    std::string changed = lab.content;
    changed.insert(at, "<!-- inserted -->");
    CHECK(block_sums(changed, before, at) == block_sums(changed));
    CHECK(block_sums(changed, before, at) != before);
  }
  // Reusing nothing, or claiming more shared bytes than the known sums cover, is still right.
  CHECK(block_sums(lab.content, {}, lab.content.size()) == before);
  CHECK(block_sums(lab.content, before, lab.content.size() * 2) == before);
}

TEST_CASE("the record is written beside planted links and files without following them",
          "[check_record]") {
  TempDir dir;
  const fs::path runtime = dir / "mama.xml.d";
  fs::create_directory(runtime);
  mama::detail::unique_fd d(::open(runtime.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  REQUIRE(d);
  mama::detail::opened_file f;
  f.runtime = runtime;
  f.st.st_mode = S_IFREG | 0640;
  f.st.st_gid = ::getegid();
  const Lab lab(10);
  const fs::path victim = dir / "victim";
  write_file(victim, "precious\n");

  SECTION("a link as the temporary file") {
    fs::create_symlink(victim, runtime / "checked.tmp");
    REQUIRE(mama::detail::write_check_record(d.get(), f, lab.record()));
    CHECK(read_file(victim) == "precious\n");
  }
  SECTION("a link as the record") {
    fs::create_symlink(victim, runtime / "checked");
    CHECK(!mama::detail::read_check_record(d.get(), 1 << 20, f));  // not read through it
    REQUIRE(mama::detail::write_check_record(d.get(), f, lab.record()));
    CHECK(read_file(victim) == "precious\n");
    CHECK(fs::is_regular_file(fs::symlink_status(runtime / "checked")));
  }
  SECTION("a FIFO or a directory as the record: not read, no hang") {
    REQUIRE(::mkfifo((runtime / "checked").c_str(), 0600) == 0);
    CHECK(!mama::detail::read_check_record(d.get(), 1 << 20, f));
    fs::remove(runtime / "checked");
    fs::create_directory(runtime / "checked");
    CHECK(!mama::detail::read_check_record(d.get(), 1 << 20, f));
    CHECK(!mama::detail::write_check_record(d.get(), f, lab.record()));
    CHECK(!fs::exists(runtime / "checked.tmp"));
  }
  SECTION("written: the file's mode without execute bits, read back whole") {
    REQUIRE(mama::detail::write_check_record(d.get(), f, lab.record()));
    struct stat st {};
    REQUIRE(::stat((runtime / "checked").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0640);
    CHECK(!fs::exists(runtime / "checked.tmp"));
    const auto r = mama::detail::read_check_record(d.get(), 1 << 20, f);
    REQUIRE(r);
    CHECK(r->names == lab.names);
    CHECK(!mama::detail::read_check_record(d.get(), 100, f));  // larger than the limit
  }
  SECTION("rewritten in place (same inode; no rename for ext4 to flush), shorter or longer") {
    const Lab big(50), small(3);
    REQUIRE(mama::detail::write_check_record(d.get(), f, big.record()));
    struct stat before {
    }, after{};
    REQUIRE(::stat((runtime / "checked").c_str(), &before) == 0);
    REQUIRE(mama::detail::write_check_record(d.get(), f, small.record()));
    REQUIRE(::stat((runtime / "checked").c_str(), &after) == 0);
    CHECK(after.st_ino == before.st_ino);
    CHECK(read_file(runtime / "checked") == small.record());
    REQUIRE(mama::detail::write_check_record(d.get(), f, big.record()));
    CHECK(read_file(runtime / "checked") == big.record());
  }
  SECTION("a record others may write is replaced by a new file, not written into") {
    REQUIRE(mama::detail::write_check_record(d.get(), f, lab.record()));
    REQUIRE(::chmod((runtime / "checked").c_str(), 0666) == 0);
    struct stat before {
    }, after{};
    REQUIRE(::stat((runtime / "checked").c_str(), &before) == 0);
    REQUIRE(mama::detail::write_check_record(d.get(), f, lab.record()));
    REQUIRE(::stat((runtime / "checked").c_str(), &after) == 0);
    CHECK(after.st_ino != before.st_ino);
    CHECK((after.st_mode & 0777) == 0640);
  }
}

TEST_CASE("a record's extents must be where a scan between machines meets them", "[check_record]") {
  const std::string head = "<?xml version=\"1.0\"?>\n<!-- lab -->\n<settings>\n  ";
  const std::string m1 = "<machine><name>a</name></machine>";
  const std::string old = "<!-- <machine><name>b</name></machine> -->";
  const std::string m2 = "<machine><name>b</name><job/></machine>";
  const std::string group = "<group><machine><name>c</name></machine></group>";
  const std::string content =
      head + m1 + "\n  " + old + "\n  " + m2 + "\n  " + group + "\n</settings>\n";
  const std::size_t a = content.find(m1), b = content.find(m2);
  const std::size_t in_comment = content.find("<machine>", content.find("<!-- <machine"));
  const std::size_t in_group = content.find("<machine>", content.find("<group>"));
  const auto meets = [&](std::vector<machine_extent> known) {
    return mama::detail::scan::root_machine_children(content, &known).has_value();
  };
  CHECK(meets({{a, a + m1.size()}, {b, b + m2.size()}}));
  // The same machines found by scanning them, for comparison.
  const auto scanned = mama::detail::scan::root_machine_children(content);
  REQUIRE(scanned);
  REQUIRE(scanned->size() == 2);
  CHECK((*scanned)[1].begin == b);
  // An extent inside a comment or inside another element, one left out, one too many, one
  // cut short (its end tag then closes the root's level).
  CHECK(!meets({{a, a + m1.size()}, {in_comment, in_comment + 33}}));
  CHECK(!meets({{a, a + m1.size()}, {b, b + m2.size()}, {in_group, in_group + 33}}));
  CHECK(!meets({{b, b + m2.size()}}));
  CHECK(!meets({{a, a + m1.size()}}));
  CHECK(!meets({{a, a + m1.size()}, {b, b + 23}}));
  CHECK(!meets({{a, a + m1.size()}, {b, content.size() + 5}}));
}
