// examples/cli/audit_json.cpp — see audit_json.hpp.
#include "audit_json.hpp"

#include <pwd.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <mama/record.hpp>
#include <string_view>
#include <utility>

namespace mama::cli {

namespace {

constexpr std::size_t max_field = 1024;  // longer strings are cut: a line stays a few KiB

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

}  // namespace

Origin Origin::here(std::string host) { return {std::move(host), user_name(), ::getpid()}; }

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

nlohmann::ordered_json audit_json(const Event& e, std::int64_t waited_ms, const Origin& origin,
                                  std::chrono::system_clock::time_point now) {
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
  j["host"] = origin.host;
  j["user"] = origin.user;
  j["pid"] = static_cast<std::int64_t>(origin.pid);
  j["state"] = cut(e.store);
  return j;
}

std::string audit_line(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace mama::cli
