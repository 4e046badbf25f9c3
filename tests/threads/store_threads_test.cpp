// Threads of one process using copies of one XmlStateStore (issue 12): transactions of two
// threads exclude each other (each opens its own descriptor, and flock is per open file
// description), and claims through copies of one store never overlap. Also built under
// ThreadSanitizer (store_threads_tsan_test), which fails on any data race in the store.
#include <atomic>
#include <catch2/catch.hpp>
#include <mama/guard.hpp>
#include <mama/xml_state_store.hpp>
#include <thread>
#include <vector>

#include "support.hpp"

namespace fs = std::filesystem;
using mama::XmlStateStore;
using mama::XmlStoreOptions;
using mama::test::read_file;
using mama::test::TempDir;
using mama::test::write_file;

namespace {

std::string sample(const std::string& name) {
  return read_file(fs::path(MAMA_TEST_DATA_DIR) / name);
}

// The real probe, except that each thread is its own "process": all threads share one PID, so
// with the real identity a thread would take another thread's claim for an ancestor's and
// nest inside it. Records of a fake PID carry a token, so the machine's hold judges them.
class ThreadProbe {
 public:
  explicit ThreadProbe(int fake_pid = 2'000'000'000) : self_{fake_pid, 1} {}
  mama::Liveness check(int pid, std::optional<std::uint64_t> start) const {
    if (pid >= 2'000'000'000) return mama::Liveness::alive;  // the threads live all test long
    return real_.check(pid, start);
  }
  mama::ProcessIdentity self() const { return self_; }
  std::string host_name() const { return real_.host_name(); }
  std::string boot_id() const { return real_.boot_id(); }
  bool is_ancestor(int pid, std::optional<std::uint64_t>) const { return pid == self_.pid; }

 private:
  mama::ProcProbe real_;
  mama::ProcessIdentity self_;
};

using ThreadGuard = mama::StaleJobGuard<mama::SystemClock, ThreadProbe, XmlStateStore>;

mama::GuardOptions quiet(std::string job) {
  mama::GuardOptions o;
  o.job = std::move(job);
  o.poll_interval = std::chrono::milliseconds(20);
  o.on_event = [](const mama::Event&) {};
  return o;
}

void run_threads(int n, const std::function<void(int)>& body) {
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) threads.emplace_back(body, i);
  for (auto& t : threads) t.join();
}

}  // namespace

TEST_CASE("two threads' transactions on copies of one store exclude each other", "[threads]") {
  TempDir dir;
  const auto file = dir / "mama.xml";
  write_file(file, sample("php_written.xml"));
  const auto mode =
      GENERATE(XmlStoreOptions::LockMode::shared_with_php, XmlStoreOptions::LockMode::standalone);
  XmlStoreOptions o;
  o.mode = mode;
  o.sync = false;
  XmlStateStore store(file, o);
  std::atomic<int> inside{0}, most{0};
  std::atomic<int> rounds{0};
  run_threads(4, [&](int) {
    XmlStateStore mine = store;  // a copy: shares the caches and options
    for (int i = 0; i < 40; ++i) {
      auto tx = mine.begin();
      const int now = ++inside;
      int seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      auto r = *tx.find("vm-1");
      r.job = r.job.empty() ? "1" : std::to_string(std::stoi(r.job) + 1);
      tx.write("vm-1", r);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      --inside;
      tx.commit();
      ++rounds;
    }
  });
  CHECK(most.load() == 1);
  CHECK(rounds.load() == 160);
  // Every increment survived: no two read-modify-writes interleaved.
  CHECK(XmlStateStore(file).begin().find("vm-1")->job == "160");
}

TEST_CASE("threads claiming one machine through copies of one store never hold it together",
          "[threads]") {
  TempDir dir;
  const auto file = dir / "mama.xml";
  write_file(file, sample("php_written.xml"));
  const auto mode =
      GENERATE(XmlStoreOptions::LockMode::shared_with_php, XmlStoreOptions::LockMode::standalone);
  XmlStoreOptions o;
  o.mode = mode;
  o.sync = false;
  XmlStateStore store(file, o);
  constexpr int threads = 4, rounds = 25;
  std::atomic<int> holders{0}, overlaps{0}, claims{0};
  run_threads(threads, [&](int t) {
    XmlStateStore mine = store;
    for (int i = 0; i < rounds; ++i) {
      ThreadGuard guard(mine, "vm-1", quiet("thread " + std::to_string(t)), {},
                        ThreadProbe(2'000'000'000 + t));
      if (++holders != 1) ++overlaps;
      ++claims;
      std::this_thread::sleep_for(std::chrono::microseconds(300));
      --holders;
    }
  });
  CHECK(overlaps.load() == 0);
  CHECK(claims.load() == threads * rounds);
  const auto after = *XmlStateStore(file).begin().find("vm-1");
  CHECK(after.idle());
  CHECK(after.token.empty());
}
