// examples/cli/cmd_stats.cpp — `mama stats [--since DURATION|DATE] [--machine M] [--json]`: what
// the audit log says about stale jobs: per machine the claims, the stale jobs cleared, the
// forced clears and how long phantom jobs blocked the machine; per job text how often it was
// left stale. Reads the log and its rotated generation(s), oldest first; writes nothing.
//
// `--prometheus` writes the same log (plus which machines are busy now, from the state) in the
// Prometheus text exposition format for node_exporter's textfile collector: counters over the
// whole log, so --since does not apply.
//
// Blocked time of one stale job = the time it was cleared (the stale_cleared event) minus the
// time the job was set on the machine (its job_timestamp, logged as job_started). When the job
// died is unknown, so this is an upper bound: it includes the time the job ran while alive.
#include <time.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "audit.hpp"
#include "cli.hpp"
#include "views.hpp"

namespace mama::cli {

namespace {

struct StatsArgs {
  std::string since;
  std::string machine;
  bool json = false;
  bool prometheus = false;
};

// "7d", "24h", "90m", "30min", "3600s", "2w" -> seconds.
std::optional<std::int64_t> parse_duration(std::string_view text) {
  std::size_t i = 0;
  std::int64_t v = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    if (v > 1'000'000'000) return std::nullopt;
    v = v * 10 + (text[i] - '0');
    ++i;
  }
  if (i == 0) return std::nullopt;
  const std::string_view unit = text.substr(i);
  if (unit == "s") return v;
  if (unit == "m" || unit == "min") return v * 60;
  if (unit == "h") return v * 3600;
  if (unit == "d") return v * 86400;
  if (unit == "w") return v * 7 * 86400;
  return std::nullopt;
}

// "2025-11-13", "2025-11-13 08:00", "2025-11-13T08:00:30" in local time (TZ) -> Unix seconds.
std::optional<std::int64_t> parse_date(const std::string& text) {
  for (const char* format :
       {"%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"}) {
    struct tm tm {};
    const char* end = ::strptime(text.c_str(), format, &tm);
    if (!end || *end != '\0') continue;
    tm.tm_isdst = -1;
    const time_t t = ::mktime(&tm);
    if (t == static_cast<time_t>(-1)) continue;
    return static_cast<std::int64_t>(t);
  }
  return std::nullopt;
}

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The start of the period, in Unix seconds.
std::optional<std::int64_t> since_seconds(const std::string& text) {
  if (const auto d = parse_duration(text)) return now_seconds() - *d;
  return parse_date(text);
}

std::string iso_of(std::int64_t epoch) {
  return iso_utc(std::chrono::system_clock::time_point(std::chrono::seconds(epoch)));
}

struct MachineStats {
  long claims = 0;
  long waited_claims = 0;      // claims that had to wait for the machine
  std::int64_t waited_ms = 0;  // how long they waited, together
  long stale = 0;
  long forced = 0;
  long blocked_known = 0;
  std::int64_t blocked_sum = 0;  // seconds
  std::int64_t blocked_max = 0;
  std::optional<std::int64_t> last_stale;
};

struct JobStats {
  long stale = 0;
  std::set<std::string> machines;
};

struct Stats {
  std::vector<std::filesystem::path> files;
  long events = 0;
  long malformed = 0;
  std::optional<std::int64_t> first;
  std::map<std::string, MachineStats> machines;
  std::map<std::string, JobStats> jobs;
  std::map<std::pair<std::string, std::string>, long> detected;  // (machine, reason) -> count
  std::set<std::pair<std::string, std::int64_t>> waiting;  // (machine, pid) waiting, not claimed
};

std::string text_of(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::optional<std::int64_t> int_of(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<std::int64_t>();
}

void add_line(Stats& s, const std::string& line, std::optional<std::int64_t> since,
              const std::string& only) {
  if (line.empty()) return;
  const auto j = nlohmann::json::parse(line, nullptr, false);
  const auto epoch = j.is_object() ? int_of(j, "epoch") : std::nullopt;
  const std::string event = j.is_object() ? text_of(j, "event") : std::string();
  const std::string machine = j.is_object() ? text_of(j, "machine") : std::string();
  if (!epoch || event.empty() || machine.empty()) {
    ++s.malformed;
    return;
  }
  if (since && *epoch < *since) return;
  if (!only.empty() && machine != only) return;
  ++s.events;
  if (!s.first || *epoch < *s.first) s.first = epoch;
  MachineStats& m = s.machines[machine];
  // A claim waited for a busy machine when the same process logged `waiting` for that machine
  // before its `claimed` (which carries the whole time it waited).
  const auto waiter = std::make_pair(machine, int_of(j, "pid").value_or(-1));
  if (event == "waiting") {
    s.waiting.insert(waiter);
  } else if (event == "claimed") {
    ++m.claims;
    if (s.waiting.erase(waiter)) {
      ++m.waited_claims;
      m.waited_ms += int_of(j, "waited_ms").value_or(0);
    }
  } else if (event == "stale_detected") {
    ++s.detected[{machine, text_of(j, "reason")}];
  } else if (event == "forced_clear") {
    ++m.forced;
  } else if (event == "stale_cleared") {
    ++m.stale;
    if (!m.last_stale || *epoch > *m.last_stale) m.last_stale = epoch;
    if (const auto started = int_of(j, "job_started"); started && *started <= *epoch) {
      const std::int64_t blocked = *epoch - *started;
      ++m.blocked_known;
      m.blocked_sum += blocked;
      m.blocked_max = std::max(m.blocked_max, blocked);
    }
    JobStats& js = s.jobs[text_of(j, "job")];
    ++js.stale;
    js.machines.insert(machine);
  }
}

std::string duration_text(std::int64_t seconds) {
  return human_duration(std::chrono::seconds(seconds));
}

std::vector<std::pair<std::string, MachineStats>> sorted_machines(const Stats& s) {
  std::vector<std::pair<std::string, MachineStats>> v(s.machines.begin(), s.machines.end());
  std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    return a.second.stale + a.second.forced > b.second.stale + b.second.forced;
  });
  return v;
}

std::vector<std::pair<std::string, JobStats>> sorted_jobs(const Stats& s) {
  std::vector<std::pair<std::string, JobStats>> v(s.jobs.begin(), s.jobs.end());
  std::stable_sort(v.begin(), v.end(),
                   [](const auto& a, const auto& b) { return a.second.stale > b.second.stale; });
  return v;
}

void print_json_stats(const Stats& s, std::optional<std::int64_t> since) {
  nlohmann::ordered_json out;
  out["log"] = nlohmann::ordered_json::array();
  for (const auto& f : s.files) out["log"].push_back(f.string());
  out["since"] = since ? nlohmann::ordered_json(iso_of(*since)) : nlohmann::ordered_json(nullptr);
  out["events"] = s.events;
  out["malformed_lines"] = s.malformed;
  out["blocked_time"] = "from the stale job's job_timestamp to its stale_cleared event, seconds";
  out["machines"] = nlohmann::ordered_json::array();
  for (const auto& [name, m] : sorted_machines(s)) {
    nlohmann::ordered_json j;
    j["machine"] = name;
    j["claims"] = m.claims;
    j["stale_cleared"] = m.stale;
    j["forced_clears"] = m.forced;
    j["blocked_known"] = m.blocked_known;
    if (m.blocked_known) {
      j["blocked_mean_s"] = m.blocked_sum / m.blocked_known;
      j["blocked_max_s"] = m.blocked_max;
    } else {
      j["blocked_mean_s"] = nullptr;
      j["blocked_max_s"] = nullptr;
    }
    j["last_stale"] = m.last_stale ? nlohmann::ordered_json(iso_of(*m.last_stale))
                                   : nlohmann::ordered_json(nullptr);
    out["machines"].push_back(std::move(j));
  }
  out["jobs"] = nlohmann::ordered_json::array();
  for (const auto& [job, js] : sorted_jobs(s)) {
    nlohmann::ordered_json j;
    j["job"] = job;
    j["stale_cleared"] = js.stale;
    j["machines"] = js.machines;
    out["jobs"].push_back(std::move(j));
  }
  print_json(out);
}

void pad(std::string& s, std::size_t width, bool right) {
  if (s.size() >= width) return;
  if (right)
    s.insert(0, width - s.size(), ' ');
  else
    s.append(width - s.size(), ' ');
}

void print_table(const std::vector<std::vector<std::string>>& rows,
                 const std::vector<bool>& right) {
  std::vector<std::size_t> width(rows.front().size(), 0);
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      std::string cell = r[i];
      if (i + 1 < r.size()) pad(cell, width[i], right[i]);
      line += cell;
      if (i + 1 < r.size()) line += "  ";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::cout << line << '\n';
  }
}

