// `mama stats --prometheus`: the audit log and the lab's busy machines in the Prometheus text
// exposition format (node_exporter's textfile collector). Checks the format itself (every
// family has HELP and TYPE before its samples, valid metric and label names, label values
// escaped as the format says: \\, \" and \n) and the values, on a crafted log and lab.
#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "mama_runner.hpp"

namespace fs = std::filesystem;
using namespace mama::test;
using nlohmann::json;

namespace {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;  // unescaped
  double value = 0;
};

// Parses one sample line strictly by the exposition format; nullopt when it is not one.
std::optional<Sample> parse_sample(const std::string& line) {
  static const std::regex name_re("^[a-zA-Z_:][a-zA-Z0-9_:]*");
  static const std::regex label_name_re("^[a-zA-Z_][a-zA-Z0-9_]*");
  std::smatch m;
  if (!std::regex_search(line, m, name_re)) return std::nullopt;
  Sample s;
  s.name = m.str();
  std::size_t i = s.name.size();
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const std::string rest = line.substr(i);
      if (!std::regex_search(rest, m, label_name_re)) return std::nullopt;
      const std::string label = m.str();
      i += label.size();
      if (line.compare(i, 2, "=\"") != 0) return std::nullopt;
      i += 2;
      std::string value;
      for (;;) {
        if (i >= line.size()) return std::nullopt;
        const char c = line[i++];
        if (c == '"') break;
        if (c == '\n') return std::nullopt;
        if (c != '\\') {
          value += c;
          continue;
        }
        if (i >= line.size()) return std::nullopt;
        const char e = line[i++];
        if (e == '\\')
          value += '\\';
        else if (e == '"')
          value += '"';
        else if (e == 'n')
          value += '\n';
        else
          return std::nullopt;  // no other escapes exist
      }
      if (!s.labels.emplace(label, value).second) return std::nullopt;
      if (i < line.size() && line[i] == ',') ++i;
    }
    if (i >= line.size()) return std::nullopt;
    ++i;  // '}'
  }
  if (i >= line.size() || line[i] != ' ') return std::nullopt;
  const std::string number = line.substr(i + 1);
  std::size_t used = 0;
  try {
    s.value = std::stod(number, &used);
  } catch (...) {
    return std::nullopt;
  }
  if (used != number.size()) return std::nullopt;
  return s;
}

// Checks the whole text; returns the samples.
std::vector<Sample> parse_exposition(const std::string& text) {
  REQUIRE(!text.empty());
  REQUIRE(text.back() == '\n');
  std::map<std::string, std::string> types;
  std::set<std::string> helped, finished;
  std::string current;
  std::vector<Sample> samples;
  std::size_t at = 0;
  while (at < text.size()) {
    const auto nl = text.find('\n', at);
    const std::string line = text.substr(at, nl - at);
    at = nl + 1;
    INFO("line: " << line);
    if (line.starts_with("# HELP ")) {
      const auto sp = line.find(' ', 7);
      REQUIRE(sp != std::string::npos);
      const std::string name = line.substr(7, sp - 7);
      CHECK(std::regex_match(name, std::regex("[a-zA-Z_:][a-zA-Z0-9_:]*")));
      CHECK(helped.insert(name).second);  // one HELP per family
      if (!current.empty() && current != name) finished.insert(current);
      CHECK(finished.count(name) == 0);  // a family's lines are together
      current = name;
    } else if (line.starts_with("# TYPE ")) {
      const auto sp = line.find(' ', 7);
      REQUIRE(sp != std::string::npos);
      const std::string name = line.substr(7, sp - 7);
      const std::string type = line.substr(sp + 1);
      CHECK((type == "counter" || type == "gauge"));
      CHECK(name == current);
      CHECK(types.emplace(name, type).second);  // one TYPE per family
    } else {
      REQUIRE(!line.starts_with("#"));
      REQUIRE(!line.empty());
      const auto s = parse_sample(line);
      REQUIRE(s);
      CHECK(s->name == current);  // after its family's HELP and TYPE
      CHECK(types.count(s->name) == 1);
      if (types[s->name] == "counter") CHECK(s->name.ends_with("_total"));
      samples.push_back(*s);
    }
  }
  return samples;
}

double value_of(const std::vector<Sample>& samples, const std::string& name,
                const std::map<std::string, std::string>& labels) {
  for (const auto& s : samples)
    if (s.name == name && s.labels == labels) return s.value;
  FAIL("no sample " << name);
  return -1;
}

