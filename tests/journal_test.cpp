// The mama.xml store's save journal (include/mama/detail/xml/journal.hpp) by itself, without
// pugixml: its format, the replay-or-discard decision, and recovery after a save killed at each
// of its steps (real processes, really killed with SIGKILL, real files).
#include "mama/detail/xml/journal.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>
#include <string>

#include "support.hpp"

// This translation unit must not see an XML parser: the journal works on bytes alone.
#ifdef PUGIXML_VERSION
#error "journal_test.cpp must not include pugixml"
#endif

namespace fs = std::filesystem;
using mama::SaveStep;
using mama::detail::journal_content;
using mama::detail::journal_entry;
using mama::detail::journal_header;
using mama::detail::journal_replays;
using mama::detail::JournalOutcome;
using namespace mama::test;

namespace {

const std::string old_state =
    "<?xml version=\"1.0\"?>\n<settings>\n  <machine>\n    <name>m1</name>\n"
    "    <jobuser></jobuser>\n    <jobpid/>\n  </machine>\n</settings>\n";
const std::string new_state =
    "<?xml version=\"1.0\"?>\n<settings>\n  <machine>\n    <name>m1</name>\n"
    "    <jobuser>alice</jobuser>\n    <jobpid>4242</jobpid>\n    <jobdescription>a long "
    "enough description that the rewrite has two halves</jobdescription>\n  </machine>\n"
    "</settings>\n";

/// A state file and its runtime directory, both real, in a temporary directory.
struct Lab {
  TempDir tmp;
  fs::path file = tmp / "mama.xml";
  fs::path runtime = tmp / "mama.xml.d";
  fs::path journal = runtime / "journal";
  fs::path journal_tmp = runtime / "journal.tmp";
  std::string name = file.string();  // save_io keeps a view of it

