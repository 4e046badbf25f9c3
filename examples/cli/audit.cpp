// examples/cli/audit.cpp — see audit.hpp.
#include "audit.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <tuple>
#include <utility>

#include "cli.hpp"
#include "hook.hpp"

namespace mama::cli {

namespace {

constexpr std::uint64_t default_max_size = 1024 * 1024;
constexpr std::uint64_t min_max_size = 4096;
constexpr std::size_t max_field = 1024;  // longer strings are cut: a line stays a few KiB
constexpr auto default_hook_timeout = std::chrono::seconds(10);

std::string cut(std::string_view s) {
  if (s.size() <= max_field) return std::string(s);
  return std::string(s.substr(0, max_field - 3)) + "...";
}

nlohmann::ordered_json number_or_null(std::string_view text) {
  if (const auto v = detail::parse_decimal<std::int64_t>(text)) return *v;
  return nullptr;
}

std::string user_name() {
  const uid_t uid = ::geteuid();
  struct passwd pw {};
  struct passwd* found = nullptr;
  char buf[4096];
  if (::getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found && found->pw_name)
    return found->pw_name;
  return std::to_string(uid);
}

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

// Opens `path` for appending; a file it creates gets `mode` exactly (0: as the umask says) and
// the group `group` when this user may give it (-1: the group the system gives).
int open_for_append(const std::filesystem::path& path, mode_t mode, gid_t group,
                    int extra = O_WRONLY | O_APPEND) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    int fd = ::open(path.c_str(), extra | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0 || errno != ENOENT) return fd;
    fd =
        ::open(path.c_str(), extra | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode ? mode : 0666);
    if (fd >= 0) {
      // The state file's group and mode, past the umask: every user who may write the state
      // file may append, whoever started the log.
      if (group != static_cast<gid_t>(-1) && ::fchown(fd, -1, group) != 0) {
        // Not in that group: the log keeps ours.
      }
      if (mode) ::fchmod(fd, mode);
      return fd;
    }
    if (errno != EEXIST) return -1;
  }
  return -1;
}

// The permission bits (group-writable when the state file is) and the group that files the
// log creates take from the state file.
std::pair<mode_t, gid_t> state_file_mode(const std::filesystem::path& state) {
  struct stat st {};
  if (::stat(state.c_str(), &st) != 0) return {0, static_cast<gid_t>(-1)};
  return {st.st_mode & 0666, st.st_gid};
}

}  // namespace

std::string iso_utc(std::chrono::system_clock::time_point t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  ::gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[80];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::size_t i = 0;
  std::uint64_t v = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    if (v > (UINT64_MAX - 9) / 10) return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(text[i] - '0');
    ++i;
  }
  if (i == 0) return std::nullopt;
  std::string_view unit = text.substr(i);
  std::uint64_t mult = 1;
  if (!unit.empty()) {
    switch (unit[0]) {
      case 'k':
      case 'K':
        mult = 1024;
        break;
      case 'm':
      case 'M':
        mult = 1024 * 1024;
        break;
      case 'g':
      case 'G':
        mult = 1024 * 1024 * 1024;
        break;
      default:
        return std::nullopt;
    }
    unit.remove_prefix(1);
    if (!(unit.empty() || unit == "B" || unit == "iB")) return std::nullopt;
  }
  if (v > UINT64_MAX / mult) return std::nullopt;
  return v * mult;
}

// ---- AuditLog ----------------------------------------------------------------------------------

AuditLog::AuditLog(std::filesystem::path path, std::uint64_t max_size, int generations)
    : path_(std::move(path)),
      max_size_(max_size),
      generations_(generations < 1 ? 1 : generations) {}

namespace {
mode_t g_create_mode = 0;                       // set by AuditSettings::attach from the
gid_t g_create_group = static_cast<gid_t>(-1);  // state file
}  // namespace

