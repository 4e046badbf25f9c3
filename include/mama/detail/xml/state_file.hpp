// mama/detail/xml/state_file.hpp — what a transaction knows about the opened mama.xml, reading
// its bytes, and the standalone mode's save by rename. No pugixml here.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "mama/detail/posix.hpp"
#include "mama/error.hpp"

namespace mama {

/// The steps of a save, in order, for the test-only crash hook.
enum class SaveStep {
  journal_written,    ///< the journal's temporary file is written (not yet renamed)
  journal_renamed,    ///< the journal is in place
  file_truncated,     ///< mama.xml is cut after the bytes old and new content share
  file_half_written,  ///< half of the rest of the new content is in mama.xml
  file_written,       ///< mama.xml holds the new content; the journal is still there
  journal_removed,    ///< done
};

/// The name of a save step ("journal_written", ...), as MAMA_CRASH_AT takes it.
constexpr std::string_view to_string(SaveStep s) noexcept {
  switch (s) {
    case SaveStep::journal_written:
      return "journal_written";
    case SaveStep::journal_renamed:
      return "journal_renamed";
    case SaveStep::file_truncated:
      return "file_truncated";
    case SaveStep::file_half_written:
      return "file_half_written";
    case SaveStep::file_written:
      return "file_written";
    case SaveStep::journal_removed:
      return "journal_removed";
  }
  return "?";
}

namespace detail {

/// What one begin() found out about mama.xml: its stat (mode and group for what the store
/// creates beside it) and its runtime directory. Each transaction keeps its own, so threads
/// using copies of one store share nothing mutable but the store's mutex-guarded caches.
struct opened_file {
  struct stat st {};
  std::filesystem::path canonical;  ///< the file's path with every symbolic link resolved
  std::filesystem::path runtime;
};

/// How a save writes: what the journal, the in-place rewrite and the rename need of the store's
/// options, without the options type (so these parts stand alone).
struct save_io {
  std::string_view name;  ///< the state file as the user named it, for messages
  bool sync = true;       ///< fsync/fdatasync each step
  std::size_t max_file_size = 64u << 20;
  const std::function<void(SaveStep)>* crash_hook = nullptr;  ///< test-only, may be null

  std::string file() const { return std::string(name); }
  bool hooked() const noexcept { return crash_hook && *crash_hook; }
  void step(SaveStep s) const {
    if (hooked()) (*crash_hook)(s);
  }
};

/// The path of the file open on `fd`, with every symbolic link (of the file and of its
/// directories) resolved: /proc/self/fd/N names what was really opened, so no rename between
/// resolving and opening can mislead it. Falls back to realpath(`name`) without /proc; either
/// must name the same inode as `st`. nullopt when neither does (the file was removed).
inline std::optional<std::filesystem::path> canonical_path_of(int fd, const std::string& name,
                                                              const struct stat& st) {
  const auto same = [&](const std::string& p) {
    struct stat other {};
    return !p.empty() && p.front() == '/' && ::stat(p.c_str(), &other) == 0 &&
           other.st_dev == st.st_dev && other.st_ino == st.st_ino;
  };
  if (fd >= 0) {
    char link[40];
    std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    std::string target(4096, '\0');
    const ssize_t n = ::readlink(link, target.data(), target.size());
    if (n > 0 && static_cast<std::size_t>(n) < target.size()) {
      target.resize(static_cast<std::size_t>(n));
      if (same(target)) return target;
    }
  }
  if (char* resolved = ::realpath(name.c_str(), nullptr)) {
    std::string r(resolved);
    std::free(resolved);
    if (same(r)) return r;
  }
  return std::nullopt;
}

/// Reads the whole state file open on `fd` into `content`. Throws mama::error naming the file
/// (bad_state_file when it is larger than io.max_file_size).
inline void read_state_bytes(int fd, std::string& content, const save_io& io) {
  if (!pread_all(fd, content, io.max_file_size)) {
    if (errno == EFBIG)
      throw error(
          errc::bad_state_file,
          io.file() + " is larger than " + std::to_string(io.max_file_size >> 20) +
              " MiB, far beyond any lab; it is not a mama state file, or raise max_file_size");
    throw_errno("cannot read " + io.file());
  }
}

/// Standalone mode's save: a temporary file beside the real file (a symbolic link named as the
/// state file stays a link to it), renamed over it. Throws mama::error; the file is unchanged.
inline void save_by_rename(const std::string& content, const opened_file& f, const save_io& io) {
  const auto dir_path = f.canonical.parent_path();
  unique_fd dir(::open(dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) throw_errno("cannot open the directory of " + io.file());
  // One fixed name: we hold the state lock, so a leftover is from a killed saver and goes.
  const std::string tmp = "." + f.canonical.filename().string() + ".mama-tmp";
  ::unlinkat(dir.get(), tmp.c_str(), 0);
  unique_fd t(
      ::openat(dir.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!t)
    throw_errno("cannot create a temporary file beside " + io.file() + "; it was not changed");
  bool ok = ::fchmod(t.get(), f.st.st_mode & 07777) == 0;
  if (::fchown(t.get(), f.st.st_uid, f.st.st_gid) != 0)
    ok = ::fchown(t.get(), -1, f.st.st_gid) == 0 || true;  // not root: keep what we can
  ok = ok && pwrite_all(t.get(), content, 0) && (!io.sync || ::fsync(t.get()) == 0);
  if (ok) io.step(SaveStep::file_written);
  if (!ok || ::renameat(dir.get(), tmp.c_str(), dir.get(), f.canonical.filename().c_str()) != 0) {
    const int saved = errno;
    ::unlinkat(dir.get(), tmp.c_str(), 0);
    errno = saved;
    throw_errno("cannot save " + io.file() + "; it was not changed");
  }
  if (io.sync) ::fsync(dir.get());
  io.step(SaveStep::journal_removed);
}

}  // namespace detail
}  // namespace mama
