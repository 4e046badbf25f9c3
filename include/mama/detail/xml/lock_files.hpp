// mama/detail/xml/lock_files.hpp — the mama.xml store's runtime directory (`<file>.d/`) and the
// per-machine lock files in it that carry a claim's hold, and finding who holds one. No pugixml.
//
// - The runtime directory takes mama.xml's group and the setgid bit and a mode that follows the
//   file's, so every user who may write mama.xml may use what another created there.
// - A machine's lock file is `machine.<name>.lock` (name bytes outside [A-Za-z0-9_.-] as %XX),
//   opened read-only (created with O_EXCL, never through a link) with mama.xml's read bits and
//   group. A hold is an flock on it, inherited by the job's children.
// - Lock files that were found busy are kept open (up to 64) and reused by the next probe, so a
//   waiter's own probes do not wake it through inotify.
// - A sweep over a whole lab learns which lock files are held from one read of /proc/locks
//   (flock_snapshot) instead of one try-lock per machine. /proc/locks is evidence of a hold,
//   never of its absence: the kernel leaves out locks whose taker it cannot show in /proc's PID
//   namespace (another container's; outside the initial namespace, and in it before Linux 4.19,
//   also one whose taker exited while a child that inherited the descriptor keeps the lock), and
//   it names a file by its superblock's device, which is not what stat() says for a file in a
//   btrfs subvolume. So a listed file is held, and any other is probed as before (a stale job's
//   lock file costs what it did; a live one's is a stat).
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <compare>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mama/detail/posix.hpp"
#include "mama/detail/xml/state_file.hpp"
#include "mama/error.hpp"
#include "mama/process_probe.hpp"