  explicit Lab(const std::string& content) {
    write_file(file, content);
    fs::create_directory(runtime);
  }
  mama::detail::opened_file opened() const {
    mama::detail::opened_file f;
    REQUIRE(::stat(file.c_str(), &f.st) == 0);
    f.canonical = file;
    f.runtime = runtime;
    return f;
  }
  mama::detail::unique_fd open_file(int flags = O_RDWR) const {
    mama::detail::unique_fd fd(::open(file.c_str(), flags | O_CLOEXEC));
    REQUIRE(fd);
    return fd;
  }
  mama::detail::unique_fd open_dir() const {
    mama::detail::unique_fd fd(::open(runtime.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    REQUIRE(fd);
    return fd;
  }
  JournalOutcome recover(bool read_only = false, std::size_t max_file_size = 1u << 20) const {
    const auto dir = open_dir();
    const auto fd = open_file(read_only ? O_RDONLY : O_RDWR);
    const mama::detail::save_io io{name, false, max_file_size, nullptr};
    return mama::detail::recover_journal(dir.get(), fd.get(), read_only, opened(), io);
  }
};

/// Runs a journaled save from `old_state` to `new_state` in a child process that kills itself
/// with SIGKILL at `at`; returns when the child is dead.
void save_killed_at(const Lab& lab, SaveStep at) {
  Child child([&] {
    const std::function<void(SaveStep)> hook = [at](SaveStep s) {
      if (s == at) ::kill(::getpid(), SIGKILL);
    };
    const mama::detail::save_io io{lab.name, false, 1u << 20, &hook};
    const auto dir = lab.open_dir();
    const auto fd = lab.open_file();
    mama::detail::journaled_save(dir.get(), fd.get(), old_state, new_state, lab.opened(), io);
    return 0;  // not reached: every step is reported
  });
  const int status = child.wait();
  REQUIRE(WIFSIGNALED(status));
  REQUIRE(WTERMSIG(status) == SIGKILL);
}

std::size_t cut_of(const std::string& from, const std::string& to) {
  return mama::detail::rewrite_cut(from, to);
}
/// The journal of a save from `from` to `to`, as journaled_save writes it.
std::string journal_bytes(const std::string& to, const std::string& from = old_state) {
  const std::size_t cut = cut_of(from, to);
  return journal_header(to, cut) + to.substr(cut);
}

}  // namespace

TEST_CASE("a save cuts at the first changed byte, never past </settings> and never at zero") {
  const std::size_t cut = cut_of(old_state, new_state);
  CHECK(cut == old_state.find("<jobuser>") + 9);  // the first byte that differs
  CHECK(old_state.substr(0, cut) == new_state.substr(0, cut));
  CHECK(old_state[cut] != new_state[cut]);
  CHECK(cut_of(old_state, old_state) == old_state.size());
  // What the caller knows the two share only skips comparing; the cut is the same.
  for (std::size_t known : {std::size_t{0}, std::size_t{10}, cut})
    CHECK(mama::detail::rewrite_cut(old_state, new_state, known) == cut);
  // A change after </settings> still cuts before it, so a torn file has no </settings>.
  const std::string trailing = old_state + "<!-- after -->\n";
  CHECK(cut_of(old_state, trailing) == old_state.rfind("</settings>"));
  // Long common heads (the block-wise comparison) and a difference in the last block.
  const std::string head(10000, ' ');
  CHECK(cut_of(head + old_state, head + new_state) == head.size() + cut);
  std::string other = head + old_state;
  other[8195] = 'x';
  CHECK(cut_of(head + old_state, other) == 8195);
}

TEST_CASE("the journal's checksum sees every byte, in every lane and in the rest") {
  std::string data(1000, 'a');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 26);
  const auto sum = mama::detail::journal_sum(data);
  for (std::size_t i = 0; i < data.size(); ++i) {
    std::string flipped = data;
    flipped[i] ^= 0x01;
    REQUIRE(mama::detail::journal_sum(flipped) != sum);
  }
  CHECK(mama::detail::journal_sum(data.substr(0, 999)) != sum);
  CHECK(mama::detail::journal_sum(data + '\0') != sum);
  CHECK(mama::detail::journal_sum("") != mama::detail::journal_sum(std::string(1, '\0')));
}

TEST_CASE("a journal carries the tail after the cut, and a damaged one carries nothing") {
  const std::size_t cut = cut_of(old_state, new_state);
  const std::string whole = journal_bytes(new_state);
  const auto entry = journal_content(whole);
  REQUIRE(entry);
  CHECK(entry->cut == cut);
  CHECK(entry->size == new_state.size());
  CHECK(entry->tail == new_state.substr(cut));
  CHECK(entry->head_sum == mama::detail::journal_sum(new_state.substr(0, cut)));
  CHECK(whole.size() < journal_header(new_state, cut).size() + new_state.size());  // not whole
  CHECK(journal_header(new_state, cut).starts_with(mama::detail::journal_magic));

  // Cut anywhere: a journal killed while being written.
  const std::size_t header = journal_header(new_state, cut).size();
  for (std::size_t at :
       {std::size_t{0}, std::size_t{5}, header - 1, header, whole.size() / 2, whole.size() - 1}) {
    INFO("cut at " << at);
    CHECK_FALSE(journal_content(whole.substr(0, at)));
  }
  std::string flipped = whole;
  flipped[flipped.size() - 20] ^= 0x01;  // one bit of the tail
  CHECK_FALSE(journal_content(flipped));
  std::string magic = whole;
  magic[0] = 'X';
  CHECK_FALSE(journal_content(magic));
  CHECK_FALSE(journal_content("MAMA-JOURNAL 2 " + whole.substr(15)));  // 3's fields under 2
  CHECK_FALSE(journal_content(whole + "x"));                           // more than it says
  CHECK_FALSE(journal_content(journal_header(new_state, cut + 1) + new_state.substr(cut)));
  CHECK_FALSE(journal_content(journal_header(old_state, cut) + new_state.substr(cut)));
}

TEST_CASE("recovery replays only an interrupted rewrite of the journaled save") {
  const std::string whole = journal_bytes(new_state);
  const journal_entry j = *journal_content(whole);
  const std::size_t cut = j.cut;
  CHECK(mama::detail::journal_replays(j, new_state.substr(0, cut)));  // just truncated
  CHECK(mama::detail::journal_replays(j, new_state.substr(0, cut + 10)));
  CHECK(mama::detail::journal_replays(j, new_state.substr(0, new_state.size() - 1)));
  CHECK_FALSE(mama::detail::journal_replays(j, new_state));  // already saved
  CHECK_FALSE(mama::detail::journal_replays(j, old_state));  // the rewrite never started
  CHECK_FALSE(mama::detail::journal_replays(j, new_state + "<!-- newer -->"));
  CHECK_FALSE(mama::detail::journal_replays(j, ""));                            // not ours
  CHECK_FALSE(mama::detail::journal_replays(j, new_state.substr(0, cut - 1)));  // before the cut
  // The right length and tail, but another head: a file someone else wrote.
  std::string other_head = new_state.substr(0, cut + 5);
  other_head[cut - 3] ^= 0x01;
  CHECK_FALSE(mama::detail::journal_replays(j, other_head));
  // From the cut on not a prefix of the tail.
  std::string other_tail = new_state.substr(0, cut + 5);
  other_tail[cut + 2] ^= 0x01;
  CHECK_FALSE(mama::detail::journal_replays(j, other_tail));
}

TEST_CASE("a save killed at each step is finished or discarded by recovery") {
  struct expectation {
    SaveStep at;
    JournalOutcome outcome;
  };
  // What the header promises for each crash point.
  const expectation cases[] = {
      {SaveStep::journal_written, JournalOutcome::none},       // only journal.tmp: never applied
      {SaveStep::journal_renamed, JournalOutcome::discarded},  // mama.xml still old
      {SaveStep::file_truncated, JournalOutcome::replayed},
      {SaveStep::file_half_written, JournalOutcome::replayed},
      {SaveStep::file_written, JournalOutcome::discarded},  // mama.xml already new
      {SaveStep::journal_removed, JournalOutcome::none},
  };
  for (const auto& c : cases) {
    INFO("killed at " << mama::to_string(c.at));
    Lab lab(old_state);
    save_killed_at(lab, c.at);

    // What a reader sees right after the crash.
    const std::string torn = read_file(lab.file);
    const bool rewrite_started =
        c.at == SaveStep::file_truncated || c.at == SaveStep::file_half_written;
    if (rewrite_started) {
      CHECK(new_state.starts_with(torn));
      CHECK(torn.size() < new_state.size());
      CHECK(torn.find("</settings>") == std::string::npos);  // refused, never misread
      CHECK(torn.size() > 0);                                // never cut to zero
    } else if (c.at == SaveStep::journal_written || c.at == SaveStep::journal_renamed) {
      CHECK(torn == old_state);
    } else {
      CHECK(torn == new_state);
    }
    CHECK(fs::exists(lab.journal_tmp) == (c.at == SaveStep::journal_written));
    CHECK(fs::exists(lab.journal) ==
          (c.at != SaveStep::journal_written && c.at != SaveStep::journal_removed));

    CHECK(lab.recover() == c.outcome);
    const bool saved =
        rewrite_started || c.at == SaveStep::file_written || c.at == SaveStep::journal_removed;
    CHECK(read_file(lab.file) == (saved ? new_state : old_state));
    CHECK_FALSE(fs::exists(lab.journal));
    CHECK(lab.recover() == JournalOutcome::none);  // recovery is done once

    // The next save goes through (and clears a leftover journal.tmp).
    const auto dir = lab.open_dir();
    const auto fd = lab.open_file();
    const std::string current = read_file(lab.file);
    const mama::detail::save_io io{lab.name, true, 1u << 20, nullptr};
    mama::detail::journaled_save(dir.get(), fd.get(), current, old_state, lab.opened(), io);
    CHECK(read_file(lab.file) == old_state);
    CHECK_FALSE(fs::exists(lab.journal));
    CHECK_FALSE(fs::exists(lab.journal_tmp));
  }
}

TEST_CASE("a damaged journal is never applied, even over a torn file") {
  const std::string torn = new_state.substr(0, new_state.find("<jobuser>") + 4);
  const std::string whole = journal_bytes(new_state);
  std::string bad_sum = whole;
  bad_sum[bad_sum.size() - 3] ^= 0x20;
  std::string bad_magic = whole;
  bad_magic.replace(0, 4, "JUNK");
  const std::string cases[] = {bad_sum,
                               bad_magic,
                               whole.substr(0, whole.size() - 10),
                               "",
                               new_state,  // content without a header
                               "MAMA-JOURNAL 2 " + std::to_string(new_state.size()) + " 0\n" +
                                   new_state};  // the older, whole-content format
  for (const std::string& journal : cases) {
    INFO("journal: " << journal.substr(0, 40));
    Lab lab(torn);
    write_file(lab.journal, journal);
    CHECK(lab.recover(/*read_only=*/true) == JournalOutcome::invalid);
    CHECK(fs::exists(lab.journal));  // a read-only user removes nothing
    CHECK(lab.recover() == JournalOutcome::invalid);
    CHECK(read_file(lab.file) == torn);
    CHECK_FALSE(fs::exists(lab.journal));
  }
}

TEST_CASE("a journal of format 2 (the whole content, an older mama) is still recovered") {
  char header[80];
  std::snprintf(header, sizeof header, "MAMA-JOURNAL 2 %zu %016llx\n", new_state.size(),
                static_cast<unsigned long long>(mama::detail::checksum64(new_state)));
  const std::string v2 = header + new_state;
  const auto entry = journal_content(v2);
  REQUIRE(entry);
  CHECK(entry->cut == 0);
  CHECK(entry->tail == new_state);
  {
    Lab lab(new_state.substr(0, new_state.size() / 2));  // its rewrite was interrupted
    write_file(lab.journal, v2);
    CHECK(lab.recover() == JournalOutcome::replayed);
    CHECK(read_file(lab.file) == new_state);
  }
  {
    Lab lab(old_state);  // never started
    write_file(lab.journal, v2);
    CHECK(lab.recover() == JournalOutcome::discarded);
    CHECK(read_file(lab.file) == old_state);
  }
  std::string damaged = v2;
  damaged[damaged.size() - 5] ^= 0x01;
  CHECK_FALSE(journal_content(damaged));
}

TEST_CASE("a journal older than what the PHP tool wrote since is discarded") {
  const std::string php_wrote = old_state.substr(0, old_state.size() - 12) + "<x/>\n</settings>\n";
  Lab lab(php_wrote);
  write_file(lab.journal, journal_bytes(new_state));
  CHECK(lab.recover() == JournalOutcome::discarded);
  CHECK(read_file(lab.file) == php_wrote);
  CHECK_FALSE(fs::exists(lab.journal));
}

TEST_CASE("a read-only user who finds a half-written file is told, and nothing changes") {
  const std::string torn = new_state.substr(0, new_state.size() / 2);
  Lab lab(torn);
  write_file(lab.journal, journal_bytes(new_state));
  try {
    lab.recover(/*read_only=*/true);
    FAIL("recovery as a read-only user did not refuse the half-written file");
  } catch (const mama::error& e) {
    CHECK(e.code() == mama::errc::bad_state_file);
    CHECK_THAT(e.what(), Catch::Contains("half-written") && Catch::Contains(lab.file.string()));
  }
  CHECK(read_file(lab.file) == torn);
  CHECK(fs::exists(lab.journal));
  CHECK(lab.recover() == JournalOutcome::replayed);
  CHECK(read_file(lab.file) == new_state);
}

TEST_CASE("a journal too large for the recovering process is kept, and the error names it") {
  // A save by a process that allows larger files, killed half way; the next process allows
  // less than the journal holds. The journal is the only copy of the rest of the file: removing
  // it as "invalid" would leave the torn file for good.
  const std::string torn = new_state.substr(0, cut_of(old_state, new_state) + 2);
  Lab lab(torn);
  const std::string journal = journal_bytes(new_state);
  write_file(lab.journal, journal);
  const std::size_t small = torn.size() + 1;  // the torn file fits, the journal does not
  REQUIRE(journal.size() > small + 100);
  for (const bool read_only : {false, true}) {
    INFO("read_only " << read_only);
    try {
      lab.recover(read_only, small);
      FAIL("recovery went on without reading the journal");
    } catch (const mama::error& e) {
      CHECK(e.code() == mama::errc::bad_state_file);
      CHECK_THAT(e.what(), Catch::Contains(lab.journal.string()));
    }
    CHECK(read_file(lab.file) == torn);
    CHECK(read_file(lab.journal) == journal);
  }
  CHECK(lab.recover() == JournalOutcome::replayed);
  CHECK(read_file(lab.file) == new_state);
  CHECK_FALSE(fs::exists(lab.journal));
}
