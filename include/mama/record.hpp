// mama/record.hpp — the job fields of one machine record, as they are stored.
//
// Values are kept as the text found in the state file, never reinterpreted on the way through,
// so a record read and written back is unchanged. Interpretation (is the PID a number, is the
// timestamp old) belongs to mama::assess in staleness.hpp.
#pragma once

#include <array>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mama {

/// The job fields of a machine. Empty text means "absent" (SPEC §2: an absent field reads as
/// empty). `job` empty means the machine is idle.
struct JobRecord {
  std::string job;        ///< what runs; empty: idle
  std::string pid;        ///< job_pid: holder's PID, decimal
  std::string timestamp;  ///< job_timestamp: Unix seconds (wall clock) when the job was set
  std::string host;       ///< job_host: host name of the holder
  std::string boot_id;    ///< job_boot_id: /proc/sys/kernel/random/boot_id of the holder's boot
  std::string start;      ///< job_start: holder's start time, clock ticks since boot
  std::string token;      ///< job_token: unique to one claim

  /// True when no job is recorded.
  bool idle() const noexcept { return job.empty(); }
  friend bool operator==(const JobRecord&, const JobRecord&) = default;
};

/// The element names of the job fields, in the order this library writes them.
inline constexpr std::array<std::string_view, 7> job_field_names{
    "job", "job_pid", "job_timestamp", "job_host", "job_boot_id", "job_start", "job_token"};

/// Member pointers in the order of job_field_names, so stores map names to members in one place.
inline constexpr std::array<std::string JobRecord::*, 7> job_field_members{
    &JobRecord::job,     &JobRecord::pid,   &JobRecord::timestamp, &JobRecord::host,
    &JobRecord::boot_id, &JobRecord::start, &JobRecord::token};

/// The member for a job field name, or nullptr when `name` is not a job field.
inline std::string JobRecord::*job_field(std::string_view name) noexcept {
  for (std::size_t i = 0; i < job_field_names.size(); ++i)
    if (job_field_names[i] == name) return job_field_members[i];
  return nullptr;
}

/// One machine as listed by a store, for display: its name, its other fields in file order
/// (everything but the job fields and `name`), and its job fields.
struct MachineInfo {
  std::string name;
  std::vector<std::pair<std::string, std::string>> fields;
  JobRecord job;

  /// The text of field `key`, or empty when absent.
  std::string_view field(std::string_view key) const noexcept {
    for (const auto& [k, v] : fields)
      if (k == key) return v;
    return {};
  }
};

namespace detail {
/// Parses a whole string as a non-negative decimal integer; nullopt on anything else
/// (sign, blanks, overflow, empty).
template <class Int>
std::optional<Int> parse_decimal(std::string_view text) noexcept {
  if (text.empty() || text.front() == '-' || text.front() == '+') return std::nullopt;
  Int value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}
}  // namespace detail

}  // namespace mama