namespace mama::detail {

/// The lock file name of a machine: bytes outside [A-Za-z0-9_.-] (and a leading '.') are
/// written %XX, so any name maps to one safe file name.
inline std::string lock_file_name(std::string_view machine) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out = "machine.";
  for (std::size_t i = 0; i < machine.size(); ++i) {
    const auto c = static_cast<unsigned char>(machine[i]);
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '_' || c == '-' || (c == '.' && i > 0);
    if (plain) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (out.size() > 200) {  // keep within NAME_MAX; the hash keeps long names apart
    out.resize(180);
    char tail[24];
    std::snprintf(tail, sizeof tail, "~%016llx", static_cast<unsigned long long>(fnv1a(machine)));
    out += tail;
  }
  return out + ".lock";
}

/// The runtime directory takes the state file's group and the setgid bit, so that what anyone
/// creates in it (lock files, the journal, the CLI's audit log) gets that group, and every user
/// who may write mama.xml may use it. Also mends, where this user owns it, a default `<file>.d`
/// made before (by an older mama) without them. `mode`: the permission bits it must have
/// besides (0: keep its own).
inline void adopt_group(int dir, const opened_file& f, mode_t mode) {
  struct stat st {};
  if (::fstat(dir, &st) != 0 || st.st_uid != ::geteuid()) return;
  if (!mode && st.st_gid == f.st.st_gid && (st.st_mode & S_ISGID)) return;  // the usual case
  if (st.st_gid != f.st.st_gid && ::fchown(dir, -1, f.st.st_gid) != 0)
    return;  // not in the file's group: keep ours
  ::fchmod(dir, ((mode ? mode : st.st_mode) & 0777) | S_ISGID);
}

/// Opens f.runtime (an empty fd when it does not exist and `create` is false), creating it when
/// `create`. `default_dir`: f.runtime is the default `<file>.d` (an explicit runtime directory
/// that exists is left as its owner set it). `file`: the state file, for messages.
inline unique_fd open_runtime_dir(const opened_file& f, bool create, bool default_dir,
                                  std::string_view file) {
  unique_fd dir(::open(f.runtime.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (dir || !create || errno != ENOENT) {
    if (!dir && errno == ELOOP)
      throw error(errc::io_error, f.runtime.string() +
                                      " is a symbolic link; mama refuses to use it. "
                                      "Remove it (mama creates the directory itself)");
    if (dir && create && default_dir) adopt_group(dir.get(), f, 0);
    return dir;
  }
  // Directory mode follows the state file: its read bits become search bits.
  mode_t mode = f.st.st_mode & 0777;
  mode |= (mode & 0444) >> 2;
  if (::mkdir(f.runtime.c_str(), mode) != 0 && errno != EEXIST)
    throw_errno("cannot create " + f.runtime.string() + " (lock files and the save journal of " +
                std::string(file) + "); make its directory writable or set a runtime directory");
  unique_fd made(::open(f.runtime.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!made) throw_errno("cannot open " + f.runtime.string());
  ::fchmod(made.get(), mode);  // past the umask
  adopt_group(made.get(), f, mode);
  return made;
}

/// The live process other than `except` that holds the flock of the file `dev`/`ino` through an
/// open descriptor: /proc/PID/fd/N names the file, and /proc/PID/fdinfo/N lists the flock on
/// the descriptor's open file description (a descriptor opened by a waiter, without the lock,
/// lists none). Of several, the one that started first (ties: the lowest PID). Processes whose
/// /proc entries may not be read, and zombies, are skipped.
inline std::optional<ProcessIdentity> find_flock_holder(dev_t dev, ino_t ino, int except) {
  using dir_ptr = std::unique_ptr<DIR, int (*)(DIR*)>;
  const dir_ptr proc(::opendir("/proc"), ::closedir);
  if (!proc) return std::nullopt;
  std::optional<ProcessIdentity> best;
  std::string fdinfo;
  while (const dirent* p = ::readdir(proc.get())) {
    const auto pid = parse_decimal<int>(p->d_name);
    if (!pid || *pid == except) continue;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/fd", *pid);
    const dir_ptr fds(::opendir(path), ::closedir);
    if (!fds) continue;  // another user's, or gone
    bool holds = false;
    while (!holds) {
      const dirent* d = ::readdir(fds.get());
      if (!d) break;
      const auto fd = parse_decimal<int>(d->d_name);
      if (!fd) continue;
      std::snprintf(path, sizeof path, "/proc/%d/fd/%d", *pid, *fd);
      struct stat st {};
      if (::stat(path, &st) != 0 || st.st_dev != dev || st.st_ino != ino) continue;
      std::snprintf(path, sizeof path, "/proc/%d/fdinfo/%d", *pid, *fd);
      holds = read_small_file(path, fdinfo) && fdinfo.find("FLOCK") != std::string::npos;
    }
    if (!holds) continue;
    const auto stat = read_proc_stat(*pid);
    if (!stat || stat->state == 'Z' || stat->state == 'X') continue;
    const ProcessIdentity who{*pid, stat->start};
    if (!best || who.start < best->start || (who.start == best->start && who.pid < best->pid))
      best = who;
  }
  return best;
}

/// Who holds machine `m`'s lock file in the runtime directory `runtime`, other than this process
/// (see find_flock_holder). nullopt when there is no lock file or no holder is seen.
inline std::optional<ProcessIdentity> lock_file_holder(const std::filesystem::path& runtime,
                                                       std::string_view m) {
  struct stat lock {};
  const auto lock_path = runtime / lock_file_name(m);
  if (::lstat(lock_path.c_str(), &lock) != 0 || !S_ISREG(lock.st_mode)) return std::nullopt;
  return find_flock_holder(lock.st_dev, lock.st_ino, static_cast<int>(::getpid()));
}

/// A file as /proc/locks names it: the device's major and minor number and the inode.
struct file_key {
  unsigned major = 0;
  unsigned minor = 0;
  std::uint64_t ino = 0;
  auto operator<=>(const file_key&) const = default;
};

/// The file of one line of /proc/locks when the line records a held flock, shared or exclusive:
/// `ID: FLOCK  ADVISORY  WRITE PID MAJ:MIN:INODE 0 EOF` (MAJ and MIN in hex, INODE in decimal).
/// nullopt for every other line: POSIX, OFD and lease locks, and `ID: -> FLOCK ...` (a process
/// blocked waiting for the lock, which holds nothing).
inline std::optional<file_key> parse_flock_line(std::string_view line) {
  std::string_view words[6];
  std::size_t count = 0;
  for (std::size_t i = 0; i < line.size() && count < 6;) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const std::size_t b = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > b) words[count++] = line.substr(b, i - b);
  }
  // ID:  FLOCK  ADVISORY  READ|WRITE  PID  MAJ:MIN:INODE ...
  if (count < 6 || words[0].empty() || words[0].back() != ':' || words[1] != "FLOCK" ||
      (words[3] != "READ" && words[3] != "WRITE"))
    return std::nullopt;
  const std::string_view id = words[5];
  const auto c1 = id.find(':');
  const auto c2 = c1 == std::string_view::npos ? c1 : id.find(':', c1 + 1);
  if (c2 == std::string_view::npos) return std::nullopt;
  const auto hex = [](std::string_view t) -> std::optional<unsigned> {
    if (t.empty() || t.size() > 8) return std::nullopt;
    unsigned v = 0;
    for (const char c : t) {
      const int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
      if (d < 0) return std::nullopt;
      v = v * 16 + static_cast<unsigned>(d);
    }
    return v;
  };
  const auto major = hex(id.substr(0, c1));
  const auto minor = hex(id.substr(c1 + 1, c2 - c1 - 1));
  const auto ino = parse_decimal<std::uint64_t>(id.substr(c2 + 1));
  if (!major || !minor || !ino) return std::nullopt;
  return file_key{*major, *minor, *ino};
}

/// Every file that carries an flock, from one read of `path` (/proc/locks), sorted. nullopt when
/// it cannot be opened or read to its end (then nothing can be learned from it). A file listed
/// is held by some process (this one included); a file not listed may be held all the same (see
/// the top of this header).
inline std::optional<std::vector<file_key>> read_flocked_files(const char* path = "/proc/locks") {
  const unique_fd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  std::vector<file_key> out;
  std::string line;  // a line that the last read cut
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) break;
    std::string_view chunk(buf, static_cast<std::size_t>(n));
    for (std::size_t nl; (nl = chunk.find('\n')) != std::string_view::npos;
         chunk.remove_prefix(nl + 1)) {
      std::optional<file_key> key;
      if (line.empty()) {
        key = parse_flock_line(chunk.substr(0, nl));
      } else {
        line.append(chunk.substr(0, nl));
        key = parse_flock_line(line);
        line.clear();
      }
      if (key) out.push_back(*key);
    }
    line.append(chunk);
  }
  if (!line.empty())
    if (const auto key = parse_flock_line(line)) out.push_back(*key);
  std::sort(out.begin(), out.end());
  return out;
}

