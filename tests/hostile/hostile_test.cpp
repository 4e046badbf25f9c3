// Hostile state files and strings: entity expansion, external entities, very deep nesting, a
// 100 MB file, NUL and control characters, terminal escape sequences. Each case must end (CTest
// TIMEOUT bounds it), keep memory bounded, read nothing outside the file, refuse with a clear
// error that names the file (leaving it byte for byte as it was) or work without losing
// anything, and print strings from the file escaped.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <mama/guard.hpp>
#include <sstream>
#include <string>

#include "support.hpp"

namespace {

using mama::test::read_file;
using mama::test::TempDir;
using mama::test::write_file;

long max_rss_kib() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

// Claims `machine` (clearing a stale job), releases it, and returns every line the default
// event handler would have printed.
std::string claim_and_release(const std::filesystem::path& state, const std::string& machine) {
  std::ostringstream printed;
  mama::GuardOptions g;
  g.job = "hostile test";
  g.on_event = [&](const mama::Event& e) { mama::default_event_handler(e, printed); };
  {
    auto guard = mama::StaleJobGuard<>::try_claim(mama::XmlStateStore(state), machine, g);
    REQUIRE(guard.has_value());
  }
  return printed.str();
}

// Runs the CLI (when it was built) and returns its stdout and stderr.
std::string run_cli(const std::string& args) {
  std::string out;
#ifdef MAMA_CLI_PATH
  if (std::string_view(MAMA_CLI_PATH).empty()) return out;
  FILE* p = ::popen((std::string(MAMA_CLI_PATH) + " " + args + " 2>&1").c_str(), "r");
  if (!p) return out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
#else
  (void)args;
#endif
  return out;
}

bool cli_built() {
#ifdef MAMA_CLI_PATH
  return !std::string_view(MAMA_CLI_PATH).empty();
#else
  return false;
#endif
}

// True when `text` has no byte that a terminal acts on: C0 but '\n' and '\t' (the PHP tool's
// `info` labels end in tabs; a tab from the file is printed as \t), DEL, C1 (in UTF-8 or as a
// lone 8-bit byte such as 0x9b), bytes that are not UTF-8, or bidi controls.
bool terminal_safe(const std::string& text) {
  for (std::size_t i = 0; i < text.size();) {
    char32_t cp = 0;
    const std::size_t len = mama::detail::utf8_decode(text, i, cp);
    if (len == 0) return false;
    if ((cp < 0x20 && cp != '\n' && cp != '\t') || (cp >= 0x7f && cp <= 0x9f)) return false;
    if (mama::detail::is_bidi_or_separator(cp)) return false;
    i += len;
  }
  return true;
}

// Either the file is refused with a mama::error naming it and stays byte for byte, or `ok` runs.
template <class F>
void refused_unchanged_or(const std::filesystem::path& state, F ok) {
  const std::string before = read_file(state);
  try {
    mama::XmlStateStore(state).begin();
  } catch (const mama::error& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find(state.string()) != std::string::npos);
    CHECK(read_file(state) == before);
    return;
  }
  ok();
}

}  // namespace

TEST_CASE("entity definitions in a DOCTYPE are never expanded", "[hostile][xml]") {
  TempDir dir;
  const auto state = dir / "mama.xml";
  std::string doc = "<?xml version=\"1.0\"?>\n<!DOCTYPE settings [\n  <!ENTITY lol \"lol\">\n";
  std::string prev = "lol";
  for (int i = 1; i <= 9; ++i) {
    const std::string name = "lol" + std::to_string(i);
    doc += "  <!ENTITY " + name + " \"";
    for (int k = 0; k < 10; ++k) doc += "&" + prev + ";";
    doc += "\">\n";
    prev = name;
  }
  doc +=
      "]>\n<settings>\n  <machine>\n    <name>m</name>\n    <ip>&lol9;</ip>\n"
      "    <job>&lol9;</job>\n    <job_pid>2147483000</job_pid>\n  </machine>\n</settings>\n";
  write_file(state, doc);
  const long rss_before = max_rss_kib();

  refused_unchanged_or(state, [&] {
    {
      auto tx = mama::XmlStateStore(state).begin();
      const auto machines = tx.machines();
      REQUIRE(machines.size() == 1);
      CHECK(machines[0].field("ip").size() < 64);
      CHECK(machines[0].job.job.size() < 64);
    }
    const std::string printed = claim_and_release(state, "m");
    CHECK(printed.size() < 400);
    const std::string after = read_file(state);
    CHECK(after.size() < doc.size() + 1024);
    CHECK(after.find("lollollol") == std::string::npos);
  });
  // A billion "lol"s would be gigabytes.
  CHECK(max_rss_kib() - rss_before < 64 * 1024);
}

