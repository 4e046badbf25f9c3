// mama/detail/xml/check_record.hpp — `<file>.d/checked`: what the last process that checked or
// saved mama.xml learned about its bytes, so that a new process need not check them again. No
// pugixml here; tests/check_record_test.cpp.
//
// Why: a store remembers the bytes it checked and afterwards checks only what changed
// (xml_state_store.hpp, "Checked once"). A new process (each `mama run`, `mama list`) starts
// without that memory and would parse the whole file to check it. The record is that memory on
// disk, for the bytes the last mama process checked or saved.
//
// Contract:
// - What it holds: the size of the bytes it describes, a checksum (wide_checksum64) of each
//   64 KiB block of them, whether they were read as UTF-8, and each machine element's extent
//   and name as the store's check found them.
// - Format: "MAMA-CHECKED 1 <size> <utf8 0|1> <blocks> <machines> <body size> <body sum hex>\n"
//   and the body: <blocks> sums, <machines> extents (begin, end), all little-endian u64, then
//   each name as a u32 length and its bytes. <body sum> is wide_checksum64 of the body.
// - Used only when it describes exactly the bytes just read: its header and body sum hold, the
//   size is the file's, every block of the file sums to the record's sum, and its extents are in
//   order inside the file, each from a "<machine" tag to a '>', and a scan of the bytes between
//   them (scan::root_machine_children) meets each one as a machine child of the root, not in a
//   comment, CDATA section or other element (a file with a DOCTYPE is always checked whole).
//   Anything else (no record, a torn
//   or older one, bytes that anyone changed since, the PHP tool included) is ignored: the file
//   is checked as before and the record is written anew. Two different contents of one size
//   pass only if every differing block collides in 64 bits. By chance, that is; the sums are
//   a checksum, not a cryptographic hash: a writer of mama.xml who solves for them (each lane
//   step is invertible) passes bytes that the whole check refuses (xml_state_store_test,
//   "forged to the record's block sums", [!mayfail]: open).
// - Versions: the record stands for "these bytes passed begin()'s check". A change to what that
//   check refuses must change the format number, so that no record vouches for bytes that the
//   new rules would refuse.
// - Trust: only a user who may write `<file>.d/` can plant a record; that directory takes the
//   state file's group and mode, so that user may already write the lab's lock files and its
//   journal. A record is not believed when the directory or the record lets anyone write whom
//   the file does not (a lab that narrowed mama.xml's mode keeps the wider directory). A forged
//   index cannot redirect a save to another machine: a commit parses each machine it edits
//   back by itself and checks its name, and refuses otherwise; nor to an element of the same
//   name that no parse sees, such as an old copy in a comment, since the scan between machines
//   does not meet it (xml_state_store_test, "commented-out copy").
// - Written (write_check_record) under the state lock, after a begin() that checked bytes (whole
//   or by what changed) and after each commit: over the `checked` that is there, in place (a
//   rename over it cost ext4 a flush per save); the first one, or one this user may not write
//   or that is writable more widely than the file, to `checked.tmp` (O_EXCL|O_NOFOLLOW, the
//   file's group, its mode without execute bits), renamed to `checked`. No fsync: a record lost
//   or torn by a crash is ignored. Read-only users do not write it. Failing to write it costs
//   the next process one check, nothing else. The record never creates `<file>.d/`: a read
//   command run as root must not make the directory that the lab's users' claims write in.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mama/detail/posix.hpp"
#include "mama/detail/xml/scan.hpp"
#include "mama/detail/xml/state_file.hpp"

namespace mama::detail {

inline constexpr std::string_view check_record_magic = "MAMA-CHECKED 1 ";
inline constexpr const char* check_record_name = "checked";
inline constexpr const char* check_record_tmp_name = "checked.tmp";
/// The bytes each of the record's checksums covers.
inline constexpr std::size_t check_block = 64u << 10;

/// The checksum of each check_block of `content`. The blocks that lie wholly within the first
/// `same_before` bytes are taken from `known`, the sums of an earlier content that shares
/// those bytes (a save or a change costs the blocks from its first changed byte on).
inline std::vector<std::uint64_t> block_sums(std::string_view content,
                                             const std::vector<std::uint64_t>& known = {},
                                             std::size_t same_before = 0) {
  const std::size_t blocks = (content.size() + check_block - 1) / check_block;
  const std::size_t keep = std::min({known.size(), same_before / check_block, blocks});
  std::vector<std::uint64_t> out;
  out.reserve(blocks);
  out.assign(known.begin(), known.begin() + static_cast<std::ptrdiff_t>(keep));
  for (std::size_t b = keep; b < blocks; ++b)
    out.push_back(wide_checksum64(content.substr(b * check_block, check_block)));
  return out;
}

/// A decoded record (see the top of this header).
struct check_record {
  std::size_t size = 0;
  bool utf8 = true;
  std::vector<std::uint64_t> sums;
  std::vector<machine_extent> extents;
  std::vector<std::string> names;
};

namespace record_bytes {

inline void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}
inline void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}
// Reads a little-endian value of `n` bytes at `at`, advancing it; false past the end.
inline bool get(std::string_view in, std::size_t& at, int n, std::uint64_t& v) {
  if (in.size() - at < static_cast<std::size_t>(n)) return false;
  v = 0;
  for (int i = 0; i < n; ++i)
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  at += static_cast<std::size_t>(n);
  return true;
}

}  // namespace record_bytes