/// The holds of a runtime directory's lock files as one read of /proc/locks shows them, for a
/// sweep over many machines: held(m) is a stat of m's lock file (relative to the directory,
/// opened once) and a lookup, instead of opening and try-locking it. Only says "held": a lock
/// file that is not listed, or when /proc/locks or the directory cannot be read, must be
/// probed (lock_files::try_lock) as before.
class flock_snapshot {
 public:
  /// Opens `runtime` (never creates it) and reads `proc_locks` once.
  explicit flock_snapshot(const std::filesystem::path& runtime,
                          const char* proc_locks = "/proc/locks")
      : dir_(::open(runtime.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) {
    if (dir_) locked_ = read_flocked_files(proc_locks);
  }

  /// Whether held() can say anything (the directory and /proc/locks were read).
  bool usable() const noexcept { return dir_ && locked_.has_value(); }

  /// True when `machine`'s lock file is a regular file that /proc/locks lists with an flock: some
  /// process holds it. False: not known to be held (probe it).
  bool held(std::string_view machine) const {
    if (!usable() || locked_->empty()) return false;
    struct stat st {};
    if (::fstatat(dir_.get(), lock_file_name(machine).c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode))
      return false;
    const file_key key{::major(st.st_dev), ::minor(st.st_dev),
                       static_cast<std::uint64_t>(st.st_ino)};
    return std::binary_search(locked_->begin(), locked_->end(), key);
  }

 private:
  unique_fd dir_;
  std::optional<std::vector<file_key>> locked_;
};

/// The per-machine lock files of one store and its copies (the busy ones it keeps open).
class lock_files {
 public:
  lock_files() = default;
  lock_files(const lock_files&) = delete;
  lock_files& operator=(const lock_files&) = delete;
  ~lock_files() {
    for (auto& [name, fd] : busy_) ::close(fd);
  }

