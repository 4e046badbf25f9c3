// examples/cli/common.cpp — the helpers of cli.hpp.
#include <fcntl.h>
#include <linux/fs.h>
#include <pwd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "cli.hpp"

namespace mama::cli {

Style Style::for_fd(int fd) {
  Style s;
  s.tty = ::isatty(fd) == 1;
  // https://no-color.org: any NO_COLOR in the environment turns colour off (we also honour an
  // empty one: a user who set it at all asked for no colour).
  s.color = s.tty && std::getenv("NO_COLOR") == nullptr;
  return s;
}

std::string Style::paint(std::string_view text, std::string_view sgr) const {
  if (!color) return std::string(text);
  return "\x1b[" + std::string(sgr) + "m" + std::string(text) + "\x1b[0m";
}

Context::Context() : out(Style::for_fd(1)), err(Style::for_fd(2)) {
  reporter.configure(err.tty, err.color);
}

std::filesystem::path Context::state_path() const { return default_state_path(state_option); }

bool is_database_url(std::string_view state) {
  return state.starts_with("postgresql://") || state.starts_with("postgres://");
}

AnyStore& Context::any_store() {
  if (store_) return *store_;
  const std::filesystem::path path = state_path();
  if (!is_database_url(path.native())) {
    store_.emplace(std::in_place_type<XmlStateStore>, path);
    return *store_;
  }
#if MAMA_CLI_WITH_PG
  store_.emplace(std::in_place_type<PgStateStore>, path.native(), pg_options_from_env());
  return *store_;
#else
  throw error(errc::invalid_argument,
              std::string("the state is a PostgreSQL URL (--state or MAMA_STATE), but this mama "
                          "was built without PostgreSQL support; install libpq-dev and rebuild "
                          "mama, or use a mama.xml file (--state FILE)"));
#endif
}

XmlStateStore& Context::store() {
  if (auto* xml = std::get_if<XmlStateStore>(&any_store())) return *xml;
  throw error(errc::invalid_argument, "this works on a mama.xml file only, and the state is " +
                                          describe_state() + "; give a file with --state FILE");
}

std::string Context::describe_state() {
  return with_store([](const auto& s) { return s.describe(); });
}

namespace {
bool immutable_or_append_only(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return false;
  int flags = 0;
  const bool got = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
  ::close(fd);
  return got && (flags & (FS_IMMUTABLE_FL | FS_APPEND_FL)) != 0;
}
}  // namespace

void Context::require_writable() {
  if (state_is_database()) return;
  const std::filesystem::path path = state_path();
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (fd >= 0) {
    ::close(fd);
    return;
  }
  const int e = errno;
  const std::error_code code(e, std::system_category());
  const std::string file = path.string();
  if (e == EPERM && immutable_or_append_only(path)) {
    // chattr +i (immutable) or +a (append-only): even root cannot open it for writing.
    throw error(code,
                file + " is immutable or append-only (chattr +i or +a; see `lsattr " + file +
                    "`), so mama cannot change it; remove the flag as root with `chattr -i -a " +
                    file + "`, or use `mama list`/`mama info`, which only read it");
  }
  if (e == EACCES) {
    std::string user = "this user";
    if (const passwd* pw = ::getpwuid(::geteuid())) user = "user '" + esc(pw->pw_name) + "'";
    throw error(code, "cannot change " + file + ": " + user +
                          " has no write permission on it, and this command may have to (it "
                          "claims machines or clears stale jobs); run it as a user who may change "
                          "the lab state (" +
                          file + " was not changed)");
  }
  if (e == EPERM)
    throw error(code, "cannot open " + file +
                          " for writing (operation not permitted), and this "
                          "command may have to change it; check its attributes with `lsattr " +
                          file + "` (" + file + " was not changed)");
  if (e == EROFS)
    throw error(code, "cannot change " + file +
                          ": it is on a read-only file system; this command may have to change it "
                          "(" +
                          file + " was not changed)");
  // Missing, a directory, ...: the store says what is wrong when it opens the file.
}

Observation Context::here() const {
  return Observation{probe.host_name(), probe.boot_id(), clock.now(), stale_after(),
                     HoldState::none};
}

EventHandler Context::handler() {
  return [this](const Event& e) { reporter.report(e); };
}

void Context::emit(EventKind kind, std::string_view machine, const JobRecord& record,
                   std::string_view reason, std::chrono::nanoseconds waited) {
  const std::string file = describe_state();
  reporter.report(Event{kind, machine, file, record, reason, waited});
}

void throw_unknown_machine(Context& ctx, std::string_view arg) {
  throw error(errc::unknown_machine, "machine '" + esc(arg) + "' not found in " +
                                         ctx.describe_state() + "; see the names with `mama list`");
}

std::string local_time(std::string_view stamp) {
  const auto secs = detail::parse_decimal<std::int64_t>(stamp);
  if (!secs) return {};
  const time_t t = static_cast<time_t>(*secs);
  struct tm tm {};
  if (!::localtime_r(&t, &tm)) return {};
  char buf[64];
  if (std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm) == 0) return {};
  return buf;
}

std::string human_duration(std::chrono::nanoseconds d) {
  const long long s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  char buf[64];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%lld s", s < 0 ? 0 : s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lld min %02lld s", s / 60, s % 60);
  } else if (s < 86400) {
    std::snprintf(buf, sizeof buf, "%lld h %02lld min", s / 3600, s % 3600 / 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lld d %lld h", s / 86400, s % 86400 / 3600);
  }
  return buf;
}

namespace {
// The largest number of seconds mama takes: what a signed 64-bit count of nanoseconds holds
// (about 292 years; the guard compares waited time with it and never adds to it).
constexpr double max_seconds = 9223372036.0;

// A number of seconds (digits, with one '.' when `fractional`), or why it is not one.
std::optional<double> seconds_value(const std::string& text, bool fractional,
                                    std::string* problem = nullptr) {
  const auto fail = [&](std::string why) -> std::optional<double> {
    if (problem) *problem = std::move(why);
    return std::nullopt;
  };
  const std::string example =
      fractional ? "a number >= 0 such as 30 or 0.5" : "a whole number >= 0 such as 600";
  const auto digits =
      std::count_if(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  const auto dots = std::count(text.begin(), text.end(), '.');
  if (text.empty() || digits == 0 || digits + dots != static_cast<long>(text.size()) ||
      dots > (fractional ? 1 : 0))
    return fail("'" + esc(text) + "' is not a number of seconds; give " + example);
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(v) || v < 0)
    return fail("'" + esc(text) + "' is not a number of seconds; give " + example);
  if (v > max_seconds)
    return fail("'" + esc(text) + "' seconds is more than mama can count (at most 9223372036, " +
                "about 292 years); give a smaller number");
  return v;
}
}  // namespace

CLI::Validator seconds_validator(bool fractional) {
  return CLI::Validator(
      [fractional](std::string& value) -> std::string {
        std::string problem;
        if (seconds_value(value, fractional, &problem)) return {};
        return problem;
      },
      "");
}

std::chrono::nanoseconds parse_seconds(const std::string& text) {
  const double v = seconds_value(text, true).value_or(0);
  return std::chrono::nanoseconds(static_cast<long long>(std::llround(v * 1e9)));
}

void add_stale_after_option(CLI::App& app, Context& ctx) {
  app.add_option_function<std::string>(
         "--stale-after", [&ctx](const std::string& v) { ctx.stale_after_sec = std::stoll(v); },
         "A job without a PID counts as stale when it was set longer ago than this (default 300)")
      ->type_name("SEC")
      ->check(seconds_validator(false));
}

}  // namespace mama::cli