/// The record's first line.
inline std::string check_record_header(std::size_t size, bool utf8, std::size_t blocks,
                                       std::size_t machines, std::string_view body) {
  char header[160];
  std::snprintf(header, sizeof header, "%.*s%zu %d %zu %zu %zu %016llx\n",
                static_cast<int>(check_record_magic.size()), check_record_magic.data(), size,
                utf8 ? 1 : 0, blocks, machines, body.size(),
                static_cast<unsigned long long>(wide_checksum64(body)));
  return header;
}

/// The record's bytes for content of `size` bytes with these block sums, machines and names.
inline std::string encode_check_record(std::size_t size, bool utf8,
                                       const std::vector<std::uint64_t>& sums,
                                       const std::vector<machine_extent>& extents,
                                       const std::vector<std::string>& names) {
  std::string body;
  std::size_t name_bytes = 0;
  for (const std::string& n : names) name_bytes += n.size();
  body.reserve(8 * sums.size() + 20 * extents.size() + name_bytes);
  for (std::uint64_t s : sums) record_bytes::put_u64(body, s);
  for (const machine_extent& x : extents) {
    record_bytes::put_u64(body, x.begin);
    record_bytes::put_u64(body, x.end);
  }
  for (const std::string& n : names) {
    record_bytes::put_u32(body, static_cast<std::uint32_t>(n.size()));
    body += n;
  }
  return check_record_header(size, utf8, sums.size(), extents.size(), body) + body;
}

/// The record in `bytes`, or nullopt when they are not a whole record of this format.
inline std::optional<check_record> decode_check_record(std::string_view bytes) {
  if (!bytes.starts_with(check_record_magic)) return std::nullopt;
  const std::size_t nl = bytes.find('\n');
  if (nl == std::string_view::npos || nl > 200) return std::nullopt;
  const std::string header(bytes.substr(check_record_magic.size(), nl - check_record_magic.size()));
  unsigned long long size = 0, blocks = 0, machines = 0, body_size = 0, sum = 0;
  int utf8 = 0, used = 0;
  if (std::sscanf(header.c_str(), "%llu %d %llu %llu %llu %llx%n", &size, &utf8, &blocks, &machines,
                  &body_size, &sum, &used) != 6 ||
      static_cast<std::size_t>(used) != header.size() || (utf8 != 0 && utf8 != 1))
    return std::nullopt;
  const std::string_view body = bytes.substr(nl + 1);
  // The first line exactly as this format writes it (no other spelling of the same numbers).
  if (body.size() != body_size ||
      check_record_header(static_cast<std::size_t>(size), utf8 == 1,
                          static_cast<std::size_t>(blocks), static_cast<std::size_t>(machines),
                          body) != bytes.substr(0, nl + 1))
    return std::nullopt;
  // Counts that the body cannot hold are not believed (and never allocated).
  if (blocks != (size + check_block - 1) / check_block || blocks > body.size() / 8 ||
      machines > body.size() / 20)
    return std::nullopt;
  check_record r;
  r.size = static_cast<std::size_t>(size);
  r.utf8 = utf8 == 1;
  std::size_t at = 0;
  std::uint64_t v = 0, w = 0;
  r.sums.reserve(blocks);
  for (std::size_t i = 0; i < blocks; ++i) {
    if (!record_bytes::get(body, at, 8, v)) return std::nullopt;
    r.sums.push_back(v);
  }
  r.extents.reserve(machines);
  for (std::size_t i = 0; i < machines; ++i) {
    if (!record_bytes::get(body, at, 8, v) || !record_bytes::get(body, at, 8, w))
      return std::nullopt;
    r.extents.push_back({static_cast<std::size_t>(v), static_cast<std::size_t>(w)});
  }
  r.names.reserve(machines);
  for (std::size_t i = 0; i < machines; ++i) {
    if (!record_bytes::get(body, at, 4, v) || body.size() - at < v) return std::nullopt;
    r.names.emplace_back(body.substr(at, v));
    at += v;
  }
  if (at != body.size()) return std::nullopt;
  return r;
}

