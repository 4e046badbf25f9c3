// What `mama wait` (and `mama run`, through the same reporter) shows while it waits for a busy
// machine: in a pipe or log, one line when the holder changes and otherwise one a minute (not one
// per second because "started N s ago" grew); on a terminal, one status line rewritten in place
// that fits the window's width, cut between two characters.
#include <pty.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <ctime>
#include <mama/xml_state_store.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "mama_runner.hpp"

namespace fs = std::filesystem;
using namespace mama::test;

namespace {

std::string now_stamp() { return std::to_string(std::time(nullptr)); }

// A lab whose machine `far` runs `job` on another host: RUNNING for as long as the test wants,
// never probed from here, started now (so "started N s ago" changes every second).
std::string remote_lab(const std::string& job) {
  return "<?xml version=\"1.0\"?>\n<settings>\n  <machine>\n    <name>far</name>\n"
         "    <mac>aa:bb:cc:00:00:01</mac>\n    <ip>10.0.0.1</ip>\n    <job>" +
         job + "</job>\n    <job_pid>4242</job_pid>\n    <job_timestamp>" + now_stamp() +
         "</job_timestamp>\n    <job_host>some-other-host</job_host>\n  </machine>\n</settings>\n";
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

struct TtyResult {
  int status = -1;
  std::string out;
};

// `mama args...` on a pseudo-terminal `columns` wide (stdout and stderr both).
TtyResult mama_on_tty(const std::vector<std::string>& args, unsigned short columns) {
  struct winsize ws {};
  ws.ws_col = columns;
  ws.ws_row = 24;
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, &ws);
  REQUIRE(pid >= 0);
  if (pid == 0) {
    prepare_child_env({"NO_COLOR=1"});
    exec_mama(args);
  }
  TtyResult r;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0) break;  // EIO once the child closed the terminal
    r.out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(master);
  int raw = 0;
  ::waitpid(pid, &raw, 0);
  r.status = exit_status_of(raw);
  return r;
}

// Terminal columns of `s` (escape sequences removed; East Asian wide characters count two);
// nullopt when `s` has a cut UTF-8 character.
std::optional<std::size_t> columns_of(const std::string& s) {
  std::size_t cols = 0;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0x1b) {  // CSI ... final byte
      i += 2;
      while (i < s.size() && !(s[i] >= 0x40 && s[i] <= 0x7e)) ++i;
      ++i;
      continue;
    }
    const std::size_t len = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    if ((c >= 0x80 && c < 0xc0) || i + len > s.size()) return std::nullopt;
    cols += len == 3 && c >= 0xe3 ? 2 : 1;  // the CJK test text: U+3000 and above
    i += len;
  }
  return cols;
}

}  // namespace

TEST_CASE("in a pipe, a holder that does not change is logged once, not once a second",
          "[cli][wait]") {
  TempDir dir;
  const fs::path file = dir / "mama.xml";
  write_file(file, remote_lab("nightly build"));
  const auto started = std::chrono::steady_clock::now();
  const Result r =
      run_mama({"--state", file.string(), "--no-audit-log", "wait", "far", "--timeout", "3.5"});
  const auto took = std::chrono::steady_clock::now() - started;
  INFO(r.err);
  CHECK(r.status == 3);
  CHECK(took >= std::chrono::seconds(3));
  // "started 0 s ago" ... "started 3 s ago": the same holder all along.
  CHECK(count_of(r.err, "mama: waiting for machine 'far'") == 1);
  CHECK(count_of(r.err, "mama: timed out after") == 1);
}

TEST_CASE("in a pipe, a new holder gets a new line", "[cli][wait]") {
  TempDir dir;
  const fs::path file = dir / "mama.xml";
  write_file(file, remote_lab("first job"));
  std::thread change([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    mama::XmlStateStore store(file);
    auto tx = store.begin();
    mama::JobRecord r = *tx.find("far");
    r.job = "second job";
    r.pid = "4343";
    tx.write("far", r);
    tx.commit();
  });
  const Result r =
      run_mama({"--state", file.string(), "--no-audit-log", "wait", "far", "--timeout", "3.5"});
  change.join();
  INFO(r.err);
  CHECK(r.status == 3);
  CHECK(count_of(r.err, "mama: waiting for machine 'far'") == 2);
  CHECK(count_of(r.err, "waiting for machine 'far': job 'first job' (PID 4242") == 1);
  CHECK(count_of(r.err, "waiting for machine 'far': job 'second job' (PID 4343") == 1);
}

TEST_CASE("on a terminal, one status line that fits the window, cut between characters",
          "[cli][wait]") {
  TempDir dir;
  const fs::path file = dir / "mama.xml";
  // Longer than the window, in ASCII, then in wide characters (2 columns, 3 bytes each).
  for (const std::string& job :
       {std::string(150, 'j'), std::string("長い仕事の名前長い仕事の名前長い仕事の名前長い仕事")}) {
    write_file(file, remote_lab(job));
    for (const unsigned short width : {40, 57}) {
      const TtyResult r = mama_on_tty(
          {"--state", file.string(), "--no-audit-log", "wait", "far", "--timeout", "2.2"}, width);
      INFO("width " << width << ", output:\n" << r.out);
      CHECK(r.status == 3);
      // Up to the error message, one line: rewritten with \r, never a line feed.
      const auto error_at = r.out.find("mama: timed out");
      REQUIRE(error_at != std::string::npos);
      const std::string status = r.out.substr(0, error_at);
      CHECK(count_of(status, "\r") >= 2);  // rewritten at least once (about once a second)
      CHECK(count_of(status, "\n") == 1);  // ended once, before the error
      std::size_t shown = 0;
      std::size_t begin = 0;
      while (begin <= status.size()) {
        auto end = status.find_first_of("\r\n", begin);
        if (end == std::string::npos) end = status.size();
        const std::string piece = status.substr(begin, end - begin);
        if (piece.find("Waiting for far") != std::string::npos) {
          ++shown;
          const auto cols = columns_of(piece);
          REQUIRE(cols);               // never cut inside a character
          CHECK(*cols < width);        // one column short: the terminal never wraps
          CHECK(*cols >= width - 2u);  // and no shorter than it must be
        }
        begin = end + 1;
      }
      CHECK(shown >= 2);
    }
  }
}
