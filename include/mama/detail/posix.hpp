// mama/detail/posix.hpp — thin RAII and retry wrappers over the POSIX calls the stores use.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "mama/error.hpp"

namespace mama::detail {

/// An owned file descriptor.
class unique_fd {
 public:
  unique_fd() noexcept = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  ~unique_fd() { reset(); }
  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

/// flock(2), retried on EINTR. Returns 0 or -1 with errno.
inline int flock_retry(int fd, int op) noexcept {
  int r;
  do r = ::flock(fd, op);
  while (r < 0 && errno == EINTR);
  return r;
}

/// Writes all of `data` at `offset`, retrying short writes and EINTR. False (errno) on failure.
inline bool pwrite_all(int fd, std::string_view data, off_t offset) noexcept {
  while (!data.empty()) {
    const ssize_t n = ::pwrite(fd, data.data(), data.size(), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
    offset += n;
  }
  return true;
}

/// Reads the whole file behind `fd` from offset 0, refusing more than `limit` bytes.
/// Returns false with errno (EFBIG when over the limit).
inline bool pread_all(int fd, std::string& out, std::size_t limit) noexcept {
  out.clear();
  struct stat st {};
  if (::fstat(fd, &st) != 0) return false;
  if (static_cast<std::uint64_t>(st.st_size) > limit) {
    errno = EFBIG;
    return false;
  }
  try {
    out.resize(static_cast<std::size_t>(st.st_size));
  } catch (...) {
    errno = ENOMEM;
    return false;
  }
  std::size_t got = 0;
  for (;;) {
    if (got == out.size()) {
      // Whether the file grew while we read, asked with one byte: growing `out` first would
      // double its capacity, and hold twice the file in memory, on every read.
      char probe;
      const ssize_t n = ::pread(fd, &probe, 1, static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return n == 0;
      if (out.size() >= limit) {
        errno = EFBIG;
        return false;
      }
      out.resize(std::min(limit, out.size() + 4096));  // it grew: read on
    }
    const ssize_t n = ::pread(fd, out.data() + got, out.size() - got, static_cast<off_t>(got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  out.resize(got);
  return true;
}

/// Reads a non-blocking descriptor until it has nothing more (EAGAIN or an error).
inline void drain_fd(int fd) noexcept {
  char buf[4096];
  while (::read(fd, buf, sizeof buf) > 0) {
  }
}

/// 64-bit FNV-1a, for the journal's integrity check (not for security).
inline std::uint64_t fnv1a(std::string_view data) noexcept {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

/// A 64-bit checksum for the save journal's integrity check, eight bytes at a time (the
/// journal holds the whole state file, so a byte-wise hash showed in every save's profile).
/// Detects torn or garbage journals; not for security.
inline std::uint64_t checksum64(std::string_view data) noexcept {
  std::uint64_t h = 0x9e3779b97f4a7c15ull ^ data.size();
  std::size_t i = 0;
  for (; i + 8 <= data.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, data.data() + i, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  std::uint64_t tail = 0;
  std::memcpy(&tail, data.data() + i, data.size() - i);
  h = (h ^ tail) * 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 29);
}

/// checksum64's mixing over four independent lanes of 8 bytes, so a large buffer is summed at
/// memory speed rather than one multiply chain at a time (the journal's tail, the check
/// record's blocks). Not for security.
inline std::uint64_t wide_checksum64(std::string_view data) noexcept {
  std::uint64_t lane[4] = {0x9e3779b97f4a7c15ull ^ data.size(), 0x243f6a8885a308d3ull,
                           0x13198a2e03707344ull, 0xa4093822299f31d0ull};
  std::size_t i = 0;
  for (; i + 32 <= data.size(); i += 32) {
    for (int j = 0; j < 4; ++j) {
      std::uint64_t w;
      std::memcpy(&w, data.data() + i + 8 * j, 8);
      lane[j] = (lane[j] ^ w) * 0xff51afd7ed558ccdull;
      lane[j] ^= lane[j] >> 32;
    }
  }
  std::uint64_t h = checksum64(data.substr(i));
  for (std::uint64_t l : lane) {
    h = (h ^ l) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
  }
  return h;
}

}  // namespace mama::detail