void print_text_stats(const Stats& s, std::optional<std::int64_t> since,
                      const std::string& since_text) {
  std::cout << "Audit log: ";
  for (std::size_t i = 0; i < s.files.size(); ++i)
    std::cout << (i ? ", " : "") << s.files[i].string();
  std::cout << '\n';
  std::cout << "Period: ";
  if (since)
    std::cout << "since " << local_time(std::to_string(*since)) << " (--since " << esc(since_text)
              << ")";
  else if (s.first)
    std::cout << "all events, the first at " << local_time(std::to_string(*s.first));
  else
    std::cout << "all events";
  std::cout << "; " << s.events << (s.events == 1 ? " event" : " events");
  if (s.malformed) std::cout << " (" << s.malformed << " unreadable lines skipped)";
  std::cout << "\n\n";
  if (s.machines.empty()) {
    std::cout << "No events in this period.\n";
    return;
  }
  std::vector<std::vector<std::string>> rows{
      {"Machine", "Claims", "Stale", "Forced", "Blocked mean", "Blocked max", "Last stale"}};
  for (const auto& [name, m] : sorted_machines(s)) {
    rows.push_back({esc(name), std::to_string(m.claims), std::to_string(m.stale),
                    std::to_string(m.forced),
                    m.blocked_known ? duration_text(m.blocked_sum / m.blocked_known) : "-",
                    m.blocked_known ? duration_text(m.blocked_max) : "-",
                    m.last_stale ? local_time(std::to_string(*m.last_stale)) : "-"});
  }
  print_table(rows, {false, true, true, true, true, true, false});
  if (!s.jobs.empty()) {
    std::cout << "\nStale jobs by job text:\n";
    std::vector<std::vector<std::string>> jrows{{"Stale", "Machines", "Job"}};
    for (const auto& [job, js] : sorted_jobs(s)) {
      std::string machines;
      for (const auto& m : js.machines) machines += (machines.empty() ? "" : ",") + esc(m);
      jrows.push_back({std::to_string(js.stale), machines, esc(job)});
    }
    print_table(jrows, {true, false, false});
  }
  std::cout << "\nBlocked: from the stale job's start (job_timestamp) to when mama cleared it; "
               "an upper bound,\nsince when the job died is not recorded.\n";
}