void AuditLog::append(std::string_view line) {
  std::string buf(line);
  buf += '\n';
  for (int attempt = 0;; ++attempt) {
    detail::unique_fd fd(open_for_append(path_, g_create_mode, g_create_group));
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
  detail::unique_fd lock(open_for_append(lock_path, g_create_mode, g_create_group, O_RDONLY));
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

// ---- AuditSettings -----------------------------------------------------------------------------

AuditSettings::AuditSettings() = default;
AuditSettings::~AuditSettings() = default;

void AuditSettings::add_options(CLI::App& app) {
  app.add_option(
         "--audit-log", log_option_,
         "Append one JSON line per event to FILE (default: $MAMA_AUDIT_LOG, else "
         "<state file>.d/audit.jsonl, none for a database; MAMA_AUDIT_LOG=off turns it off)")
      ->type_name("FILE");
  app.add_flag("--no-audit-log", no_log_, "Write no audit log");
  app.add_option("--audit-max-size", max_size_option_,
                 "Rotate the audit log (to FILE.1) before it passes SIZE bytes; K and M "
                 "suffixes (default: $MAMA_AUDIT_MAX_SIZE, else 1M)")
      ->type_name("SIZE")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            const auto s = parse_size(v);
            if (s && *s >= min_max_size) return {};
            return "'" + esc(v) +
                   "' is not a size of at least 4K; give bytes such as 1048576, "
                   "512K or 1M";
          },
          ""));
  app.add_option("--on-stale", on_stale_option_,
                 "Run CMD (with /bin/sh -c) when a stale job is cleared or a job is cleared with "
                 "--force; the event is in MAMA_* variables and as JSON on stdin (default: "
                 "$MAMA_ON_STALE)")
      ->type_name("CMD");
  app.add_option("--hook-timeout", hook_timeout_option_,
                 "Kill the --on-stale command (and its process group) after SEC seconds "
                 "(default: $MAMA_HOOK_TIMEOUT, else 10)")
      ->type_name("SEC")
      ->check(seconds_validator(true));
}

std::optional<std::filesystem::path> AuditSettings::log_path(const Context& ctx) const {
  if (no_log_) return std::nullopt;
  if (!log_option_.empty()) return std::filesystem::path(log_option_);
  if (const char* v = env("MAMA_AUDIT_LOG")) {
    if (std::string_view(v) == "off") return std::nullopt;
    return std::filesystem::path(v);
  }
  // A database has no directory beside it: there the log is kept only where one is given.
  if (ctx.state_is_database()) return std::nullopt;
  return std::filesystem::path(ctx.state_path().string() + ".d") / "audit.jsonl";
}

void AuditSettings::attach(Context& ctx) {
  std::uint64_t max_size = default_max_size;
  if (!max_size_option_.empty()) {
    max_size = *parse_size(max_size_option_);
  } else if (const char* v = env("MAMA_AUDIT_MAX_SIZE")) {
    const auto s = parse_size(v);
    if (!s || *s < min_max_size)
      throw error(errc::invalid_argument,
                  "MAMA_AUDIT_MAX_SIZE='" + esc(v) +
                      "' is not a size of at least 4K; give bytes such as 1048576, 512K or 1M");
    max_size = *s;
  }
  std::chrono::nanoseconds timeout = default_hook_timeout;
  if (!hook_timeout_option_.empty()) {
    timeout = parse_seconds(hook_timeout_option_);
  } else if (const char* v = env("MAMA_HOOK_TIMEOUT")) {
    std::string value = v;
    if (!seconds_validator(true)(value).empty())
      throw error(errc::invalid_argument, "MAMA_HOOK_TIMEOUT='" + esc(v) +
                                              "' is not a number of seconds; give a number >= 0 "
                                              "such as 10 or 2.5");
    timeout = parse_seconds(value);
  }
  std::string hook = on_stale_option_;
  if (hook.empty())
    if (const char* v = env("MAMA_ON_STALE")) hook = v;

  if (const auto path = log_path(ctx)) {
    log_.emplace(*path, max_size, generations);
    std::tie(g_create_mode, g_create_group) = state_file_mode(ctx.state_path());
  }
  if (!hook.empty()) hooks_ = std::make_unique<HookRunner>(hook, timeout);
  if (!log_ && !hooks_) return;
  host_ = ctx.probe.host_name();
  user_ = user_name();
  ctx.reporter.listen([this, &ctx](const Event& e) { on_event(ctx, e); });
}

