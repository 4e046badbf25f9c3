// mama/detail/xml/journal.hpp — the save journal of the mama.xml store: its format, the
// journaled in-place save, and recovery after a killed save. No pugixml here: the journal
// works on bytes, and tests/journal_test.cpp checks it without an XML parser.
//
// Contract (the shared_with_php mode; the inode of mama.xml is never replaced):
// - A save rewrites mama.xml from its cut: the first byte where old and new content differ
//   (never past the closing </settings>, never zero). Everything before the cut stays; the
//   file is truncated there and the rest of the new content (the tail) is written.
// - Format: `<runtime dir>/journal` holds only what the save rewrites:
//     "MAMA-JOURNAL 3 <cut> <new size> <head sum hex> <tail sum hex>\n" + the tail
//   (<new size> - <cut> bytes). <head sum> is journal_sum of the up to 4 KiB of the content just
//   before the cut; <tail sum> that of the tail. A journal whose magic, sizes or tail checksum
//   do not match is incomplete (or not ours) and is never applied. A claim or release on a
//   large lab journals only the tail after the changed machine, not the whole file.
// - Save (journaled_save): write the journal to `journal.tmp` (O_EXCL|O_NOFOLLOW, the file's
//   group and mode), fsync it, rename it to `journal`, fsync the directory; then cut mama.xml
//   and write the tail; fdatasync; remove the journal. The steps are SaveStep values, in this
//   order, reported to the test-only crash hook.
// - Recovery (recover_journal), under the state lock before a transaction reads the file:
//   - no `journal`: nothing to do (a lone `journal.tmp` never reached mama.xml; the next save
//     removes it);
//   - an invalid journal: removed, never applied;
//   - a journal that cannot be read whole (larger than XmlStoreOptions::max_file_size + 100,
//     e.g. left by a process that allowed larger files; or unreadable): kept, and an error
//     naming it (it may be the only copy of the rest of mama.xml);
//   - a valid journal for which mama.xml is an interrupted rewrite (replayed): mama.xml is at
//     least <cut> bytes and shorter than <new size>, its bytes from the cut on are a prefix of
//     the tail, and the 4 KiB before the cut match <head sum>; the rest of the tail is
//     written, then the journal is removed;
//   - any other valid journal (mama.xml is still the old content, already the new one, or newer
//     content that the PHP tool wrote since): removed without touching mama.xml (discarded).
//   The head is checked by a window, not whole: a save never writes before its cut, and
//   hashing a 7 MiB head would cost a large lab's save a millisecond. What the window cannot
//   tell apart is a file that another writer replaced since by content that matches the 4 KiB
//   before the cut and is, from the cut on, a proper prefix of this save's tail: a complete
//   file by the PHP tool ends with </settings>, which the tail holds only at its end.
//   A journal of format 2 (older mama: the whole content) is recovered by the same rule, as a
//   tail cut at 0. A read-only user removes nothing; one who finds a half-written file gets an error telling
//   them to run mama as a user who may write it.
// - A reader that sees an unfinished rewrite sees a prefix without </settings>, which the PHP
//   tool and this library refuse rather than misread.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "mama/detail/posix.hpp"
#include "mama/detail/xml/state_file.hpp"
#include "mama/error.hpp"