// Prometheus text format (exposition format 0.0.4): a label value with \, " and line feed
// escaped; bytes that are not UTF-8 become U+FFFD (the format is UTF-8).
std::string prometheus_label(std::string_view value) {
  std::string out;
  for (std::size_t i = 0; i < value.size();) {
    const auto c = static_cast<unsigned char>(value[i]);
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c >= 0x80) {
      std::size_t len = c >= 0xc2 && c <= 0xdf   ? 2
                        : c >= 0xe0 && c <= 0xef ? 3
                        : c >= 0xf0 && c <= 0xf4 ? 4
                                                 : 0;
      bool ok = len > 0 && i + len <= value.size();
      for (std::size_t k = 1; ok && k < len; ++k)
        ok = (static_cast<unsigned char>(value[i + k]) & 0xc0) == 0x80;
      if (ok && len == 3) {
        const auto c1 = static_cast<unsigned char>(value[i + 1]);
        ok = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0);  // overlong, surrogate
      }
      if (ok && len == 4) {
        const auto c1 = static_cast<unsigned char>(value[i + 1]);
        ok = !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);
      }
      if (!ok) {
        out += "\xef\xbf\xbd";
        ++i;
        continue;
      }
      out.append(value.substr(i, len));
      i += len;
      continue;
    } else {
      out += static_cast<char>(c);
    }
    ++i;
  }
  return out;
}

class PrometheusText {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void sample(std::string_view name,
              const std::vector<std::pair<std::string_view, std::string_view>>& labels,
              double value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      for (std::size_t i = 0; i < labels.size(); ++i) {
        if (i) out_ += ',';
        out_ += labels[i].first;
        out_ += "=\"";
        out_ += prometheus_label(labels[i].second);
        out_ += '"';
      }
      out_ += '}';
    }
    char buf[64];  // whole numbers as such, seconds to the millisecond
    if (value == std::floor(value) && std::fabs(value) < 1e15)
      std::snprintf(buf, sizeof buf, " %.0f\n", value);
    else
      std::snprintf(buf, sizeof buf, " %.3f\n", value);
    out_ += buf;
  }
  const std::string& text() const { return out_; }

 private:
  std::string out_;
};

// Which machines hold a live job now (running, on another host, or a record mama cannot
// judge), decided as `list` decides.
template <class Store>
std::vector<std::pair<std::string, bool>> busy_machines(Context& ctx, Store& store) {
  auto tx = store.begin();
  std::vector<std::pair<std::string, bool>> out;
  for (const auto& m : tx.machines()) {
    if (m.name.empty()) continue;
    const auto a = assess_machine(ctx, store, tx, m.name, m.job, HoldProbe::token_records).assessment;
    out.emplace_back(m.name, a.busy());
  }
  return out;
}

