// mama/detail/xml/journal.hpp — the save journal of the mama.xml store: its format, the
// journaled in-place save, and recovery after a killed save. No pugixml here: the journal
// works on bytes, and tests/journal_test.cpp checks it without an XML parser.
//
// Contract (the shared_with_php mode; the inode of mama.xml is never replaced):
// - Format: `<runtime dir>/journal` holds "MAMA-JOURNAL 2 <size> <checksum64 hex>\n" and then
//   exactly <size> bytes, the whole new content of mama.xml. A journal whose magic, size or
//   checksum does not match is incomplete (or not ours) and is never applied.
// - Save (journaled_save): write the journal to `journal.tmp` (O_EXCL|O_NOFOLLOW, the file's
//   group and mode), fsync it, rename it to `journal`, fsync the directory; then cut mama.xml
//   after the bytes old and new content share (never past the closing </settings>, never to
//   zero) and write the rest; fdatasync; remove the journal. The steps are save_step values, in
//   this order, reported to the test-only crash hook.
// - Recovery (recover_journal), under the state lock before a transaction reads the file:
//   - no `journal`: nothing to do (a lone `journal.tmp` never reached mama.xml; the next save
//     removes it);
//   - an invalid journal: removed, never applied;
//   - a valid journal whose content has the current mama.xml as a proper prefix (an interrupted
//     rewrite): mama.xml is completed from it, then the journal is removed (replayed);
//   - any other valid journal (mama.xml is still the old content, already the new one, or newer
//     content that the PHP tool wrote since): removed without touching mama.xml (discarded).
//   A read-only user removes nothing; one who finds a half-written file gets an error telling
//   them to run mama as a user who may write it.
// - A reader that sees an unfinished rewrite sees a prefix without </settings>, which the PHP
//   tool and this library refuse rather than misread.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "mama/detail/posix.hpp"
#include "mama/detail/xml/state_file.hpp"
#include "mama/error.hpp"

namespace mama::detail {

inline constexpr std::string_view journal_magic = "MAMA-JOURNAL 2 ";
inline constexpr const char* journal_file_name = "journal";
inline constexpr const char* journal_tmp_name = "journal.tmp";

/// The journal's first line for `content`, with its newline.
inline std::string journal_header(std::string_view content) {
  char header[80];
  std::snprintf(header, sizeof header, "%.*s%zu %016llx\n", static_cast<int>(journal_magic.size()),
                journal_magic.data(), content.size(),
                static_cast<unsigned long long>(checksum64(content)));
  return header;
}

/// The content a journal carries, or nullopt when it is not a whole, intact journal (wrong
/// magic, no header line, size or checksum not matching). The view points into `journal`.
inline std::optional<std::string_view> journal_content(const std::string& journal) {
  const auto nl = journal.find('\n');
  if (nl == std::string::npos || !journal.starts_with(journal_magic)) return std::nullopt;
  unsigned long long size = 0, hash = 0;
  if (std::sscanf(journal.c_str() + journal_magic.size(), "%llu %llx", &size, &hash) != 2)
    return std::nullopt;
  const std::string_view content = std::string_view(journal).substr(nl + 1);
  if (content.size() != size || checksum64(content) != hash) return std::nullopt;
  return content;
}

/// The recovery decision for an intact journal: replay only when mama.xml is a proper prefix of
/// the journaled content (the rewrite was interrupted); otherwise the journal is discarded.
inline bool journal_replays(std::string_view journaled, std::string_view current) noexcept {
  return current != journaled && journaled.starts_with(current);
}

/// Rewrites the file open on `fd` from `current` to `content` in place: cut after the bytes the
/// two share, then write the rest. The cut always falls before the closing </settings> (job
/// fields live inside it), so a reader that sees an unfinished rewrite sees a prefix of the new
/// content without </settings>, which PHP and we refuse rather than misread, and which
/// recover_journal() completes. Never cutting to zero also keeps ext4 from forcing a flush of
/// the whole file on close (its auto_da_alloc rule for files truncated to zero), which made
/// every save wait for the disk. False (errno set) on a failed write.
inline bool rewrite_in_place(int fd, std::string_view current, std::string_view content,
                             const save_io& io) {
  std::size_t keep = 0;
  const std::size_t limit = std::min(current.size(), content.size());
  while (keep < limit && current[keep] == content[keep]) ++keep;
  if (keep == content.size() && keep == current.size()) return true;
  const auto close_tag = std::min(current.rfind("</settings>"), content.rfind("</settings>"));
  if (close_tag != std::string_view::npos) keep = std::min(keep, close_tag);
  if (::ftruncate(fd, static_cast<off_t>(keep)) != 0) return false;
  io.step(SaveStep::file_truncated);
  std::string_view rest = content.substr(keep);
  if (io.hooked() && rest.size() > 1) {
    const auto half = rest.size() / 2;
    if (!pwrite_all(fd, rest.substr(0, half), static_cast<off_t>(keep))) return false;
    io.step(SaveStep::file_half_written);
    if (!pwrite_all(fd, rest.substr(half), static_cast<off_t>(keep + half))) return false;
  } else if (!pwrite_all(fd, rest, static_cast<off_t>(keep))) {
    return false;
  }
  return !io.sync || ::fdatasync(fd) == 0;
}

/// Saves `content` over `old_content` in the file open on `fd` (which holds the state lock),
/// through the journal in the runtime directory open on `dir` (see the top of this header).
/// Throws mama::error; on failure the file is as it was, or the journal restores it on the next
/// access.
inline void journaled_save(int dir, int fd, std::string_view old_content, std::string_view content,
                           const opened_file& f, const save_io& io) {
  const std::string header = journal_header(content);
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
        !pwrite_all(j.get(), content, static_cast<off_t>(header.size())) ||
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
  if (!rewrite_in_place(fd, old_content, content, io)) {
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
  const bool readable = pread_all(j.get(), journal, io.max_file_size + 100);
  const auto content = readable ? journal_content(journal) : std::nullopt;
  if (!content) {
    if (!read_only) ::unlinkat(dir, journal_file_name, 0);  // never reached mama.xml
    return JournalOutcome::invalid;
  }
  std::string current;
  read_state_bytes(fd, current, io);
  const bool replay = journal_replays(*content, current);
  if (replay) {
    if (read_only)
      throw error(errc::bad_state_file,
                  io.file() +
                      " was left half-written by a killed process; run any mama command as "
                      "a user who may write it to restore it from " +
                      (f.runtime / journal_file_name).string());
    if (!rewrite_in_place(fd, current, *content, io))
      throw_errno("cannot restore " + io.file() + " from its journal");
  }
  if (!read_only) ::unlinkat(dir, journal_file_name, 0);
  return replay ? JournalOutcome::replayed : JournalOutcome::discarded;
}

}  // namespace mama::detail
