// examples/cli/audit_log.hpp — the audit log file: whole JSON lines appended by many `mama`
// processes at once, capped and rotated.
//
// Each line is one write(2) on a file opened with O_APPEND, so lines never interleave. The log is
// capped: the writer that would pass the cap renames it to `.1` (older generations move up, the
// oldest is dropped) under an flock on `<log>.lock`; writers open the log for every line, so
// nobody keeps writing into a rotated file for long. Files the log creates (the log, its lock)
// take the state file's permission bits and group (CreateMode::like), so every user who may
// write the state file may append, whoever started the log.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

namespace mama::cli {

/// The mode and group of the files the log creates.
struct CreateMode {
  mode_t mode = 0;                       ///< permission bits; 0: as the umask says
  gid_t group = static_cast<gid_t>(-1);  ///< -1: the group the system gives

  /// The state file's permission bits (0666 part) and group; the defaults when it cannot be read.
  static CreateMode like(const std::filesystem::path& state);
};

/// Appends whole lines to a capped, rotated log file; safe with concurrent writers.
class AuditLog {
 public:
  /// `path`: the log; `max_size`: rotate before a line would make it larger than this;
  /// `generations`: rotated files kept (`path.1` newest ... `path.N`); `create`: for new files.
  AuditLog(std::filesystem::path path, std::uint64_t max_size, int generations = 1,
           CreateMode create = {});

  /// Appends `line` (a '\n' is added) with one write(2). Throws mama::error(io_error) naming the
  /// file when it cannot.
  void append(std::string_view line);

  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  void rotate(std::uint64_t incoming);

  std::filesystem::path path_;
  std::uint64_t max_size_;
  int generations_;
  CreateMode create_;
};

/// The files of a log, oldest first: `path.N` ... `path.1`, `path` (those that exist).
std::vector<std::filesystem::path> audit_generations(const std::filesystem::path& path,
                                                     int generations);

}  // namespace mama::cli
