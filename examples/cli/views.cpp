// examples/cli/views.cpp — see views.hpp.
#include "views.hpp"

#include <algorithm>
#include <charconv>
#include <iostream>
#include <numeric>

namespace mama::cli {

nlohmann::ordered_json machine_json(const MachineInfo& m, const Assessment& a) {
  nlohmann::ordered_json j;
  j["name"] = m.name;
  nlohmann::ordered_json fields = nlohmann::ordered_json::object();
  for (const auto& [key, value] : m.fields) fields[key] = value;
  j["fields"] = std::move(fields);
  if (m.job.idle()) {
    j["job"] = nullptr;
  } else {
    nlohmann::ordered_json job;
    for (std::size_t i = 0; i < job_field_names.size(); ++i)
      job[std::string(job_field_names[i])] = m.job.*job_field_members[i];
    job["started"] = local_time(m.job.timestamp);
    j["job"] = std::move(job);
  }
  j["status"] = std::string(to_string(a.verdict));
  j["reason"] = a.reason;
  return j;
}

void print_json(const nlohmann::ordered_json& j) {
  std::cout << j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << '\n';
}

std::string status_text(const Assessment& a) {
  std::string word;
  switch (a.verdict) {
    case Verdict::idle:
      return "IDLE";
    case Verdict::stale:
      word = "STALE";
      break;
    case Verdict::invalid:
      word = "UNKNOWN";
      break;
    case Verdict::running:
    case Verdict::remote:
      word = "RUNNING";
      break;
  }
  if (!a.reason.empty()) word += " (" + esc(a.reason) + ")";
  return word;
}

namespace {
bool php_blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool digit(char c) { return c >= '0' && c <= '9'; }
}  // namespace

std::optional<double> php_number(std::string_view text) {
  std::size_t b = 0, e = text.size();
  while (b < e && php_blank(text[b])) ++b;
  while (e > b && php_blank(text[e - 1])) --e;
  std::string_view core = text.substr(b, e - b);
  bool negative = false;
  if (!core.empty() && (core.front() == '+' || core.front() == '-')) {
    negative = core.front() == '-';
    core.remove_prefix(1);
  }
  // digits [. digits] | . digits, then an optional exponent: nothing else (no hex, inf, nan)
  std::size_t i = 0, mantissa_digits = 0;
  while (i < core.size() && digit(core[i])) ++i, ++mantissa_digits;
  if (i < core.size() && core[i] == '.') {
    ++i;
    while (i < core.size() && digit(core[i])) ++i, ++mantissa_digits;
  }
  if (mantissa_digits == 0) return std::nullopt;
  if (i < core.size() && (core[i] == 'e' || core[i] == 'E')) {
    std::size_t j = i + 1;
    if (j < core.size() && (core[j] == '+' || core[j] == '-')) ++j;
    const std::size_t digits_at = j;
    while (j < core.size() && digit(core[j])) ++j;
    if (j == digits_at) return std::nullopt;
    i = j;
  }
  if (i != core.size()) return std::nullopt;
  double value = 0;
  const auto [end, ec] = std::from_chars(core.data(), core.data() + core.size(), value);
  if (end != core.data() + core.size() ||
      (ec != std::errc{} && ec != std::errc::result_out_of_range))
    return std::nullopt;
  return negative ? -value : value;
}

bool php_equal(std::string_view a, std::string_view b) {
  const auto x = php_number(a), y = php_number(b);
  if (x && y) return *x == *y;
  return a == b;
}

bool php_less(std::string_view a, std::string_view b) {
  const auto x = php_number(a), y = php_number(b);
  if (x && y) return *x < *y;
  return a < b;  // byte by byte, as unsigned char
}

bool php_is_one(std::string_view value) {
  const auto x = php_number(value);
  return x && *x == 1;
}

std::vector<std::size_t> php_order(const std::vector<MachineInfo>& machines) {
  std::vector<std::size_t> order(machines.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return php_less(machines[a].name, machines[b].name);
  });
  return order;
}

std::string php_cell(std::string_view value, std::size_t width) {
  std::size_t cut = std::min(value.size(), width - 1);
  if (cut < value.size())
    while (cut > 0 && (static_cast<unsigned char>(value[cut]) & 0xc0) == 0x80) --cut;
  std::string out(value.substr(0, cut));
  out.append(width - cut, ' ');
  return out;
}

}  // namespace mama::cli
