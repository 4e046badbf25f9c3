// I5 for real: the PHP mama tool's save (php_saver.php: flock, read through the lock, rebuild
// one machine, reformat, truncate and rewrite in place) runs in a loop on one machine while this
// library claims and releases another machine of the same mama.xml. No update of either side
// may be lost: PHP's counter ends at its iteration count, every C++ claim is in the file while
// it holds the machine and gone after its release, and the file stays valid throughout (PHP
// refuses a file without </settings>, and would fail the run).
#include <spawn.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <mama/guard.hpp>
#include <string>

#include "support.hpp"

extern char** environ;

namespace {

constexpr int php_iterations = 500;
constexpr int min_cpp_claims = 200;

const char* initial =
    "<?xml version=\"1.0\"?>\n"
    "<settings>\n"
    "  <machine>\n"
    "    <name>php-m</name>\n"
    "    <mac>aa:bb:cc:00:00:01</mac>\n"
    "    <ip>10.9.0.1</ip>\n"
    "    <arch>x86_64</arch>\n"
    "    <job/>\n"
    "    <job_pid/>\n"
    "    <start_timeout>240</start_timeout>\n"
    "  </machine>\n"
    "  <machine>\n"
    "    <name>cpp-m</name>\n"
    "    <mac>aa:bb:cc:00:00:02</mac>\n"
    "    <ip>10.9.0.2</ip>\n"
    "    <rack>row 7</rack>\n"
    "    <job/>\n"
    "    <job_pid/>\n"
    "    <start_timeout>120</start_timeout>\n"
    "  </machine>\n"
    "  <resource>\n"
    "    <name>usb-hub</name>\n"
    "  </resource>\n"
    "</settings>\n";

}  // namespace

TEST_CASE("the PHP tool's saves and the library's claims on one file lose no update",
          "[php][xml]") {
  mama::test::TempDir dir;
  const auto state = dir / "mama.xml";
  mama::test::write_file(state, initial);

  const std::string iterations = std::to_string(php_iterations);
  const char* argv[] = {MAMA_PHP, MAMA_PHP_SAVER,     state.c_str(),
                        "php-m",  iterations.c_str(), nullptr};
  pid_t php = -1;
  REQUIRE(::posix_spawn(&php, MAMA_PHP, nullptr, nullptr, const_cast<char**>(argv), environ) == 0);

  mama::XmlStateStore store(state);
  mama::GuardOptions g;
  g.poll_interval = std::chrono::milliseconds(20);
  g.on_event = [](const mama::Event&) {};
  int claims = 0, seen_while_held = 0, gone_after_release = 0, claims_while_php_ran = 0;
  int php_status = -1;
  bool php_running = true;
  while (php_running || claims < min_cpp_claims) {
    g.job = "cpp claim " + std::to_string(claims);
    std::string token;
    {
      mama::StaleJobGuard<> guard(store, "cpp-m", g);
      token = guard.token();
      ++claims;
      if (php_running) ++claims_while_php_ran;
      auto tx = store.begin();
      const auto r = tx.find("cpp-m");
      if (r && r->token == token && r->job == g.job) ++seen_while_held;
    }
    {
      auto tx = store.begin();
      const auto r = tx.find("cpp-m");
      if (r && r->idle()) ++gone_after_release;
    }
    if (php_running && ::waitpid(php, &php_status, WNOHANG) == php) php_running = false;
  }
  INFO(claims_while_php_ran << " of " << claims << " C++ claims ran while PHP was saving");
  REQUIRE(WIFEXITED(php_status));
  CHECK(WEXITSTATUS(php_status) == 0);  // PHP never saw a truncated or invalid file
  CHECK(seen_while_held == claims);
  CHECK(gone_after_release == claims);

  auto tx = store.begin();
  const auto machines = tx.machines();
  REQUIRE(machines.size() == 2);
  // PHP rebuilt its machine at the end of <settings>, with its counter at the iteration count.
  CHECK(machines[0].name == "cpp-m");
  CHECK(machines[1].name == "php-m");
  CHECK(machines[1].field("start_timeout") == std::to_string(240 + php_iterations));
  CHECK(machines[1].job.job == "php iteration " + std::to_string(php_iterations - 1));
  CHECK(machines[1].job.pid == std::to_string(php));
  CHECK(machines[1].field("ip") == "10.9.0.1");
  // The library's machine kept every field, the unknown one included, and is idle.
  CHECK(machines[0].job.idle());
  CHECK(machines[0].field("rack") == "row 7");
  CHECK(machines[0].field("start_timeout") == "120");
  const std::string text = mama::test::read_file(state);
  CHECK(text.rfind("<?xml version=\"1.0\"?>", 0) == 0);
  CHECK(text.find("<name>usb-hub</name>") != std::string::npos);
}
