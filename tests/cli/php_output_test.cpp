// `mama list` and `mama info` against the PHP tool's own code (SPEC §6): the PHP tool's
// src/main.php cmd_list and src/machine.php print_info run in php (php/php_tool_output.php, with
// stand-ins for ping, nc and ip first on PATH) on copies of the sample labs, and our output must
// equal theirs byte for byte except for the differences the README lists:
//   - list: the State column (the PHP tool pings: here `-`); the ` [STALE]`/` [UNKNOWN]` marks
//     (decided by SPEC §3 here, by the PHP tool's own rule there); a cell the PHP tool cuts inside
//     a UTF-8 character is cut before that character here (and padded to the same width);
//   - machines that share a MAC address (or have none): the PHP tool reloads each machine by its
//     MAC while it prints it, and so prints the first of them (in name order) in their place;
//     only that first one is compared;
//   - info: `Status:` (`-` here); `Job status:` (always for a job here, only for a stale job
//     there), `Job started:` and `Job host:` (added here); the PHP tool's `Power sensors:` block
//     (it asks the power device).
// Skipped (CTest skip status 77) when php or the PHP tool's sources (../shared/php-mama/src, or
// $MAMA_PHP_TOOL_SRC) are absent.
#define CATCH_CONFIG_RUNNER
#include <algorithm>
#include <catch2/catch.hpp>
#include <cctype>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mama_runner.hpp"

namespace fs = std::filesystem;
using namespace mama::test;

namespace {

std::string php_tool_src() {
  if (const char* s = std::getenv("MAMA_PHP_TOOL_SRC"); s && *s) return s;
  return MAMA_PHP_TOOL_SRC;
}

bool php_available() {
  return std::string(MAMA_PHP).size() > 0 && ::access(MAMA_PHP, X_OK) == 0 &&
         fs::exists(fs::path(php_tool_src()) / "main.php") &&
         fs::exists(fs::path(php_tool_src()) / "machine.php");
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < text.size()) {
    const auto nl = text.find('\n', at);
    if (nl == std::string::npos) {
      out.push_back(text.substr(at) + "<no newline>");
      break;
    }
    out.push_back(text.substr(at, nl - at));
    at = nl + 1;
  }
  return out;
}

// The length of an incomplete UTF-8 sequence at the end of `s` (0 when it ends on a whole
// character).
std::size_t partial_utf8_tail(std::string_view s) {
  std::size_t n = 0;
  while (n < s.size() && n < 4 && (static_cast<unsigned char>(s[s.size() - 1 - n]) & 0xc0) == 0x80)
    ++n;
  if (n == s.size()) return 0;
  const auto lead = static_cast<unsigned char>(s[s.size() - 1 - n]);
  const std::size_t want = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return want > n + 1 ? n + 1 : 0;
}

constexpr std::size_t widths[] = {4, 16, 16, 18, 8, 5, 6, 4};
constexpr std::size_t state_column = 4;

std::string strip_mark(std::string line) {
  for (const std::string mark : {" [STALE]", " [UNKNOWN]"})
    if (line.ends_with(mark)) line.resize(line.size() - mark.size());
  return line;
}

// A row of the PHP tool's table with the documented differences brought to ours: State as
// `-`, a cell cut inside a UTF-8 character cut before it, no mark.
std::string php_row_as_ours(std::string row) {
  row = strip_mark(row);
  std::size_t at = 0;
  for (std::size_t c = 0; c < 8 && at + widths[c] <= row.size(); ++c) {
    std::string cell = row.substr(at, widths[c] - 1);
    if (c == state_column) cell = "-";
    cell.resize(cell.size() - partial_utf8_tail(cell));
    cell.resize(widths[c], ' ');
    row.replace(at, widths[c], cell);
    at += widths[c];
  }
  return row;
}

struct Lab {
  TempDir dir;
  fs::path php_bin = dir / "bin";
  fs::path php_copy = dir / "php" / "mama.xml";
  fs::path our_copy = dir / "ours" / "mama.xml";

  explicit Lab(const std::string& content) {
    fs::create_directories(php_bin);
    fs::create_directories(php_copy.parent_path());
    fs::create_directories(our_copy.parent_path());
    // No network: ping and nc fail (the machine reads as offline), ip knows no neighbours.
    write_file(php_bin / "ping", "#!/bin/sh\nexit 1\n");
    write_file(php_bin / "nc", "#!/bin/sh\nexit 1\n");
    write_file(php_bin / "ip", "#!/bin/sh\nexit 0\n");
    for (const char* tool : {"ping", "nc", "ip"})
      fs::permissions(php_bin / tool, fs::perms::owner_all);
    // The PHP tool saves the machine's IP while it lists: it gets a copy of its own.
    write_file(php_copy, content);
    write_file(our_copy, content);
  }