nlohmann::ordered_json AuditSettings::to_json(const Context&, const Event& e,
                                              std::int64_t waited_ms) const {
  const auto now = std::chrono::system_clock::now();
  nlohmann::ordered_json j;
  j["time"] = iso_utc(now);
  j["epoch"] = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  j["event"] = std::string(to_string(e.kind));
  j["machine"] = cut(e.machine);
  j["job"] = cut(e.record.job);
  j["job_pid"] = number_or_null(e.record.pid);
  j["job_host"] = cut(e.record.host);
  j["job_started"] = number_or_null(e.record.timestamp);
  if (e.kind == EventKind::stale_detected || e.kind == EventKind::stale_cleared)
    j["verdict"] = "stale";
  j["reason"] = cut(e.reason);
  j["waited_ms"] = waited_ms;
  j["host"] = host_;
  j["user"] = user_;
  j["pid"] = static_cast<std::int64_t>(::getpid());
  j["state"] = cut(e.store);
  return j;
}

void AuditSettings::report_failure(Context& ctx, const std::string& what) {
  if (failure_reported_) return;
  failure_reported_ = true;
  ctx.reporter.end_line();
  std::cerr << "mama: " << what
            << "; going on without it (choose another file with --audit-log FILE, or turn it "
               "off with --no-audit-log)\n"
            << std::flush;
}

void AuditSettings::on_event(Context& ctx, const Event& e) {
  using namespace std::chrono_literals;
  std::int64_t waited_ms = std::chrono::duration_cast<std::chrono::milliseconds>(e.waited).count();
  const auto now = std::chrono::steady_clock::now();
  auto track = waits_.find(e.machine);
  switch (e.kind) {
    case EventKind::waiting: {
      if (track == waits_.end()) track = waits_.emplace(std::string(e.machine), WaitTrack{}).first;
      WaitTrack& w = track->second;
      // A smaller waited time than before: a new claim or wait of the same machine.
      if (e.waited < w.last) w.logged = -1ns;
      w.last = e.waited;
      w.last_at = now;
      // The first wait of a claim, then one a minute: waking up is frequent, news is not.
      if (w.logged >= 0ns && e.waited - w.logged < 60s) return;
      w.logged = e.waited;
      break;
    }
    case EventKind::claimed:
    case EventKind::nested:
      // `claimed` carries the whole time the claim waited; `wait` (which claims nothing) and
      // `nested` do not: the last wait plus the time since.
      if (track != waits_.end()) {
        if (e.kind == EventKind::nested || e.waited == 0ns)
          waited_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          track->second.last + (now - track->second.last_at))
                          .count();
        waits_.erase(track);
      }
      break;
    case EventKind::released:
      if (track != waits_.end()) waits_.erase(track);
      break;
    default:
      break;
  }

  const auto j = to_json(ctx, e, waited_ms);
  const std::string line = j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  if (log_) {
    try {
      log_->append(line);
    } catch (const std::exception& ex) {
      report_failure(ctx, ex.what());
    }
  }
  if (hooks_ && (e.kind == EventKind::stale_cleared || e.kind == EventKind::forced_clear)) {
    std::vector<std::pair<std::string, std::string>> vars{
        {"MAMA_EVENT", std::string(to_string(e.kind))},
        {"MAMA_MACHINE", std::string(e.machine)},
        {"MAMA_JOB", e.record.job},
        {"MAMA_JOB_PID", e.record.pid},
        {"MAMA_JOB_HOST", e.record.host},
        {"MAMA_JOB_STARTED", e.record.timestamp},
        {"MAMA_REASON", std::string(e.reason)},
        {"MAMA_STATE", std::string(e.store)},
        {"MAMA_HOST", host_},
        {"MAMA_USER", user_},
        {"MAMA_TIME", j["time"].get<std::string>()},
    };
    ctx.reporter.end_line();
    hooks_->start(line + "\n", vars);
  }
}

}  // namespace mama::cli