std::string log_line(const std::string& event, const std::string& machine, long epoch,
                     const std::string& reason, long waited_ms = 0, long pid = 100) {
  json j;
  j["time"] = "x";
  j["epoch"] = epoch;
  j["event"] = event;
  j["machine"] = machine;
  j["job"] = "j";
  j["job_started"] = epoch - 60;
  j["reason"] = reason;
  j["waited_ms"] = waited_ms;
  j["pid"] = pid;
  return j.dump() + "\n";
}

}  // namespace

TEST_CASE("stats --prometheus writes the textfile format with escaped labels", "[stats]") {
  TempDir dir;
  const fs::path state = dir / "mama.xml";
  const std::string odd = "we\"ird\\na\nme";  // a quote, a backslash, a line feed
  // `busy` runs a job of another host (busy now), `alpha` is idle.
  write_file(state,
             "<?xml version=\"1.0\"?>\n<settings>\n"
             "  <machine>\n    <name>alpha</name>\n    <job/>\n  </machine>\n"
             "  <machine>\n    <name>busy</name>\n    <job>remote job</job>\n"
             "    <job_pid>4242</job_pid>\n    <job_host>some-other-host</job_host>\n"
             "  </machine>\n</settings>\n");
  const fs::path log = dir / "audit.jsonl";
  const long now = 1'800'000'000;
  write_file(log, log_line("stale_detected", "alpha", now, "process not running") +
                      log_line("stale_cleared", "alpha", now, "process not running") +
                      // waited 1.5 s behind a busy machine (pid 100 logged `waiting` first)
                      log_line("waiting", "alpha", now - 2, "running", 0, 100) +
                      log_line("waiting", "alpha", now - 2, "running", 0, 101) +
                      log_line("claimed", "alpha", now, "", 1500, 100) +
                      log_line("stale_detected", "alpha", now + 10, "process not running") +
                      log_line("stale_detected", "alpha", now + 20, "rebooted since (boot id)") +
                      // clearing a stale job took a moment, but nothing was waited for
                      log_line("claimed", "alpha", now + 20, "", 30, 102) +
                      log_line("stale_detected", odd, now + 30, "say \"hi\"\\now") +
                      log_line("waiting", odd, now + 30, "running", 0, 103) +
                      log_line("claimed", odd, now + 30, "", 250, 103) +
                      log_line("forced_clear", "busy", now + 40, "") + "not json\n");

  const Result r =
      run_mama({"--state", state.string(), "--audit-log", log.string(), "stats", "--prometheus"});
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const auto samples = parse_exposition(r.out);

  CHECK(value_of(samples, "mama_stale_jobs_detected_total",
                 {{"machine", "alpha"}, {"reason", "process not running"}}) == 2);
  CHECK(value_of(samples, "mama_stale_jobs_detected_total",
                 {{"machine", "alpha"}, {"reason", "rebooted since (boot id)"}}) == 1);
  // The odd name and reason come back whole through the format's escaping.
  CHECK(value_of(samples, "mama_stale_jobs_detected_total",
                 {{"machine", odd}, {"reason", "say \"hi\"\\now"}}) == 1);
  CHECK(r.out.find("machine=\"we\\\"ird\\\\na\\nme\"") != std::string::npos);
  CHECK(value_of(samples, "mama_claims_total", {{"machine", "alpha"}}) == 2);
  CHECK(value_of(samples, "mama_claim_waits_total", {{"machine", "alpha"}}) == 1);
  CHECK(value_of(samples, "mama_claim_wait_seconds_total", {{"machine", "alpha"}}) == 1.5);
  CHECK(value_of(samples, "mama_claim_wait_seconds_total", {{"machine", odd}}) == 0.25);
  CHECK(value_of(samples, "mama_forced_clears_total", {{"machine", "busy"}}) == 1);
  CHECK(value_of(samples, "mama_machine_busy", {{"machine", "busy"}}) == 1);
  CHECK(value_of(samples, "mama_machine_busy", {{"machine", "alpha"}}) == 0);
  CHECK(value_of(samples, "mama_machines_busy", {}) == 1);
  CHECK(value_of(samples, "mama_audit_log_malformed_lines", {}) == 1);

  // Counters are totals over the log: --since does not go with them, nor does --json.
  CHECK(run_mama({"--state", state.string(), "--audit-log", log.string(), "stats", "--prometheus",
                  "--since", "7d"})
            .status == 2);
  CHECK(run_mama({"--state", state.string(), "--audit-log", log.string(), "stats", "--prometheus",
                  "--json"})
            .status == 2);
}