  RunResult php(const std::vector<std::string>& command) {
    std::vector<std::string> argv{MAMA_PHP, MAMA_PHP_TOOL_OUTPUT, php_tool_src(),
                                  php_copy.string()};
    argv.insert(argv.end(), command.begin(), command.end());
    const char* path = std::getenv("PATH");
    return run_capture(
        argv, {"TZ=UTC", "PATH=" + php_bin.string() + ":" + (path ? path : "/usr/bin:/bin")});
  }

  RunResult ours(const std::vector<std::string>& command) {
    std::vector<std::string> args{"--state", our_copy.string(), "--no-audit-log"};
    args.insert(args.end(), command.begin(), command.end());
    return run_mama(args);
  }
};

struct Machine {
  std::string name;
  bool comparable;  // the first machine, in name order, with its MAC (see above)
};

// The machines in our (the PHP tool's) order.
std::vector<Machine> machines_of(Lab& lab) {
  const RunResult r = lab.ours({"list", "--json"});
  REQUIRE(r.status == 0);
  std::vector<std::pair<std::string, std::string>> listed;  // name, lower-case MAC
  const auto parsed = nlohmann::json::parse(r.out);
  for (const auto& m : parsed["machines"]) {
    std::string mac = m["fields"].value("mac", "");
    for (char& c : mac) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    listed.emplace_back(m["name"].get<std::string>(), mac);
  }
  // Sorted as `list` prints them: its row numbers give the order.
  const auto rows = lines_of(lab.ours({"list"}).out);
  REQUIRE(rows.size() == listed.size() + 2);
  std::vector<Machine> out;
  std::vector<std::string> macs_seen;
  for (std::size_t i = 2; i < rows.size(); ++i) {
    const std::string name_cell = rows[i].substr(4, 16);
    // The listed machine this row shows (its name cut as the Name cell cuts it).
    const auto it = std::find_if(listed.begin(), listed.end(), [&](const auto& m) {
      std::string cell = m.first.substr(0, 15);
      cell.resize(cell.size() - partial_utf8_tail(cell));
      cell.resize(16, ' ');
      return cell == name_cell;
    });
    REQUIRE(it != listed.end());
    const bool first = std::find(macs_seen.begin(), macs_seen.end(), it->second) == macs_seen.end();
    macs_seen.push_back(it->second);
    out.push_back({it->first, first});
    listed.erase(it);
  }
  return out;
}

void compare_list(Lab& lab, const std::vector<Machine>& machines) {
  const RunResult php = lab.php({"list"});
  INFO("PHP stderr: " << php.err);
  REQUIRE(php.status == 0);
  const RunResult ours = lab.ours({"list"});
  INFO("our stderr: " << ours.err);
  REQUIRE(ours.status == 0);
  const auto p = lines_of(php.out), o = lines_of(ours.out);
  REQUIRE(p.size() == o.size());
  REQUIRE(p.size() >= 2);
  CHECK(o[0] == p[0]);  // the header, Job padded to 32
  CHECK(o[1] == p[1]);  // the rule of 85 dashes
  CHECK(o[1] == std::string(85, '-'));
  for (std::size_t i = 2; i < p.size(); ++i) {
    if (!machines[i - 2].comparable) continue;
    INFO("row " << i - 1 << "\nPHP:  [" << p[i] << "]\nours: [" << o[i] << "]");
    CHECK(strip_mark(o[i]) == php_row_as_ours(p[i]));
  }
}

// Our `info` with the lines the PHP tool does not print removed; the PHP tool's with its
// network and power-device lines brought to ours.
void compare_info(Lab& lab, const std::string& machine) {
  const RunResult php = lab.php({"info", machine});
  INFO("machine " << machine << "\nPHP stderr: " << php.err);
  REQUIRE(php.status == 0);
  const RunResult ours = lab.ours({"info", machine});
  INFO("our stderr: " << ours.err);
  REQUIRE(ours.status == 0);
  std::vector<std::string> p, o;
  for (const auto& line : lines_of(php.out)) {
    if (line == "Power sensors:") break;  // the rest asks the power device
    if (line.starts_with("Job status:\t")) continue;
    p.push_back(line.starts_with("Status:\t\t") ? "Status:\t\t-" : line);
  }
  bool has_job = false, has_status = false;
  for (const auto& line : lines_of(ours.out)) {
    if (line.starts_with("Running job:\t")) has_job = true;
    if (line.starts_with("Job status:\t")) {
      has_status = true;
      continue;
    }
    if (line.starts_with("Job started:\t") || line.starts_with("Job host:\t")) continue;
    o.push_back(line);
  }
  CHECK(has_status == has_job);  // ours says RUNNING or STALE for every job
  REQUIRE(o.size() == p.size());
  for (std::size_t i = 0; i < p.size(); ++i) {
    INFO("line " << i + 1);
    CHECK(o[i] == p[i]);
  }
}