  /// Takes machine's lock file without blocking. Returns the locked descriptor (not
  /// close-on-exec: the job's children inherit it); an empty descriptor when a read-only
  /// caller finds no lock file (no holder ever took it); nullopt when another holds it, or
  /// with `create_only` (which only makes sure the file exists). `dir`: f.runtime already open
  /// (-1: opened here). Throws mama::error.
  std::optional<unique_fd> try_lock(std::string_view machine, bool read_only, const opened_file& f,
                                    bool create_only, bool default_dir, std::string_view file,
                                    int dir_fd = -1) {
    const std::string name = lock_file_name(machine);
    const std::string key = (f.runtime / name).string();
    int fd = -1;
    if (!create_only) {
      std::lock_guard lock(mutex_);
      if (const auto it = busy_.find(key); it != busy_.end()) {
        fd = it->second;
        busy_.erase(it);
      }
    }
    if (fd < 0) {
      unique_fd opened;
      if (dir_fd < 0) opened = open_runtime_dir(f, !read_only, default_dir, file);
      const int dir = dir_fd >= 0 ? dir_fd : opened.get();
      if (dir < 0) {
        if (read_only || create_only) return unique_fd();
        throw_errno("cannot open " + f.runtime.string());
      }
      // Open an existing lock file, else create it (O_EXCL: never through a planted link).
      fd = ::openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0 && errno == ENOENT && !read_only) {
        fd = ::openat(dir, name.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                      f.st.st_mode & 0444);
        if (fd >= 0) {
          // Lock files are only ever opened for reading: read bits of mama.xml, no umask.
          if (::fchown(fd, -1, f.st.st_gid) != 0) {
          }
          ::fchmod(fd, f.st.st_mode & 0444);
        } else if (errno == EEXIST) {
          fd = ::openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        }
      }
      if (fd < 0) {
        if (errno == ENOENT && (read_only || create_only)) return unique_fd();
        if (errno == ELOOP)
          throw error(errc::io_error, "the lock file " + key +
                                          " is a symbolic link; mama refuses to follow it. "
                                          "Remove it");
        throw_errno("cannot open the lock file " + key + "; check the permissions of " +
                    f.runtime.string());
      }
      struct stat st {};
      if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw error(errc::io_error, "the lock file " + key + " is not a regular file; remove it");
      }
    }
    if (create_only) {
      ::close(fd);
      return std::nullopt;
    }
    if (flock_retry(fd, LOCK_EX | LOCK_NB) == 0) {
      // Ours: let the job's child processes inherit it.
      ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) & ~FD_CLOEXEC);
      return unique_fd(fd);
    }
    const int saved = errno;
    if (saved != EWOULDBLOCK) {
      ::close(fd);
      errno = saved;
      throw_errno("cannot lock " + key);
    }
    std::lock_guard lock(mutex_);
    if (busy_.size() < 64 && busy_.emplace(key, fd).second) return std::nullopt;
    ::close(fd);
    return std::nullopt;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, int, std::less<>> busy_;  // lock files that were busy, for reuse
};

}  // namespace mama::detail