TEST_CASE("an external entity never pulls another file into the state or the output",
          "[hostile][xml]") {
  TempDir dir;
  const auto state = dir / "mama.xml";
  const auto secret = dir / "secret.txt";
  write_file(secret, "TOP-SECRET-CONTENT-4711\n");
  const std::string doc =
      "<?xml version=\"1.0\"?>\n<!DOCTYPE settings [\n"
      "  <!ENTITY xxe SYSTEM \"file://" +
      secret.string() +
      "\">\n"
      "  <!ENTITY pwd SYSTEM \"file:///etc/passwd\">\n]>\n"
      "<settings>\n  <machine>\n    <name>m</name>\n    <ip>&pwd;</ip>\n"
      "    <job>job &xxe; &pwd;</job>\n    <job_pid>2147483000</job_pid>\n  </machine>\n"
      "</settings>\n";
  write_file(state, doc);
  const std::string passwd_line = [] {
    std::istringstream in(read_file("/etc/passwd"));
    std::string first;
    std::getline(in, first);
    return first;  // e.g. root:x:0:0:root:/root:/bin/bash
  }();
  REQUIRE_FALSE(passwd_line.empty());
  auto leaks = [&](const std::string& text) {
    return text.find("TOP-SECRET") != std::string::npos ||
           text.find(passwd_line) != std::string::npos;
  };

  refused_unchanged_or(state, [&] {
    {
      auto tx = mama::XmlStateStore(state).begin();
      for (const auto& m : tx.machines()) {
        CHECK_FALSE(leaks(m.job.job));
        for (const auto& [k, v] : m.fields) CHECK_FALSE(leaks(v));
      }
    }
    if (!cli_built()) {
      mama::test::skip_check("the mama CLI was not built: its output is not checked for leaks");
    } else {
      CHECK_FALSE(leaks(run_cli("--state " + state.string() + " list")));
      CHECK_FALSE(leaks(run_cli("--state " + state.string() + " info m")));
      CHECK_FALSE(leaks(run_cli("--state " + state.string() + " list --json")));
    }
    const std::string printed = claim_and_release(state, "m");
    CHECK(printed.find("Detected stale job") != std::string::npos);
    CHECK_FALSE(leaks(printed));
    CHECK_FALSE(leaks(read_file(state)));
  });
}

TEST_CASE("100,000 levels of nesting are read and written back, or refused, without a crash",
          "[hostile][xml]") {
  TempDir dir;
  const auto state = dir / "mama.xml";
  constexpr int depth = 100000;
  std::string deep;
  deep.reserve(depth * 7);
  for (int i = 0; i < depth; ++i) deep += "<x>";
  deep += "core";
  for (int i = 0; i < depth; ++i) deep += "</x>";
  const std::string doc =
      "<?xml version=\"1.0\"?>\n<settings>\n  <machine>\n    <name>m</name>\n"
      "    <extra>" +
      deep + "</extra>\n    <job/>\n  </machine>\n  <deep>" + deep + "</deep>\n</settings>\n";
  write_file(state, doc);
  // In a child process: a recursion that overflows the stack shows as a signal, not a lost run.
  mama::test::Child child([&] {
    refused_unchanged_or(state, [&] {
      claim_and_release(state, "m");
      const std::string after = read_file(state);
      // Both deep subtrees are still there, byte for byte.
      if (after.find("<extra>" + deep + "</extra>") == std::string::npos) ::_exit(3);
      if (after.find("<deep>" + deep + "</deep>") == std::string::npos) ::_exit(4);
    });
    return 0;
  });
  const int status = child.wait();
  INFO("wait status " << status);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a 100 MB state file is refused at once with a clear error and bounded memory",
          "[hostile][xml]") {
  TempDir dir;
  const auto state = dir / "mama.xml";
  {
    std::ofstream out(state, std::ios::binary);
    out << "<?xml version=\"1.0\"?>\n<settings>\n  <machine><name>m</name><job/></machine>\n<!--";
    const std::string chunk(1 << 20, 'a');
    for (int i = 0; i < 100; ++i) out << chunk;
    out << "-->\n</settings>\n";
    REQUIRE(out);
  }
  const auto size = std::filesystem::file_size(state);
  REQUIRE(size > 100u * 1000 * 1000);
  const auto mtime = std::filesystem::last_write_time(state);
  const long rss_before = max_rss_kib();
  std::string message;
  try {
    mama::XmlStateStore(state).begin();
  } catch (const mama::error& e) {
    message = e.what();
  }
  INFO(message);
  CHECK(message.find(state.string()) != std::string::npos);
  CHECK(message.find("larger than") != std::string::npos);
  // The claim path refuses it too, and names the file.
  mama::GuardOptions g;
  g.on_event = [](const mama::Event&) {};
  CHECK_THROWS_WITH(mama::StaleJobGuard<>(mama::XmlStateStore(state), "m", g),
                    Catch::Contains(state.string()));
  CHECK(max_rss_kib() - rss_before < 16 * 1024);  // nothing near 100 MB was read
  CHECK(std::filesystem::file_size(state) == size);
  CHECK(std::filesystem::last_write_time(state) == mtime);
}

