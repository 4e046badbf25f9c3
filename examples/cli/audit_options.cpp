// examples/cli/audit_options.cpp — see audit_options.hpp.
#include "audit_options.hpp"

#include <cstdlib>

#include "cli.hpp"

namespace mama::cli {

namespace {

constexpr std::uint64_t min_max_size = 4096;

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

}  // namespace

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

void AuditOptions::add_options(CLI::App& app) {
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

std::optional<std::filesystem::path> AuditOptions::log_path(Context& ctx) const {
  if (no_log_) return std::nullopt;
  if (!log_option_.empty()) return std::filesystem::path(log_option_);
  if (const char* v = env("MAMA_AUDIT_LOG")) {
    if (std::string_view(v) == "off") return std::nullopt;
    return std::filesystem::path(v);
  }
  // A database has no directory beside it: there the log is kept only where one is given.
  if (ctx.state_is_database()) return std::nullopt;
  return ctx.store().runtime_dir() / "audit.jsonl";
}

AuditConfig AuditOptions::resolve(Context& ctx) const {
  AuditConfig c;
  if (!max_size_option_.empty()) {
    c.max_size = *parse_size(max_size_option_);
  } else if (const char* v = env("MAMA_AUDIT_MAX_SIZE")) {
    const auto s = parse_size(v);
    if (!s || *s < min_max_size)
      throw error(errc::invalid_argument,
                  "MAMA_AUDIT_MAX_SIZE='" + esc(v) +
                      "' is not a size of at least 4K; give bytes such as 1048576, 512K or 1M");
    c.max_size = *s;
  }
  if (!hook_timeout_option_.empty()) {
    c.hook_timeout = parse_seconds(hook_timeout_option_);
  } else if (const char* v = env("MAMA_HOOK_TIMEOUT")) {
    std::string value = v;
    if (!seconds_validator(true)(value).empty())
      throw error(errc::invalid_argument, "MAMA_HOOK_TIMEOUT='" + esc(v) +
                                              "' is not a number of seconds; give a number >= 0 "
                                              "such as 10 or 2.5");
    c.hook_timeout = parse_seconds(value);
  }
  c.hook = on_stale_option_;
  if (c.hook.empty())
    if (const char* v = env("MAMA_ON_STALE")) c.hook = v;
  c.log = log_path(ctx);
  return c;
}

}  // namespace mama::cli