void print_prometheus(Context& ctx, const Stats& s, const std::string& only) {
  auto busy = ctx.with_store([&](auto& store) { return busy_machines(ctx, store); });
  std::sort(busy.begin(), busy.end());
  PrometheusText p;
  p.family("mama_stale_jobs_detected_total", "counter",
           "Stale jobs mama detected (and cleared), by machine and reason, from the audit log.");
  for (const auto& [key, count] : s.detected)
    p.sample("mama_stale_jobs_detected_total", {{"machine", key.first}, {"reason", key.second}},
             static_cast<double>(count));
  p.family("mama_forced_clears_total", "counter",
           "Live jobs cleared with clear --force, by machine, from the audit log.");
  for (const auto& [name, m] : s.machines)
    p.sample("mama_forced_clears_total", {{"machine", name}}, static_cast<double>(m.forced));
  p.family("mama_claims_total", "counter", "Claims of a machine, from the audit log.");
  for (const auto& [name, m] : s.machines)
    p.sample("mama_claims_total", {{"machine", name}}, static_cast<double>(m.claims));
  p.family("mama_claim_waits_total", "counter",
           "Claims that had to wait for a busy machine (a waiting event before the claim), "
           "from the audit log.");
  for (const auto& [name, m] : s.machines)
    p.sample("mama_claim_waits_total", {{"machine", name}}, static_cast<double>(m.waited_claims));
  p.family("mama_claim_wait_seconds_total", "counter",
           "Time claims waited for a busy machine, from the audit log.");
  for (const auto& [name, m] : s.machines)
    p.sample("mama_claim_wait_seconds_total", {{"machine", name}},
             static_cast<double>(m.waited_ms) / 1000.0);
  p.family("mama_machine_busy", "gauge",
           "1 when the machine holds a live job now (from the state file), else 0.");
  std::size_t busy_count = 0;
  for (const auto& [name, is_busy] : busy) {
    if (!only.empty() && name != only) continue;
    busy_count += is_busy ? 1 : 0;
    p.sample("mama_machine_busy", {{"machine", name}}, is_busy ? 1 : 0);
  }
  p.family("mama_machines_busy", "gauge", "Machines that hold a live job now.");
  p.sample("mama_machines_busy", {}, static_cast<double>(busy_count));
  p.family("mama_audit_log_malformed_lines", "gauge",
           "Lines of the audit log that could not be read (skipped).");
  p.sample("mama_audit_log_malformed_lines", {}, static_cast<double>(s.malformed));
  std::cout << p.text() << std::flush;
}

int run_stats(Context& ctx, const StatsArgs& args) {
  const auto path = ctx.audit.log_path(ctx);
  if (!path)
    throw error(errc::invalid_argument,
                ctx.state_is_database()
                    ? "a PostgreSQL state has no default audit log; give the log to read with "
                      "--audit-log FILE (or MAMA_AUDIT_LOG)"
                    : "the audit log is turned off (--no-audit-log or MAMA_AUDIT_LOG=off); give "
                      "the log to read with --audit-log FILE");
  std::optional<std::int64_t> since;
  if (!args.since.empty()) since = since_seconds(args.since);
  Stats s;
  s.files = audit_generations(*path, AuditSettings::generations);
  if (s.files.empty())
    throw error(errc::io_error,
                "no audit log at " + path->string() +
                    " yet: mama writes it when jobs are claimed, released or cleared (or give "
                    "another log with --audit-log FILE)");
  for (const auto& f : s.files) {
    std::ifstream in(f);
    if (!in) throw_errno("cannot read the audit log " + f.string());
    std::string line;
    while (std::getline(in, line)) add_line(s, line, since, args.machine);
  }
  if (args.prometheus)
    print_prometheus(ctx, s, args.machine);
  else if (args.json)
    print_json_stats(s, since);
  else
    print_text_stats(s, since, args.since);
  return exit_status::ok;
}

}  // namespace

void add_stats_command(CLI::App& app, Context& ctx, Action& selected) {
  (void)ctx;
  auto args = std::make_shared<StatsArgs>();
  auto* cmd = app.add_subcommand(
      "stats",
      "From the audit log: per machine the claims, stale jobs cleared and how long they "
      "blocked it; per job how often it was left stale");
  cmd->add_option("--since", args->since,
                  "Only events since DURATION ago (7d, 24h, 30m, 2w) or since DATE (2025-11-13, "
                  "'2025-11-13 08:00', local time); default: all")
      ->type_name("DURATION|DATE")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            if (since_seconds(v)) return {};
            return "'" + esc(v) +
                   "' is neither a duration (7d, 24h, 30m, 2w) nor a date "
                   "(2025-11-13, '2025-11-13 08:00')";
          },
          ""));
  cmd->add_option("--machine", args->machine, "Only this machine (its name)")->type_name("M");
  auto* json = cmd->add_flag("--json", args->json, "Print JSON instead of tables");
  cmd->add_flag("--prometheus", args->prometheus,
                "Print counters over the whole log and which machines are busy now, in the "
                "Prometheus text format (for node_exporter's textfile collector)")
      ->excludes(json)
      ->excludes("--since");
  cmd->callback(
      [&selected, args] { selected = [args](Context& c) { return run_stats(c, *args); }; });
}

}  // namespace mama::cli
