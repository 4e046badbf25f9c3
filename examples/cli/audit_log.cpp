// examples/cli/audit_log.cpp — see audit_log.hpp.
#include "audit_log.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <mama/detail/posix.hpp>
#include <mama/error.hpp>
#include <string>
#include <utility>

namespace mama::cli {

namespace {

// Opens `path` for appending; a file it creates gets create.mode exactly (0: as the umask says)
// and the group create.group when this user may give it (-1: the group the system gives).
int open_for_append(const std::filesystem::path& path, const CreateMode& create,
                    int extra = O_WRONLY | O_APPEND) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    int fd = ::open(path.c_str(), extra | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0 || errno != ENOENT) return fd;
    fd = ::open(path.c_str(), extra | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                create.mode ? create.mode : 0666);
    if (fd >= 0) {
      if (create.group != static_cast<gid_t>(-1) && ::fchown(fd, -1, create.group) != 0) {
        // Not in that group: the log keeps ours.
      }
      if (create.mode) ::fchmod(fd, create.mode);
      return fd;
    }
    if (errno != EEXIST) return -1;
  }
  return -1;
}

}  // namespace

CreateMode CreateMode::like(const std::filesystem::path& state) {
  struct stat st {};
  if (::stat(state.c_str(), &st) != 0) return {};
  return {st.st_mode & 0666, st.st_gid};
}

AuditLog::AuditLog(std::filesystem::path path, std::uint64_t max_size, int generations,
                   CreateMode create)
    : path_(std::move(path)),
      max_size_(max_size),
      generations_(generations < 1 ? 1 : generations),
      create_(create) {}

void AuditLog::append(std::string_view line) {
  std::string buf(line);
  buf += '\n';
  for (int attempt = 0;; ++attempt) {
    detail::unique_fd fd(open_for_append(path_, create_));
    if (!fd) throw_errno("cannot open the audit log " + path_.string());
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw_errno("cannot read the size of " + path_.string());
    if (attempt == 0 && st.st_size > 0 &&
        static_cast<std::uint64_t>(st.st_size) + buf.size() > max_size_) {
      fd.reset();
      rotate(buf.size());
      continue;  // write into the fresh file
    }
    // One write per line: with O_APPEND the kernel places it whole at the end, whatever other
    // processes append at the same time.
    ssize_t n;
    do n = ::write(fd.get(), buf.data(), buf.size());
    while (n < 0 && errno == EINTR);
    if (n < 0) throw_errno("cannot write the audit log " + path_.string());
    if (static_cast<std::size_t>(n) != buf.size())
      throw error(errc::io_error,
                  "short write to the audit log " + path_.string() + " (is the disk full?)");
    return;
  }
}

void AuditLog::rotate(std::uint64_t incoming) {
  const std::filesystem::path lock_path = path_.string() + ".lock";
  detail::unique_fd lock(open_for_append(lock_path, create_, O_RDONLY));
  if (!lock) throw_errno("cannot open the audit log's lock file " + lock_path.string());
  while (::flock(lock.get(), LOCK_EX) != 0)
    if (errno != EINTR) throw_errno("cannot lock " + lock_path.string());
  // Another writer may have rotated while we waited for the lock: look again.
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return;
  if (static_cast<std::uint64_t>(st.st_size) + incoming <= max_size_) return;
  for (int g = generations_; g >= 2; --g) {
    const std::string from = path_.string() + "." + std::to_string(g - 1);
    const std::string to = path_.string() + "." + std::to_string(g);
    if (::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT)
      throw_errno("cannot rotate the audit log " + from);
  }
  const std::string first = path_.string() + ".1";
  if (::rename(path_.c_str(), first.c_str()) != 0 && errno != ENOENT)
    throw_errno("cannot rotate the audit log " + path_.string());
}

std::vector<std::filesystem::path> audit_generations(const std::filesystem::path& path,
                                                     int generations) {
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (int g = generations; g >= 1; --g) {
    std::filesystem::path p = path.string() + "." + std::to_string(g);
    if (std::filesystem::exists(p, ec)) files.push_back(std::move(p));
  }
  if (std::filesystem::exists(path, ec)) files.push_back(path);
  return files;
}

}  // namespace mama::cli