void compare_all(const std::string& content) {
  Lab lab(content);
  const auto machines = machines_of(lab);
  compare_list(lab, machines);
  for (const auto& m : machines)
    if (!m.name.empty() && m.comparable) compare_info(lab, m.name);
}

// Names in other scripts, values longer than their columns (cut inside a UTF-8 character by
// the PHP tool), every optional `info` line, numeric names (PHP compares them as numbers),
// upper-case MACs, is_started spelt `01`, a default start timeout and nested resources.
const char* utf8_lab = R"(<?xml version="1.0"?>
<settings>
  <machine>
    <name>Prüfstände-xÄö</name>
    <mac>AA:BB:CC:DD:EE:0F</mac>
    <ip>2001:db8:aaaa:bbbb::1</ip>
    <is_started>01</is_started>
    <only_vm>0</only_vm>
    <os>débian</os>
    <kernel>6.1.0-13-amd64</kernel>
    <reservation>Jürgen Groß</reservation>
    <resources>10 usb-hub</resources>
    <boot_params>console=ttyS0 quiet</boot_params>
    <job>prüfung ünd täst — 長い仕事の名前</job>
    <job_pid>4194305</job_pid>
    <start_timeout/>
  </machine>
  <machine>
    <name>L测试机器一号测试机器二号</name>
    <mac>aa:bb:cc:dd:ee:10</mac>
    <ip>10.1.2.3</ip>
    <is_started>1</is_started>
    <only_vm>1</only_vm>
    <rly_dev>usbrly</rly_dev>
    <rly_slot>2</rly_slot>
    <startcmd>virsh start 测试</startcmd>
    <stopcmd>virsh destroy 测试</stopcmd>
    <vm_params>-m 2048 -name ünïcödé</vm_params>
    <job/>
    <job_pid/>
    <start_timeout>600</start_timeout>
  </machine>
  <machine>
    <name>10</name>
    <mac>aa:bb:cc:dd:ee:11</mac>
    <ip>10.1.2.10</ip>
    <resources>9</resources>
  </machine>
  <machine>
    <name>9</name>
    <mac>aa:bb:cc:dd:ee:12</mac>
    <ip>10.1.2.9</ip>
    <is_started> 1</is_started>
    <resources>pdu-7</resources>
  </machine>
  <machine>
    <name>a-very-long-machine-name-indeed</name>
    <mac>aa:bb:cc:dd:ee:13:ff:ff</mac>
    <ip>192.168.100.200.300</ip>
    <job>x</job>
  </machine>
</settings>
)";

}  // namespace

TEST_CASE("list and info print what the PHP tool prints on the sample lab", "[cli][php]") {
  compare_all(read_file(MAMA_SAMPLE_LAB));
}

TEST_CASE("list and info print what the PHP tool prints on the test data files", "[cli][php]") {
  for (const auto& entry : fs::directory_iterator(MAMA_TEST_DATA_DIR)) {
    if (entry.path().extension() != ".xml") continue;
    INFO("file " << entry.path());
    compare_all(read_file(entry.path()));
  }
}

TEST_CASE("list and info match the PHP tool with UTF-8 names and long values", "[cli][php]") {
  compare_all(utf8_lab);
  // Ours never cuts inside a character: every row is valid UTF-8 and its Name cell the
  // PHP tool's width in bytes.
  Lab lab(utf8_lab);
  const auto rows = lines_of(lab.ours({"list"}).out);
  REQUIRE(rows.size() == 7);
  CHECK(rows[2].starts_with("1   9               "));  // 9 < 10, as PHP compares numbers
  CHECK(rows[3].starts_with("2   10              "));
  // 15 bytes would end inside "Ä" or "一": the cell ends before it, padded to 16 bytes.
  CHECK(rows[4].substr(4, 16) == "L测试机器   ");
  CHECK(rows[5].substr(4, 16) == "Prüfstände-x  ");
  CHECK(rows[6].substr(4, 16) == "a-very-long-mac ");
}

int main(int argc, char** argv) {
  if (!php_available()) {
    std::cerr << "skipped: needs php (" << MAMA_PHP << ") and the PHP tool's sources in "
              << php_tool_src() << " (set MAMA_PHP_TOOL_SRC)\n";
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