namespace mama::detail {

inline constexpr std::string_view journal_magic = "MAMA-JOURNAL 3 ";
/// The format before 3 ("MAMA-JOURNAL 2 <size> <checksum64 hex>\n" + the whole new content),
/// still recovered: its content is a tail cut at 0, so the same rule applies (replay when
/// mama.xml is a proper prefix of it).
inline constexpr std::string_view journal_magic_v2 = "MAMA-JOURNAL 2 ";
inline constexpr const char* journal_file_name = "journal";
inline constexpr const char* journal_tmp_name = "journal.tmp";
/// How many bytes before the cut the journal's head checksum covers.
inline constexpr std::size_t journal_head_window = 4096;

/// Where a save from `current` to `content` cuts mama.xml: after the bytes the two share, but
/// before the closing </settings> (job fields live inside it), and never at zero unless one of
/// them is empty. Equal contents: their size.
/// `same_before`: how many bytes the caller knows the two share (the comparison starts there).
inline std::size_t rewrite_cut(std::string_view current, std::string_view content,
                               std::size_t same_before = 0) noexcept {
  const std::size_t limit = std::min(current.size(), content.size());
  std::size_t keep = std::min(same_before, limit);
  // Whole blocks first (memcmp), then the bytes of the first block that differs.
  constexpr std::size_t block = 4096;
  while (keep + block <= limit &&
         std::memcmp(current.data() + keep, content.data() + keep, block) == 0)
    keep += block;
  while (keep < limit && current[keep] == content[keep]) ++keep;
  if (keep == content.size() && keep == current.size()) return keep;
  const auto close_tag = std::min(current.rfind("</settings>"), content.rfind("</settings>"));
  if (close_tag != std::string_view::npos) keep = std::min(keep, close_tag);
  return keep;
}

/// The journal's checksum (wide_checksum64).
inline std::uint64_t journal_sum(std::string_view data) noexcept { return wide_checksum64(data); }

/// The checksum of the journal's head window: the up to 4 KiB of `content` before `cut`.
inline std::uint64_t journal_head_sum(std::string_view content, std::size_t cut) noexcept {
  const std::size_t from = cut > journal_head_window ? cut - journal_head_window : 0;
  return journal_sum(content.substr(from, cut - from));
}

/// The journal's first line for a save that writes `content` from `cut` on, with its newline.
inline std::string journal_header(std::string_view content, std::size_t cut) {
  char header[128];
  std::snprintf(header, sizeof header, "%.*s%zu %zu %016llx %016llx\n",
                static_cast<int>(journal_magic.size()), journal_magic.data(), cut, content.size(),
                static_cast<unsigned long long>(journal_head_sum(content, cut)),
                static_cast<unsigned long long>(journal_sum(content.substr(cut))));
  return header;
}

/// What an intact journal carries.
struct journal_entry {
  std::size_t cut = 0;         ///< where the save cut mama.xml
  std::size_t size = 0;        ///< the size of the new content
  std::uint64_t head_sum = 0;  ///< journal_head_sum of the new content at `cut`
  std::string_view tail;       ///< the new content from `cut` on
};

/// The entry a journal carries, or nullopt when it is not a whole, intact journal (wrong magic,
/// no header line, sizes or checksum not matching). The tail points into `journal`.
inline std::optional<journal_entry> journal_content(std::string_view journal) {
  const auto nl = journal.find('\n');
  if (nl == std::string_view::npos) return std::nullopt;
  if (journal.starts_with(journal_magic_v2)) {
    // Left by an older mama killed mid-save: the whole new content, cut at 0.
    const std::string header(journal.substr(journal_magic_v2.size(), nl - journal_magic_v2.size()));
    unsigned long long size = 0, hash = 0;
    int used = 0;
    if (std::sscanf(header.c_str(), "%llu %llx%n", &size, &hash, &used) != 2 ||
        static_cast<std::size_t>(used) != header.size())
      return std::nullopt;
    journal_entry e;
    e.tail = journal.substr(nl + 1);
    if (e.tail.size() != size || checksum64(e.tail) != hash) return std::nullopt;
    e.size = size;
    e.head_sum = journal_head_sum(e.tail, 0);
    return e;
  }
  if (!journal.starts_with(journal_magic)) return std::nullopt;
  const std::string header(journal.substr(journal_magic.size(), nl - journal_magic.size()));
  unsigned long long cut = 0, size = 0, head = 0, hash = 0;
  int used = 0;
  if (std::sscanf(header.c_str(), "%llu %llu %llx %llx%n", &cut, &size, &head, &hash, &used) != 4 ||
      static_cast<std::size_t>(used) != header.size())
    return std::nullopt;
  journal_entry e;
  e.tail = journal.substr(nl + 1);
  if (cut > size || e.tail.size() != size - cut || journal_sum(e.tail) != hash) return std::nullopt;
  e.cut = cut;
  e.size = size;
  e.head_sum = head;
  return e;
}

/// The recovery decision for an intact journal: replay only when mama.xml is an interrupted
/// rewrite of this save (see the top of this header); otherwise the journal is discarded.
inline bool journal_replays(const journal_entry& j, std::string_view current) noexcept {
  return current.size() >= j.cut && current.size() < j.size &&
         journal_head_sum(current, j.cut) == j.head_sum &&
         j.tail.starts_with(current.substr(j.cut));
}

/// Writes `tail` into the file open on `fd` from `cut` on, truncating it there first. The cut
/// always falls before the closing </settings>, so a reader that sees an unfinished rewrite
/// sees a prefix of the new content without </settings>, which PHP and we refuse rather than
/// misread, and which recover_journal() completes. Never cutting to zero also keeps ext4 from
/// forcing a flush of the whole file on close (its auto_da_alloc rule for files truncated to
/// zero), which made every save wait for the disk. False (errno set) on a failed write.
inline bool rewrite_from(int fd, std::size_t cut, std::string_view tail, const save_io& io) {
  if (::ftruncate(fd, static_cast<off_t>(cut)) != 0) return false;
  io.step(SaveStep::file_truncated);
  if (io.hooked() && tail.size() > 1) {
    const auto half = tail.size() / 2;
    if (!pwrite_all(fd, tail.substr(0, half), static_cast<off_t>(cut))) return false;
    io.step(SaveStep::file_half_written);
    if (!pwrite_all(fd, tail.substr(half), static_cast<off_t>(cut + half))) return false;
  } else if (!pwrite_all(fd, tail, static_cast<off_t>(cut))) {
    return false;
  }
  return !io.sync || ::fdatasync(fd) == 0;
}

/// Rewrites the file open on `fd` from `current` to `content` in place, from their cut on.
inline bool rewrite_in_place(int fd, std::string_view current, std::string_view content,
                             const save_io& io) {
  const std::size_t cut = rewrite_cut(current, content);
  if (cut == content.size() && cut == current.size()) return true;
  return rewrite_from(fd, cut, content.substr(cut), io);
}

/// Saves `content` over `old_content` in the file open on `fd` (which holds the state lock),
/// through the journal in the runtime directory open on `dir` (see the top of this header).
/// `same_before`: how many leading bytes the caller knows the two share.
/// Throws mama::error; on failure the file is as it was, or the journal restores it on the next
/// access.
inline void journaled_save(int dir, int fd, std::string_view old_content, std::string_view content,
                           const opened_file& f, const save_io& io, std::size_t same_before = 0) {
  const std::size_t cut = rewrite_cut(old_content, content, same_before);
  const std::string header = journal_header(content, cut);
  const std::string_view tail = content.substr(cut);
  ::unlinkat(dir, journal_tmp_name, 0);  // left by a crash; we hold the state lock
  {
    unique_fd j(::openat(dir, journal_tmp_name,
                         O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                         f.st.st_mode & 0666));
    if (!j)
      throw_errno("cannot create the save journal in " + f.runtime.string() + "; " + io.file() +
                  " was not changed");
    // The journal holds the state: readable by exactly those who may read mama.xml.
    if (::fchown(j.get(), -1, f.st.st_gid) != 0) {
      // Not in the file's group: keep our group, still no wider than the file.
    }
    ::fchmod(j.get(), f.st.st_mode & 0666);
    if (!pwrite_all(j.get(), header, 0) ||
        !pwrite_all(j.get(), tail, static_cast<off_t>(header.size())) ||
        (io.sync && ::fsync(j.get()) != 0)) {
      const int saved = errno;
      ::unlinkat(dir, journal_tmp_name, 0);
      errno = saved;
      throw_errno("cannot write the save journal in " + f.runtime.string() + "; " + io.file() +
                  " was not changed");
    }
  }
  io.step(SaveStep::journal_written);
  if (::renameat(dir, journal_tmp_name, dir, journal_file_name) != 0)
    throw_errno("cannot put the save journal in place in " + f.runtime.string() + "; " + io.file() +
                " was not changed");
  if (io.sync) ::fsync(dir);
  io.step(SaveStep::journal_renamed);
  if (!rewrite_from(fd, cut, tail, io)) {
    const int saved = errno;
    // Put the old content back: the file still starts with the bytes old and new share, so
    // rewriting "from new to old" rewrites just the rest. If even that fails, the journal
    // restores the new content on the next access.
    if (rewrite_in_place(fd, content, old_content, io)) ::unlinkat(dir, journal_file_name, 0);
    errno = saved;
    throw_errno("cannot write " + io.file());
  }
  io.step(SaveStep::file_written);
  ::unlinkat(dir, journal_file_name, 0);
  io.step(SaveStep::journal_removed);
}

/// What recover_journal() did.
enum class JournalOutcome {
  none,       ///< there was no journal
  invalid,    ///< the journal was incomplete or not ours: not applied (removed unless read-only)
  discarded,  ///< an intact journal that mama.xml is not a proper prefix of: mama.xml untouched
  replayed,   ///< mama.xml was an interrupted rewrite and now holds the journaled content
};

/// Finishes or discards a save that a killed process left half done (see the top of this
/// header). `dir`: the runtime directory; `fd`: the state file, holding the state lock.
/// Throws mama::error naming the file.
inline JournalOutcome recover_journal(int dir, int fd, bool read_only, const opened_file& f,
                                      const save_io& io) {
  unique_fd j(::openat(dir, journal_file_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!j) return JournalOutcome::none;
  std::string journal;
  if (!pread_all(j.get(), journal, io.max_file_size + 100)) {
    // Perhaps written by a process that allows larger files: it may be the only copy of the
    // rest of mama.xml, so it is kept, never judged unread.
    const int saved = errno;
    const bool too_large = saved == EFBIG;
    throw error(errc::bad_state_file,
                "cannot read the save journal " + (f.runtime / journal_file_name).string() +
                    (too_large ? " (larger than the largest state file allowed, " +
                                     std::to_string(io.max_file_size) + " bytes)"
                               : std::string(" (") + std::strerror(saved) + ")") +
                    ", which may hold the rest of a half-written " + io.file() +
                    "; run mama as a user who may read it, with a larger limit (or remove it "
                    "if " +
                    io.file() + " ends with </settings>); mama changed nothing");
  }
  const auto entry = journal_content(journal);
  if (!entry) {
    if (!read_only) ::unlinkat(dir, journal_file_name, 0);  // never reached mama.xml
    return JournalOutcome::invalid;
  }
  std::string current;
  read_state_bytes(fd, current, io);
  const bool replay = journal_replays(*entry, current);
  if (replay) {
    if (read_only)
      throw error(errc::bad_state_file,
                  io.file() +
                      " was left half-written by a killed process; run any mama command as "
                      "a user who may write it to restore it from " +
                      (f.runtime / journal_file_name).string());
    // The file holds the new content up to its end: write the rest of the tail after it.
    const std::size_t done = current.size() - entry->cut;
    if (!pwrite_all(fd, entry->tail.substr(done), static_cast<off_t>(current.size())) ||
        (io.sync && ::fdatasync(fd) != 0))
      throw_errno("cannot restore " + io.file() + " from its journal");
  }
  if (!read_only) ::unlinkat(dir, journal_file_name, 0);
  return replay ? JournalOutcome::replayed : JournalOutcome::discarded;
}

}  // namespace mama::detail