TEST_CASE("NUL bytes never make a claim lose bytes of the file", "[hostile][xml]") {
  TempDir dir;
  const auto state = dir / "mama.xml";
  using namespace std::string_literals;
  const std::string head = "<?xml version=\"1.0\"?>\n<settings>\n  <machine>\n    <name>m</name>\n";
  const std::string tail =
      "    <job>nul\0job"s + "</job>\n    <job_pid>2147483000</job_pid>\n  </machine>\n";
  SECTION("a NUL inside a field") {
    const std::string ip = "    <ip>10.0\0.0.1</ip>\n"s;
    write_file(state, head + ip + tail + "</settings>\n");
    refused_unchanged_or(state, [&] {
      CHECK(terminal_safe(claim_and_release(state, "m")));
      CHECK(read_file(state).find(ip) != std::string::npos);
    });
  }
  SECTION("a NUL and more text after </settings>") {
    const std::string after_root = "</settings>\n\0<!-- after a NUL -->\n"s;
    write_file(state, head + tail + after_root);
    refused_unchanged_or(state, [&] {
      CHECK(terminal_safe(claim_and_release(state, "m")));
      const std::string now = read_file(state);
      CHECK(now.substr(now.size() - after_root.size()) == after_root);
    });
  }
}

TEST_CASE("control characters in other fields survive a claim byte for byte", "[hostile][xml]") {
  TempDir dir;
  const auto state = dir / "mama.xml";
  const std::string note =
      "    <note>bell\x07 vt\x0b ff\x0c del\x7f esc\x1b[1m &#1;&#x1f;</note>\n";
  write_file(state, "<?xml version=\"1.0\"?>\n<settings>\n  <machine>\n    <name>m</name>\n" +
                        note +
                        "    <job>\x01job\x1b[1m</job>\n    <job_pid>2147483000</job_pid>\n"
                        "  </machine>\n</settings>\n");
  refused_unchanged_or(state, [&] {
    CHECK(terminal_safe(claim_and_release(state, "m")));
    CHECK(read_file(state).find(note) != std::string::npos);
  });
}

TEST_CASE("terminal escape sequences from the file are printed escaped", "[hostile][output]") {
  TempDir dir;
  const auto state = dir / "mama.xml";
  // OSC retitle, colour, clear screen, a fake second line, and CSI in its 8-bit (C1) form.
  const std::string evil =
      "\x1b]0;pwned\x07\x1b[31mred\x1b[2J\r\nDetected stale job: fake\xc2\x9b"
      "1m";
  const std::string doc =
      "<?xml version=\"1.0\"?>\n<settings>\n  <machine>\n    <name>m</name>\n"
      "    <ip>10.0.0.1</ip>\n    <job>" +
      evil +
      "</job>\n"
      "    <job_pid>2147483000</job_pid>\n  </machine>\n"
      "  <machine>\n    <name>n</name>\n    <job>&#27;[5mblink&#27;[0m</job>\n"
      "    <job_pid>2147483001</job_pid>\n  </machine>\n</settings>\n";
  write_file(state, doc);

  SECTION("the stale-job line") {
    mama::JobRecord r;
    r.job = evil;
    r.pid = "12\x1b[8m";
    const std::string line = mama::stale_job_line(r, "process not running");
    CHECK(terminal_safe(line));
    CHECK(line.find("\\e]0;pwned") != std::string::npos);
    CHECK(line.find("\\u009b") != std::string::npos);
    CHECK(line.find("\\r\\n") != std::string::npos);
  }
  SECTION("the guard's events when it clears such a job") {
    const std::string printed = claim_and_release(state, "m") + claim_and_release(state, "n");
    CHECK(terminal_safe(printed));
    CHECK(printed.find("\\e[31mred") != std::string::npos);
    CHECK(printed.find("\\e[5mblink") != std::string::npos);
  }
  SECTION("an unknown machine named with escapes") {
    mama::GuardOptions g;
    g.on_event = [](const mama::Event&) {};
    std::string message;
    try {
      mama::StaleJobGuard<>(mama::XmlStateStore(state), "\x1b[2Jgone", g);
    } catch (const mama::error& e) {
      message = e.what();
    }
    CHECK(message.find("\\e[2Jgone") != std::string::npos);
    CHECK(terminal_safe(message));
  }
  SECTION("mama list and mama info") {
    if (!cli_built()) {
      MAMA_SKIP("the mama CLI was not built: list/info not checked");
    }
    const std::string list = run_cli("--state " + state.string() + " list");
    INFO(list);
    CHECK(list.find("pwned") != std::string::npos);
    CHECK(terminal_safe(list));
    const std::string info = run_cli("--state " + state.string() + " info m");
    INFO(info);
    CHECK(info.find("pwned") != std::string::npos);
    CHECK(terminal_safe(info));
  }
}
