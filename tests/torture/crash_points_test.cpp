// Crash points, many randomized runs: a child process claims or releases a machine of a real
// mama.xml and is SIGKILLed at one step of the save (MAMA_CRASH_AT for claims, the crash_hook
// option for releases). The next access must find exactly the old or exactly the new content,
// never a truncated file, and the machine must then be claimable at once (its holder is dead).
// MAMA_CRASH_RUNS sets the runs per step and operation (default 8; the long run used 500).
#include <signal.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <mama/guard.hpp>
#include <random>
#include <string>

#include "support.hpp"

namespace {

using mama::SaveStep;
using mama::test::read_file;
using mama::test::TempDir;
using mama::test::write_file;

constexpr SaveStep all_steps[] = {SaveStep::journal_written, SaveStep::journal_renamed,
                                  SaveStep::file_truncated,  SaveStep::file_half_written,
                                  SaveStep::file_written,    SaveStep::journal_removed};

// A random lab: 1-8 machines with random unknown fields, comments and padding, a resource, and
// sometimes a stale legacy job on the target machine (the claim then clears it in the same save).
std::string random_lab(std::mt19937& rng, int& machines) {
  machines = 1 + static_cast<int>(rng() % 8);
  std::string s = "<?xml version=\"1.0\"?>\n<settings>\n";
  for (int i = 0; i < machines; ++i) {
    s += "  <machine>\n    <name>m" + std::to_string(i) + "</name>\n    <ip>10.1.0." +
         std::to_string(i) + "</ip>\n";
    const int extras = static_cast<int>(rng() % 6);
    for (int k = 0; k < extras; ++k)
      s += "    <x" + std::to_string(k) + ">" + std::string(rng() % 3000, 'a' + k) + "</x" +
           std::to_string(k) + ">\n";
    if (rng() % 3 == 0) s += "    <!-- note " + std::to_string(rng()) + " -->\n";
    if (i == 0 && rng() % 2)
      s += "    <job>old job</job>\n    <job_pid>2147483000</job_pid>\n";
    else
      s += "    <job/>\n";
    s += "    <start_timeout>240</start_timeout>\n  </machine>\n";
  }
  s += "  <resource><name>r" + std::to_string(rng() % 100) + "</name></resource>\n</settings>\n";
  return s;
}

// The new content a save journaled: the journal holds the tail after the save's cut, the bytes
// before it are the old content's.
std::optional<std::string> journal_content(const std::filesystem::path& state,
                                           const std::string& old_content) {
  for (const char* name : {"journal", "journal.tmp"}) {
    const auto p = std::filesystem::path(state.string() + ".d") / name;
    if (!std::filesystem::exists(p)) continue;
    const std::string j = read_file(p);
    const auto entry = mama::detail::journal_content(j);
    if (entry && entry->cut <= old_content.size())
      return old_content.substr(0, entry->cut) + std::string(entry->tail);
  }
  return std::nullopt;
}

std::vector<mama::MachineInfo> machines_of(const std::filesystem::path& state) {
  mama::XmlStateStore store(state);
  return store.begin().machines();
}

void quiet(const mama::Event&) {}

}  // namespace

TEST_CASE("a save killed at any step leaves the old or the new content, and nothing stuck",
          "[crash][torture]") {
  const char* env = std::getenv("MAMA_CRASH_RUNS");
  const int runs = env ? std::atoi(env) : 8;
  const unsigned seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937 rng(seed);
  int total = 0;

  for (const SaveStep step : all_steps) {
    for (const bool release : {false, true}) {
      for (int run = 0; run < runs; ++run) {
        INFO("step " << mama::to_string(step) << (release ? " of a release" : " of a claim")
                     << ", run " << run);
        TempDir dir;
        const auto state = dir / "mama.xml";
        int count = 0;
        const std::string initial = random_lab(rng, count);
        write_file(state, initial);
        const std::string machine = "m" + std::to_string(rng() % count);
        const auto old_path = dir / "old";

        mama::test::Child child([&] {
          mama::GuardOptions g;
          g.job = "crash test";
          g.on_event = quiet;
          if (!release) {
            write_file(old_path, read_file(state));
            ::setenv("MAMA_CRASH_AT", std::string(mama::to_string(step)).c_str(), 1);
            mama::XmlStateStore store(state);
            mama::StaleJobGuard<> guard(store, machine, g);
            return 10;  // not reached: the claim's save kills us
          }
          bool armed = false;
          mama::XmlStoreOptions o;
          o.crash_hook = [&](SaveStep s) {
            if (armed && s == step) ::kill(::getpid(), SIGKILL);
          };
          mama::XmlStateStore store(state, o);
          mama::StaleJobGuard<> guard(store, machine, g);
          write_file(old_path, read_file(state));
          armed = true;
          guard.release();
          return 11;  // not reached
        });
        const int status = child.wait();
        REQUIRE(WIFSIGNALED(status));
        REQUIRE(WTERMSIG(status) == SIGKILL);
        ++total;

        const std::string old_content = read_file(old_path);
        const auto journal = journal_content(state, old_content);
        const std::string raw_after_crash = read_file(state);

        // The next access (a plain read by a writable user) finishes or discards the save.
        { mama::XmlStateStore(state).begin(); }
        const std::string now = read_file(state);
        CHECK_FALSE(
            std::filesystem::exists(std::filesystem::path(state.string() + ".d") / "journal"));
        CHECK(now.find("</settings>") != std::string::npos);  // what the PHP tool insists on
        switch (step) {
          case SaveStep::journal_written:
          case SaveStep::journal_renamed:
            CHECK(now == old_content);
            break;
          case SaveStep::file_truncated:
          case SaveStep::file_half_written:
          case SaveStep::file_written:
            REQUIRE(journal);
            CHECK(now == *journal);
            CHECK(now != old_content);
            break;
          case SaveStep::journal_removed:
            CHECK(now == raw_after_crash);
            CHECK(now != old_content);
            break;
        }

        // I3: every other machine is as it was; the target differs at most in its job fields.
        mama::XmlStateStore initial_store(old_path);
        const auto before = initial_store.begin().machines();
        const auto after = machines_of(state);
        REQUIRE(before.size() == after.size());
        for (std::size_t i = 0; i < before.size(); ++i) {
          CHECK(before[i].name == after[i].name);
          CHECK(before[i].fields == after[i].fields);
          if (before[i].name != machine) CHECK(before[i].job == after[i].job);
        }
        // A new or old record for the dead child: either way the machine is free at once (I2).
        mama::GuardOptions g;
        g.job = "after the crash";
        g.on_event = quiet;
        auto next = mama::StaleJobGuard<>::try_claim(mama::XmlStateStore(state), machine, g);
        CHECK(next.has_value());
      }
    }
  }
  CHECK(total == runs * 12);
}