/// Whether `r` describes exactly `content` (see the top of this header). `sums` gets the block
/// sums of `content` (computed whenever the size matches, so a caller can keep them).
inline bool check_record_matches(const check_record& r, std::string_view content,
                                 std::vector<std::uint64_t>& sums) {
  if (r.size != content.size()) return false;
  sums = block_sums(content);
  if (sums != r.sums) return false;
  std::size_t after = 0;
  for (const machine_extent& x : r.extents) {
    if (x.begin < after || x.end <= x.begin || x.end > content.size()) return false;
    const std::string_view el = content.substr(x.begin, x.end - x.begin);
    constexpr std::string_view tag = "<machine";
    if (!el.starts_with(tag) || el.size() <= tag.size() || el.back() != '>') return false;
    const char c = el[tag.size()];
    if (c != '>' && c != '/' && c != ' ' && c != '\t' && c != '\n' && c != '\r') return false;
    after = x.end;
  }
  // Where the record says machines are must be where the bytes between them say: children of
  // the root, not in a comment, a CDATA section or another element (a scan of those bytes).
  return scan::root_machine_children(content, &r.extents).has_value();
}

/// Whether `st` (the runtime directory, or the record) lets no one write whom the state file
/// `file` does not: no write bit for others or the group that the file lacks, and group write
/// only for the file's group. (A lab that narrows mama.xml's mode keeps the wider directory
/// mama made before; a record there could be planted by a user mama.xml refuses.)
inline bool no_wider_write(const struct stat& st, const struct stat& file) noexcept {
  if (st.st_mode & S_IWOTH & ~file.st_mode) return false;
  if ((st.st_mode & S_IWGRP) && (!(file.st_mode & S_IWGRP) || st.st_gid != file.st_gid))
    return false;
  return true;
}

/// The record in the runtime directory open on `dir`, when there is one that decodes and that
/// no one could have written whom the state file `f` refuses (no_wider_write, for the directory
/// and the record); nullopt otherwise (none, unreadable, torn, not a regular file, larger than
/// `limit`, writable more widely than the file).
inline std::optional<check_record> read_check_record(int dir, std::size_t limit,
                                                     const opened_file& f) {
  struct stat ds {};
  if (::fstat(dir, &ds) != 0 || !no_wider_write(ds, f.st)) return std::nullopt;
  unique_fd fd(::openat(dir, check_record_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!fd) return std::nullopt;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || !no_wider_write(st, f.st))
    return std::nullopt;
  std::string bytes;
  if (!pread_all(fd.get(), bytes, limit)) return std::nullopt;
  return decode_check_record(bytes);
}

/// Puts `record` (encode_check_record's bytes) in place in the runtime directory open on `dir`
/// (see "Written" at the top of this header). False when it could not; nothing else happens
/// then.
inline bool write_check_record(int dir, const opened_file& f, std::string_view record) noexcept {
  // Over the record that is there, in place: every reader holds the state lock, as we do, so
  // only a crash leaves it torn (and a torn record is ignored). A rename over it, or a truncation
  // to zero, would make ext4 (auto_da_alloc) start writing it out at once, which measured a
  // quarter of a millisecond per save.
  {
    unique_fd fd(::openat(dir, check_record_name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    struct stat st {};
    if (fd && ::fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode) && no_wider_write(st, f.st)) {
      if (!pwrite_all(fd.get(), record, 0)) return false;
      if (static_cast<std::uint64_t>(st.st_size) > record.size() &&
          ::ftruncate(fd.get(), static_cast<off_t>(record.size())) != 0)
        return false;
      return true;
    }
  }
  // None yet, or one we may not write or must not keep: a new file, renamed in place.
  ::unlinkat(dir, check_record_tmp_name, 0);  // left by a killed writer; we hold the state lock
  unique_fd t(::openat(dir, check_record_tmp_name,
                       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, f.st.st_mode & 0666));
  if (!t) return false;
  if (::fchown(t.get(), -1, f.st.st_gid) != 0) {
    // Not in the file's group: keep ours; the mode is still no wider than the file's.
  }
  ::fchmod(t.get(), f.st.st_mode & 0666);
  if (!pwrite_all(t.get(), record, 0) ||
      ::renameat(dir, check_record_tmp_name, dir, check_record_name) != 0) {
    ::unlinkat(dir, check_record_tmp_name, 0);
    return false;
  }
  return true;
}

}  // namespace mama::detail
