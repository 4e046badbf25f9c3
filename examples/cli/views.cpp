// examples/cli/views.cpp — see views.hpp.
#include "views.hpp"

#include <iostream>

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
    case verdict::idle:
      return "IDLE";
    case verdict::stale:
      word = "STALE";
      break;
    case verdict::invalid:
      word = "UNKNOWN";
      break;
    case verdict::running:
    case verdict::remote:
      word = "RUNNING";
      break;
  }
  if (!a.reason.empty()) word += " (" + esc(a.reason) + ")";
  return word;
}

}  // namespace mama::cli
