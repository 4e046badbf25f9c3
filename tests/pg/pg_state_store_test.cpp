// The PostgreSQL state store against a real server (started by the CTest fixture mama_pg, see
// start_server.sh): transactions, the SPEC §3 decisions through the guard, claims from two
// "hosts" (processes with different host identities), holders killed with SIGKILL or cut off
// the server, fencing on release (I4), and import/export of mama.xml.
#include "mama/pg_state_store.hpp"

#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <pugixml.hpp>
#include <string>
#include <thread>
#include <vector>

#include "mama/guard.hpp"
#include "mama/pg_import_export.hpp"
#include "support.hpp"

namespace {

using mama::Event;
using mama::EventKind;
using mama::JobRecord;
using mama::PgStateStore;
using mama::test::Child;
using mama::test::TempDir;
using namespace std::chrono_literals;

using FakeGuard = mama::StaleJobGuard<mama::ManualClock, mama::FakeProbe, PgStateStore>;
using HostGuard = mama::StaleJobGuard<mama::SystemClock, mama::FakeProbe, PgStateStore>;

std::string server_conninfo() {
  const char* file = std::getenv("MAMA_PG_CONNINFO_FILE");
  if (!file)
    FAIL("MAMA_PG_CONNINFO_FILE is not set: run this test through ctest (fixture mama_pg)");
  std::string text = mama::test::read_file(file);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  if (text.empty()) FAIL(std::string("no server connection string in ") + file);
  return text;
}

/// A lab of its own: a fresh schema (search_path) and a lock space no other lab uses.
struct PgLab {
  std::string conninfo;
  mama::PgStoreOptions options;
  PgStateStore store;

  PgLab() : PgLab(next_name()) {}

  void add_machine(const std::string& name, const JobRecord& job = {},
                   const std::vector<std::pair<std::string, std::string>>& fields = {}) {
    const auto pg_literal = [this](std::string_view t) { return store.literal(t); };
    std::string sql =
        "INSERT INTO mama_machine (name, position, job, job_pid, job_timestamp, job_host, "
        "job_boot_id, job_start, job_token) VALUES (" +
        pg_literal(name) + ", (SELECT count(*) FROM mama_machine)";
    for (auto m : mama::job_field_members) sql += ", " + pg_literal(job.*m);
    sql += ")";
    store.exec(sql);
    int pos = 0;
    for (const auto& [k, v] : fields)
      store.exec("INSERT INTO mama_field SELECT id, " + std::to_string(++pos) + ", " +
                 pg_literal(k) + ", " + pg_literal(v) +
                 " FROM mama_machine WHERE name = " + pg_literal(name));
  }
  JobRecord record(const std::string& name) {
    auto tx = store.begin();
    auto r = tx.find(name);
    REQUIRE(r);
    return *r;
  }
  /// The server process holding machine `name`'s job lock, or 0.
  int hold_backend(const std::string& name) {
    const auto rows = store.exec(
        "SELECT l.pid FROM pg_locks l JOIN mama_machine m ON l.objid::bigint = m.id "
        "WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted AND l.classid::bigint = " +
        std::to_string(options.lock_space) + " AND m.name = " + store.literal(name));
    return rows.empty() ? 0 : std::stoi(rows[0]);
  }

 private:
  static std::string next_name() {
    static int counter = 0;
    return "t_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
  }
  explicit PgLab(const std::string& schema)
      : conninfo(server_conninfo() + " options='-csearch_path=" + schema + "'"),
        options(make_options()),
        store(conninfo, options) {
    PgStateStore admin(server_conninfo());
    admin.exec("CREATE SCHEMA " + schema);
  }
  static mama::PgStoreOptions make_options() {
    static int counter = 0;
    mama::PgStoreOptions o;
    o.lock_space = 1000 + static_cast<int>(::getpid() % 100000) * 100 + ++counter;
    // Short leases, so that takeovers after a lost holder take seconds, not the default 17 s.
    o.heartbeat_period_ms = 200;
    o.hold_deadline_ms = 2000;
    o.kill_grace_ms = 500;
    o.takeover_margin_ms = 500;
    o.confirm_timeout_ms = 600;
    return o;
  }
};

JobRecord job_of(std::string job, std::string pid = {}) {
  JobRecord r;
  r.job = std::move(job);
  r.pid = std::move(pid);
  return r;
}

struct Recorder {
  std::shared_ptr<std::vector<Event>> events = std::make_shared<std::vector<Event>>();
  std::shared_ptr<std::vector<std::string>> reasons = std::make_shared<std::vector<std::string>>();
  mama::EventHandler handler() {
    return [e = events, r = reasons](const Event& ev) {
      e->push_back(ev);
      r->push_back(std::string(ev.reason));
    };
  }
  bool saw(EventKind k) const {
    for (const auto& e : *events)
      if (e.kind == k) return true;
    return false;
  }
  std::string reason_of(EventKind k) const {
    for (std::size_t i = 0; i < events->size(); ++i)
      if ((*events)[i].kind == k) return (*reasons)[i];
    return "<none>";
  }
};

/// A blocking pipe for "the child got this far" signals.
struct Pipe {
  int fd[2];
  Pipe() { REQUIRE(::pipe(fd) == 0); }
  ~Pipe() {
    ::close(fd[0]);
    ::close(fd[1]);
  }
  void send(char c) { (void)!::write(fd[1], &c, 1); }
  char receive(int timeout_ms = 30000) {
    pollfd p{fd[0], POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return 0;
    char c = 0;
    return ::read(fd[0], &c, 1) == 1 ? c : 0;
  }
};

}  // namespace

// Ends the holder's server session (`backend`) and hands machine m's advisory lock to `thief`
// before the holder can reconnect: the thief's blocking lock request is queued first (a lock
// queue is first come, first served), then the session is ended. Returns the lock's result.
inline bool steal_lock(PGconn* thief, PgStateStore& admin, long long lock_space, int backend) {
  const std::string q = "SELECT pg_advisory_lock(" + std::to_string(lock_space) +
                        ", (SELECT id::int FROM mama_machine WHERE name = 'm'))";
  if (::PQsendQuery(thief, q.c_str()) != 1) return false;
  const std::string waiting =
      "SELECT 1 FROM pg_stat_activity WHERE pid = " + std::to_string(::PQbackendPID(thief)) +
      " AND wait_event_type = 'Lock'";
  for (int i = 0; i < 1000 && admin.exec(waiting).empty(); ++i) ::usleep(5 * 1000);
  admin.exec("SELECT pg_terminate_backend(" + std::to_string(backend) + ")");
  bool ok = false;
  while (PGresult* r = ::PQgetResult(thief)) {
    ok = ok || ::PQresultStatus(r) == PGRES_TUPLES_OK;
    ::PQclear(r);
  }
  return ok;
}

TEST_CASE("the PostgreSQL store reads, stages and commits job fields in transactions", "[pg]") {
  PgLab lab;
  lab.add_machine("m1", {}, {{"mac", "aa:bb"}, {"ip", "10.0.0.1"}});
  lab.add_machine("m2", job_of("old job", "77"));

  SECTION("find reads what is there; unknown machines are nullopt or a clear error") {
    auto tx = lab.store.begin();
    CHECK(tx.find("m2")->job == "old job");
    CHECK(tx.find("m2")->pid == "77");
    CHECK_FALSE(tx.find("nope"));
    try {
      tx.write("nope", job_of("x"));
      FAIL("write to an unknown machine did not throw");
    } catch (const mama::error& e) {
      CHECK(e.code() == mama::errc::unknown_machine);
      CHECK_THAT(e.what(), Catch::Contains("'nope'") && Catch::Contains("postgresql://"));
    }
  }
  SECTION("a committed write is saved; an uncommitted one is rolled back") {
    {
      auto tx = lab.store.begin();
      tx.write("m1", job_of("kept", "1"));
      tx.commit();
    }
    {
      auto tx = lab.store.begin();
      tx.write("m1", job_of("dropped", "2"));
    }
    CHECK(lab.record("m1").job == "kept");
  }
  SECTION("machines lists every machine in order with its other fields") {
    auto tx = lab.store.begin();
    const auto all = tx.machines();
    REQUIRE(all.size() == 2);
    CHECK(all[0].name == "m1");
    CHECK(all[0].fields ==
          std::vector<std::pair<std::string, std::string>>{{"mac", "aa:bb"}, {"ip", "10.0.0.1"}});
    CHECK(all[1].job.job == "old job");
  }
  SECTION("a hold is exclusive across sessions and freed when destroyed") {
    auto tx = lab.store.begin();
    auto h = tx.try_hold("m1");
    REQUIRE(h);
    CHECK(lab.hold_backend("m1") == h->backend_pid());
    PgStateStore other(lab.conninfo, lab.options);
    {
      auto tx2 = other.begin();
      CHECK_FALSE(tx2.try_hold("m1"));
      CHECK(tx2.try_hold("m2"));
    }
    h.reset();
    auto tx3 = other.begin();
    CHECK(tx3.try_hold("m1"));
  }
  SECTION("the watcher's descriptor becomes readable when another session commits") {
    auto w = lab.store.watch("m1");
    REQUIRE(w.fd() >= 0);
    w.drain();
    PgStateStore other(lab.conninfo, lab.options);
    {
      auto tx = other.begin();
      tx.write("m1", job_of("wake"));
      tx.commit();
    }
    pollfd p{w.fd(), POLLIN, 0};
    CHECK(::poll(&p, 1, 30000) == 1);
    w.drain();
  }
  SECTION("a server that cannot be reached is an error naming it") {
    PgStateStore nowhere("host=127.0.0.1 port=1 dbname=mama user=mama connect_timeout=5");
    try {
      auto tx = nowhere.begin();
      FAIL("no error");
    } catch (const mama::error& e) {
      CHECK(e.code() == mama::errc::io_error);
      CHECK_THAT(e.what(), Catch::Contains("postgresql://mama@127.0.0.1:1/mama"));
    }
  }
}

TEST_CASE("the SPEC 3 decisions hold through the guard on the PostgreSQL store", "[pg][guard]") {
  PgLab lab;
  lab.add_machine("m");
  mama::ManualClock clock;
  mama::FakeProbe probe;  // host "testhost", boot "boot-1", self PID 4242
  Recorder rec;
  mama::GuardOptions opt;
  opt.job = "run test";
  opt.on_event = rec.handler();
  const auto now_s =
      std::chrono::duration_cast<std::chrono::seconds>(clock.now().time_since_epoch()).count();

  SECTION("an idle machine is claimed, its hold kept for the claim, and cleared on release") {
    {
      FakeGuard g(lab.store, "m", opt, clock, probe);
      const auto r = lab.record("m");
      CHECK(r.job == "run test");
      CHECK(r.host == "testhost");
      CHECK(r.token == g.token());
      CHECK(lab.hold_backend("m") != 0);
    }
    CHECK(lab.record("m").idle());
    CHECK(lab.hold_backend("m") == 0);
  }
  SECTION("a token record whose hold is free is stale without probing the PID") {
    JobRecord dead = job_of("crashed", "4243");
    dead.host = "testhost";
    dead.boot_id = "boot-1";
    dead.token = "feedface";
    probe.spawn(4243);  // the PID even looks alive: the free hold decides
    lab.store.exec(
        "UPDATE mama_machine SET job = 'crashed', job_pid = '4243', job_host = 'testhost', "
        "job_boot_id = 'boot-1', job_token = 'feedface'");
    FakeGuard g(lab.store, "m", opt, clock, probe);
    CHECK(rec.reason_of(EventKind::stale_cleared) == "process not running");
    CHECK(probe.checks() == 0);
    CHECK(lab.record("m").token == g.token());
  }
  SECTION("a record from another host whose hold is free is stale: holds span hosts") {
    lab.store.exec(
        "UPDATE mama_machine SET job = 'remote', job_pid = '1', job_host = 'other', "
        "job_boot_id = 'boot-9', job_token = 'abc'");
    FakeGuard g(lab.store, "m", opt, clock, probe);
    CHECK_THAT(rec.reason_of(EventKind::stale_detected), Catch::Contains("host other is gone"));
    CHECK(probe.checks() == 0);
  }
  SECTION("a record whose hold is held is running, from this host or another") {
    auto holder_tx = lab.store.begin();
    auto held = holder_tx.try_hold("m");
    REQUIRE(held);
    { auto done = std::move(holder_tx); }
    for (const char* host : {"testhost", "other"}) {
      lab.store.exec(
          std::string("UPDATE mama_machine SET job = 'live', job_pid = '999', job_host = '") +
          host + "', job_token = 'abc'");
      CHECK_FALSE(FakeGuard::try_claim(lab.store, "m", opt, clock, probe));
      CHECK(lab.record("m").job == "live");
    }
    held.reset();
    CHECK(FakeGuard::try_claim(lab.store, "m", opt, clock, probe));
  }
  SECTION("legacy records without a token follow the PID rows") {
    SECTION("row 2: another host, no token: never probed from here") {
      lab.store.exec("UPDATE mama_machine SET job = 'php job', job_pid = '12', job_host = 'far'");
      CHECK_FALSE(FakeGuard::try_claim(lab.store, "m", opt, clock, probe));
      CHECK(probe.checks() == 0);
    }
    SECTION("row 3: another boot") {
      lab.store.exec(
          "UPDATE mama_machine SET job = 'php job', job_pid = '12', job_boot_id = 'boot-0'");
      FakeGuard g(lab.store, "m", opt, clock, probe);
      CHECK(rec.reason_of(EventKind::stale_cleared) == "host rebooted since the job started");
    }
    SECTION("row 4: no PID, old timestamp") {
      lab.store.exec("UPDATE mama_machine SET job = 'php job', job_timestamp = '" +
                     std::to_string(now_s - 600) + "'");
      FakeGuard g(lab.store, "m", opt, clock, probe);
      CHECK(rec.reason_of(EventKind::stale_cleared) == "no PID, set 10 min ago");
    }
    SECTION("row 5: no PID, recent timestamp: running") {
      lab.store.exec("UPDATE mama_machine SET job = 'php job', job_timestamp = '" +
                     std::to_string(now_s - 5) + "'");
      CHECK_FALSE(FakeGuard::try_claim(lab.store, "m", opt, clock, probe));
    }
    SECTION("row 6: invalid PID") {
      lab.store.exec("UPDATE mama_machine SET job = 'php job', job_pid = 'abc'");
      FakeGuard g(lab.store, "m", opt, clock, probe);
      CHECK(rec.reason_of(EventKind::stale_cleared) == "invalid PID");
    }
    SECTION("row 7: the process is gone") {
      lab.store.exec("UPDATE mama_machine SET job = 'php job', job_pid = '31337'");
      FakeGuard g(lab.store, "m", opt, clock, probe);
      CHECK(rec.reason_of(EventKind::stale_cleared) == "process not running");
      CHECK(probe.checks() == 1);
    }
    SECTION("row 8: the PID was reused") {
      probe.spawn(500, 77);
      lab.store.exec("UPDATE mama_machine SET job = 'php job', job_pid = '500', job_start = '76'");
      FakeGuard g(lab.store, "m", opt, clock, probe);
      CHECK(rec.reason_of(EventKind::stale_cleared) == "PID reused by another process");
    }
    SECTION("row 9: the process lives") {
      probe.spawn(500, 77);
      lab.store.exec("UPDATE mama_machine SET job = 'php job', job_pid = '500'");
      CHECK_FALSE(FakeGuard::try_claim(lab.store, "m", opt, clock, probe));
      CHECK(lab.record("m").job == "php job");
    }
  }
}

TEST_CASE("a holder on one host killed with SIGKILL frees the machine for the other host",
          "[pg][hosts]") {
  PgLab lab;
  lab.add_machine("m");
  Pipe ready;

  // Host A: a process of its own, with its own store and host identity.
  Child host_a([&]() -> int {
    PgStateStore store(lab.conninfo, lab.options);
    mama::FakeProbe probe;
    probe.set_host("host-a").set_boot_id("boot-a").set_self({static_cast<int>(::getpid()), 1});
    mama::GuardOptions o;
    o.job = "job on host-a";
    o.on_event = [](const Event&) {};
    HostGuard g(store, "m", o, {}, probe);
    ready.send('c');
    for (;;) ::pause();
  });
  REQUIRE(ready.receive() == 'c');

  mama::FakeProbe probe_b;
  probe_b.set_host("host-b").set_boot_id("boot-b");
  Recorder rec;
  mama::GuardOptions o;
  o.job = "job on host-b";
  o.on_event = rec.handler();
  o.poll_interval = 100ms;

  // Alive on host A: host B sees it running (not merely "remote"), and never probes its PID.
  CHECK_FALSE(HostGuard::try_claim(lab.store, "m", o, {}, probe_b));
  CHECK(lab.record("m").host == "host-a");

  host_a.kill_and_reap();
  o.timeout =
      30s;  // generous bound; the measured time is in include/mama/README.md, "How fast a claim is"
  const auto t0 = std::chrono::steady_clock::now();
  HostGuard g(lab.store, "m", o, {}, probe_b);
  const auto took = std::chrono::steady_clock::now() - t0;
  CHECK(lab.record("m").host == "host-b");
  CHECK_THAT(rec.reason_of(EventKind::stale_detected), Catch::Contains("host host-a is gone"));
  CHECK(probe_b.checks() == 0);
  WARN("taken over " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                     << " ms after SIGKILL");
}

TEST_CASE("a job's child processes keep the machine busy after the claimer is killed",
          "[pg][hosts]") {
  PgLab lab;
  lab.add_machine("m");
  Pipe ready;
  Child claimer([&]() -> int {
    PgStateStore store(lab.conninfo, lab.options);
    mama::GuardOptions o;
    o.on_event = [](const Event&) {};
    mama::StaleJobGuard<mama::SystemClock, mama::ProcProbe, PgStateStore> g(store, "m", o);
    const pid_t job = ::fork();  // the job: inherits the hold's socket, as exec'd jobs do
    if (job == 0) {
      ready.send(static_cast<char>('0'));
      for (;;) ::pause();
    }
    for (;;) ::pause();
  });
  REQUIRE(ready.receive() == '0');
  // The job's PID: the claimer's only child.
  const std::string kids =
      mama::test::read_file("/proc/" + std::to_string(claimer.pid()) + "/task/" +
                            std::to_string(claimer.pid()) + "/children");
  const int job_pid = std::stoi(kids);
  claimer.kill_and_reap();

  mama::GuardOptions o;
  o.on_event = [](const Event&) {};
  mama::FakeProbe probe;
  // The claimer is gone, but its job still holds the session: busy.
  CHECK_FALSE(HostGuard::try_claim(lab.store, "m", o, {}, probe));
  ::kill(job_pid, SIGKILL);
  o.timeout = 30s;
  o.poll_interval = 100ms;
  HostGuard g(lab.store, "m", o, {}, probe);
  CHECK(lab.record("m").token == g.token());
}

namespace {
/// The server-side time (ms) since machine `name`'s holder last confirmed its hold, or -1.
long long confirmed_age_ms(PgLab& lab, const std::string& name) {
  const auto rows = lab.store.exec(
      "SELECT (extract(epoch FROM clock_timestamp() - h.confirmed) * 1000)::bigint FROM mama_hold "
      "h JOIN mama_machine m ON m.id = h.machine_id WHERE m.name = " +
      lab.store.literal(name));
  return rows.empty() ? -1 : std::stoll(rows[0]);
}
long long ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t)
      .count();
}
}  // namespace

TEST_CASE("a holder confirms its hold and keeps it when its session is cut and comes back",
          "[pg][lease]") {
  PgLab lab;
  lab.add_machine("m");
  mama::FakeProbe probe_a, probe_b;
  probe_a.set_host("host-a");
  probe_b.set_host("host-b");
  std::atomic<int> lost_calls{0};
  mama::PgStoreOptions oa = lab.options;
  oa.on_lost = [&](const std::string&, const std::string&) { ++lost_calls; };
  PgStateStore store_a(lab.conninfo, oa);
  mama::GuardOptions go;
  go.on_event = [](const Event&) {};
  HostGuard a(store_a, "m", go, {}, probe_a);

  // The heartbeat keeps the server-side confirmation fresh: never older than a few periods.
  for (int i = 0; i < 5; ++i) {
    ::usleep(300 * 1000);
    const auto age = confirmed_age_ms(lab, "m");
    CHECK(age >= 0);
    CHECK(age < 5 * lab.options.heartbeat_period_ms);
  }

  // The server ends A's session (a restart, a cut the server noticed): the lock is free for a
  // moment, but a waiter must not take the machine, and A's heartbeat takes its lock back.
  const int first = lab.hold_backend("m");
  REQUIRE(first != 0);
  lab.store.exec("SELECT pg_terminate_backend(" + std::to_string(first) + ")");
  CHECK_FALSE(HostGuard::try_claim(PgStateStore(lab.conninfo, lab.options), "m", go, {}, probe_b));
  const auto t0 = std::chrono::steady_clock::now();
  int again = 0;
  while (ms_since(t0) < 5000) {
    again = lab.hold_backend("m");
    if (again != 0 && again != first) break;
    ::usleep(20 * 1000);
  }
  CHECK(again != 0);
  CHECK(again != first);
  WARN("lock taken back " << ms_since(t0) << " ms after the server ended the session");
  ::usleep(static_cast<useconds_t>(lab.options.hold_deadline_ms) * 1000);  // past the deadline
  CHECK(lost_calls.load() == 0);
  CHECK(lab.record("m").token == a.token());
  CHECK_FALSE(HostGuard::try_claim(PgStateStore(lab.conninfo, lab.options), "m", go, {}, probe_b));
  a.release();
  CHECK(lab.record("m").idle());
  CHECK(lab.hold_backend("m") == 0);
  CHECK(lost_calls.load() == 0);
}

TEST_CASE("a holder that cannot get its lock back within its deadline reports the loss once",
          "[pg][lease]") {
  PgLab lab;
  lab.add_machine("m");
  mama::FakeProbe probe;
  mama::GuardOptions go;
  go.on_event = [](const Event&) {};
  std::mutex mu;
  std::vector<std::string> store_reasons;
  mama::PgStoreOptions oa = lab.options;
  oa.on_lost = [&](const std::string& machine, const std::string& reason) {
    std::lock_guard lock(mu);
    store_reasons.push_back(machine + ": " + reason);
  };
  PgStateStore store_a(lab.conninfo, oa);

  SECTION("someone else keeps the lock: lost at the deadline") {
    // Here the hold is taken through the transaction, as the guard does, to reach on_lost.
    auto tx = store_a.begin();
    auto rec = *tx.find("m");
    auto h = tx.try_hold("m");
    REQUIRE(h);
    rec.job = "j";
    rec.token = "tok-a";
    rec.host = "host-a";
    tx.write("m", rec);
    tx.commit();
    std::atomic<int> calls{0};
    std::string reason;
    h->on_lost([&](std::string r) {
      reason = std::move(r);
      ++calls;
    });
    ::usleep(500 * 1000);
    CHECK_FALSE(h->lost());
    // Cut: the session ends and, before the holder is back, another session takes the lock.
    PgStateStore other(lab.conninfo);
    const auto backend = h->backend_pid();
    const auto cut = std::chrono::steady_clock::now();
    auto thief = mama::detail::pg_conn(::PQconnectdb(lab.conninfo.c_str()));
    REQUIRE(steal_lock(thief.get(), other, lab.options.lock_space, backend));
    while (!h->lost() && ms_since(cut) < 10000) ::usleep(10 * 1000);
    const auto took = ms_since(cut);
    CHECK(h->lost());
    CHECK(calls.load() == 1);
    CHECK_THAT(reason,
               Catch::Contains("for " + std::to_string(lab.options.hold_deadline_ms) + " ms"));
    // The deadline counts from the last confirmation, so the loss comes within it.
    CHECK(took <= lab.options.hold_deadline_ms + 300);
    WARN("loss reported " << took << " ms after the cut (deadline " << lab.options.hold_deadline_ms
                          << " ms)");
    ::usleep(300 * 1000);
    CHECK(calls.load() == 1);  // once
    std::lock_guard lock(mu);
    REQUIRE(store_reasons.size() == 1);
    CHECK_THAT(store_reasons[0], Catch::StartsWith("m: "));
    int late = 0;  // a callback registered after the loss runs at once
    h->on_lost([&](std::string) { ++late; });
    CHECK(late == 1);
  }

  SECTION("the record carries another token when the holder is back: lost at once") {
    auto tx = store_a.begin();
    auto rec = *tx.find("m");
    auto h = tx.try_hold("m");
    REQUIRE(h);
    rec.job = "j";
    rec.token = "tok-a";
    tx.write("m", rec);
    tx.commit();
    ::usleep(300 * 1000);
    PgStateStore other(lab.conninfo);
    other.exec("UPDATE mama_machine SET job_token = 'tok-b', job_host = 'host-b' WHERE name = 'm'");
    const auto t0 = std::chrono::steady_clock::now();
    other.exec("SELECT pg_terminate_backend(" + std::to_string(h->backend_pid()) + ")");
    while (!h->lost() && ms_since(t0) < 10000) ::usleep(10 * 1000);
    CHECK(h->lost());
    CHECK_THAT(h->lost_reason(), Catch::Contains("claimed by another job"));
    CHECK(ms_since(t0) < lab.options.hold_deadline_ms);
    CHECK(lab.record("m").token == "tok-b");  // the loser wrote nothing
  }
}

TEST_CASE("the guard hears its PostgreSQL hold's loss: on_lost, lost() and hold_lost",
          "[pg][lease][guard]") {
  PgLab lab;
  lab.add_machine("m");
  mama::FakeProbe probe;
  probe.set_host("host-a");
  Recorder rec;
  std::atomic<int> calls{0};
  mama::GuardOptions go;
  go.on_event = rec.handler();
  go.on_lost = [&](std::string_view) { ++calls; };
  PgStateStore store(lab.conninfo, lab.options);
  HostGuard g(store, "m", go, {}, probe);
  CHECK_FALSE(g.lost());
  // Cut: the server ends the session and another session keeps the lock from the holder.
  const int backend = lab.hold_backend("m");
  REQUIRE(backend != 0);
  auto thief = mama::detail::pg_conn(::PQconnectdb(lab.conninfo.c_str()));
  REQUIRE(steal_lock(thief.get(), lab.store, lab.options.lock_space, backend));
  const auto t0 = std::chrono::steady_clock::now();
  // (on_lost comes last, after lost() and the hold_lost event.)
  while (calls.load() == 0 && ms_since(t0) < 10000) ::usleep(10 * 1000);
  CHECK(g.lost());
  CHECK(calls.load() == 1);
  thief.reset();  // the lock is free again; the record is still the lost claim's
  g.release();    // the loser's release keeps to the lease too: the record may stay
  CHECK(rec.saw(EventKind::hold_lost));
  // Another host gets the machine once the lease is over.
  mama::FakeProbe probe_b;
  probe_b.set_host("host-b");
  mama::GuardOptions ob;
  ob.on_event = [](const Event&) {};
  ob.poll_interval = 50ms;
  ob.timeout = 15s;
  HostGuard b(PgStateStore(lab.conninfo, lab.options), "m", ob, {}, probe_b);
  CHECK(lab.record("m").token == b.token());
}

TEST_CASE("a waiter takes a lost holder's machine only after its deadline, grace and margin",
          "[pg][lease][fencing]") {
  PgLab lab;
  lab.add_machine("m");
  Pipe ready, resumed;
  // Host A holds the machine in a process of its own; when it is resumed after the takeover,
  // its heartbeat must find B's token and report the loss, and its release must leave B alone.
  Child host_a([&]() -> int {
    std::atomic<bool> lost{false};
    mama::PgStoreOptions o = lab.options;
    o.on_lost = [&](const std::string&, const std::string&) { lost = true; };
    PgStateStore store(lab.conninfo, o);
    mama::FakeProbe probe;
    probe.set_host("host-a").set_boot_id("boot-a");
    Recorder rec;
    mama::GuardOptions go;
    go.on_event = rec.handler();
    HostGuard g(store, "m", go, {}, probe);
    ready.send('c');
    // (SIGSTOP arrives here, then SIGCONT.)
    for (int i = 0; i < 500 && !lost; ++i) ::usleep(10 * 1000);
    g.release();
    resumed.send(
        lost && rec.saw(EventKind::successor_found) && !rec.saw(EventKind::released) ? 'y' : 'n');
    return 0;
  });
  REQUIRE(ready.receive() == 'c');
  ::usleep(500 * 1000);
  // A stops (it cannot confirm any more) and the server ends its session: the lock is free.
  ::kill(host_a.pid(), SIGSTOP);
  const int backend = lab.hold_backend("m");
  REQUIRE(backend != 0);
  const long long age_at_stop = confirmed_age_ms(lab, "m");
  lab.store.exec("SELECT pg_terminate_backend(" + std::to_string(backend) + ")");
  const auto t0 = std::chrono::steady_clock::now();
  while (lab.hold_backend("m") != 0 && ms_since(t0) < 5000) ::usleep(10 * 1000);
  REQUIRE(lab.hold_backend("m") == 0);

  mama::FakeProbe probe_b;
  probe_b.set_host("host-b").set_boot_id("boot-b");
  Recorder rec_b;
  mama::GuardOptions ob;
  ob.on_event = rec_b.handler();
  ob.timeout = 30s;
  ob.poll_interval = 50ms;
  // The lock is free, but A may still be ending its job: B waits.
  CHECK_FALSE(HostGuard::try_claim(PgStateStore(lab.conninfo, lab.options), "m", ob, {}, probe_b));
  HostGuard b(PgStateStore(lab.conninfo, lab.options), "m", ob, {}, probe_b);
  const long long waited = ms_since(t0);
  const long long lease =
      lab.options.hold_deadline_ms + lab.options.kill_grace_ms + lab.options.takeover_margin_ms;
  // From A's last confirmation to B's claim: at least deadline + grace + margin.
  CHECK(waited + age_at_stop + 300 >= lease);
  CHECK(waited < lease + 3000);
  WARN("B took over " << waited << " ms after the cut (A last confirmed " << age_at_stop
                      << " ms before; deadline + grace + margin = " << lease << " ms)");
  CHECK(rec_b.saw(EventKind::stale_cleared));
  CHECK(lab.record("m").token == b.token());

  ::kill(host_a.pid(), SIGCONT);
  CHECK(resumed.receive() == 'y');  // A saw the loss and did not clobber B's record (I4)
  CHECK(host_a.wait() == 0);
  CHECK(lab.record("m").token == b.token());
  CHECK(lab.hold_backend("m") != 0);  // B's hold survives A's release
}

TEST_CASE("a hold destroyed in a fork child leaves the parent's lock and session alone",
          "[pg][fork]") {
  PgLab lab;
  lab.add_machine("m");
  // The parent's claim, as the guard makes it: the hold, then the record, committed.
  auto* h = new std::optional<PgStateStore::hold>();
  {
    auto tx = lab.store.begin();
    auto rec = job_of("parent job", std::to_string(::getpid()));
    rec.token = "parent-token";
    REQUIRE(tx.find("m"));
    *h = tx.try_hold("m");
    REQUIRE(*h);
    tx.write("m", rec);
    tx.commit();
  }
  const int backend = lab.hold_backend("m");
  REQUIRE(backend != 0);
  CHECK((*h)->backend_pid() == backend);
  auto* store = new PgStateStore(lab.store);  // a copy: shares the pool with the parent's
  {
    auto tx = store->begin_read();  // leaves a pooled session for the child to inherit
    CHECK(tx.find("m")->token == "parent-token");
  }
  auto* open_tx = new PgStateStore::transaction(store->begin());  // open while forking
  REQUIRE(open_tx->find("m"));
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // As a death test's child does: destroy what was inherited, then exit() (static
    // destructors, atexit). Nothing of it may reach the parent's sessions.
    delete open_tx;
    delete h;
    { auto tx = store->begin(); }  // a session of the child's own: fine
    delete store;
    std::exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  // Seen from a second session: the same backend still holds the parent's lock, and the record
  // is the parent's claim.
  PgStateStore other(lab.conninfo, lab.options);
  const auto rows = other.exec(
      "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
      "AND l.classid::bigint = " +
      std::to_string(lab.options.lock_space));
  REQUIRE(rows.size() == 1);
  CHECK(std::stoi(rows[0]) == backend);
  // The parent's sessions still work: the open transaction, the pool, the heartbeat.
  CHECK(open_tx->find("m")->token == "parent-token");
  delete open_tx;
  CHECK(lab.record("m").token == "parent-token");
  { CHECK(store->begin_read().find("m")->token == "parent-token"); }
  ::usleep(3 * static_cast<useconds_t>(lab.options.heartbeat_period_ms) * 1000);
  CHECK(confirmed_age_ms(lab, "m") < 5 * lab.options.heartbeat_period_ms);
  CHECK_FALSE((*h)->lost());
  delete h;
  delete store;
  CHECK(lab.hold_backend("m") == 0);
}

namespace {
// True when process `pid` is gone or a zombie (its threads all ended).
bool dead(pid_t pid) {
  const std::string stat = mama::test::read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  return close == std::string::npos || stat.size() < close + 3 || stat[close + 2] == 'Z' ||
         stat[close + 2] == 'X';
}
}  // namespace

TEST_CASE(
    "a SIGKILLed claimer's job, tied to it by PR_SET_PDEATHSIG, dies before another host "
    "may claim",
    "[pg][lease][hosts]") {
  PgLab lab;
  lab.add_machine("m");
  Pipe ready;
  // The claimer starts its job as `mama run` must: in its own process group, with
  // PR_SET_PDEATHSIG(SIGKILL) set in the child (and the parent checked after setting it), from
  // the claimer's main thread (the signal follows the thread that forked).
  Child claimer([&]() -> int {
    PgStateStore store(lab.conninfo, lab.options);
    mama::GuardOptions o;
    o.on_event = [](const Event&) {};
    mama::FakeProbe probe;
    probe.set_host("host-a");
    HostGuard g(store, "m", o, {}, probe);
    const pid_t parent = ::getpid();
    const pid_t job = ::fork();
    if (job == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);
      ready.send('j');
      for (;;) ::pause();
    }
    for (;;) ::pause();
  });
  REQUIRE(ready.receive() == 'j');
  const std::string kids =
      mama::test::read_file("/proc/" + std::to_string(claimer.pid()) + "/task/" +
                            std::to_string(claimer.pid()) + "/children");
  const pid_t job = std::stoi(kids);
  REQUIRE_FALSE(dead(job));

  std::atomic<long long> claimed_ms{-1};
  const auto t0 = std::chrono::steady_clock::now();
  std::thread host_b([&] {
    mama::FakeProbe probe_b;
    probe_b.set_host("host-b");
    mama::GuardOptions o;
    o.on_event = [](const Event&) {};
    o.poll_interval = 20ms;
    o.timeout = 30s;
    HostGuard g(PgStateStore(lab.conninfo, lab.options), "m", o, {}, probe_b);
    claimed_ms = ms_since(t0);
  });
  claimer.kill_and_reap();
  long long dead_ms = -1;
  while (ms_since(t0) < 10000) {
    if (dead(job)) {
      dead_ms = ms_since(t0);
      break;
    }
    ::usleep(1000);
  }
  host_b.join();
  CHECK(dead_ms >= 0);
  CHECK(claimed_ms.load() > dead_ms);
  CHECK(claimed_ms.load() >= 0);
  WARN("job dead " << dead_ms << " ms after the claimer's SIGKILL; host B claimed after "
                   << claimed_ms.load() << " ms");
}

TEST_CASE("a nested claim by a process of the job does not make the holder's hold lost",
          "[pg][lease]") {
  PgLab lab;
  lab.add_machine("m");
  using ProcGuard = mama::StaleJobGuard<mama::SystemClock, mama::ProcProbe, PgStateStore>;
  std::atomic<int> lost{0};
  mama::PgStoreOptions o = lab.options;
  o.on_lost = [&](const std::string&, const std::string&) { ++lost; };
  PgStateStore store(lab.conninfo, o);
  mama::GuardOptions go;
  go.on_event = [](const Event&) {};
  go.job = "outer";
  ProcGuard outer(store, "m", go);
  Pipe nested, done;
  // The job runs `mama run m` itself: a child process claims the machine inside the outer claim.
  Child job([&]() -> int {
    PgStateStore own(lab.conninfo, lab.options);
    mama::GuardOptions gi;
    gi.on_event = [](const Event&) {};
    gi.job = "inner";
    ProcGuard inner(own, "m", gi);
    nested.send(inner.nested() ? 'n' : 'x');
    done.receive();
    return 0;
  });
  REQUIRE(nested.receive() == 'n');
  CHECK(lab.record("m").job == "inner");
  // Heartbeats see the inner token, and so does a reconnection after the session is cut.
  ::usleep(4 * static_cast<useconds_t>(lab.options.heartbeat_period_ms) * 1000);
  const int first = lab.hold_backend("m");
  lab.store.exec("SELECT pg_terminate_backend(" + std::to_string(first) + ")");
  ::usleep(static_cast<useconds_t>(lab.options.hold_deadline_ms) * 1000);
  CHECK(lab.hold_backend("m") != 0);
  CHECK(lab.hold_backend("m") != first);
  CHECK(lost.load() == 0);
  done.send('d');
  CHECK(job.wait() == 0);
  CHECK(lab.record("m").token == outer.token());  // the inner release put the outer back
  ::usleep(3 * static_cast<useconds_t>(lab.options.heartbeat_period_ms) * 1000);
  CHECK(lost.load() == 0);
  outer.release();
  CHECK(lab.record("m").idle());
}

TEST_CASE("views read one snapshot without locks: they never block a claim", "[pg][read]") {
  PgLab lab;
  lab.add_machine("m1", {}, {{"mac", "aa:bb"}});
  lab.add_machine("m2");
  // A claim in progress holds m1's row lock: a view still reads at once.
  auto writer = lab.store.begin();
  REQUIRE(writer.find("m1"));
  PgStateStore viewer_store(lab.conninfo, lab.options);
  std::atomic<bool> done{false};
  std::vector<mama::MachineInfo> seen;
  std::thread viewer([&] {
    auto tx = viewer_store.begin_read();
    seen = tx.machines();
    done = true;
  });
  for (int i = 0; i < 300 && !done; ++i) ::usleep(10 * 1000);
  CHECK(done.load());
  if (!done) {
    auto release = std::move(writer);  // unblock the viewer before joining
  }
  viewer.join();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].name == "m1");
  CHECK(seen[0].fields.size() == 1);

  // And an open view blocks no claim: m2 is claimed while the view's snapshot is open.
  auto view = viewer_store.begin_read();
  CHECK(view.machines().size() == 2);
  CHECK(view.read_only());
  mama::GuardOptions go;
  go.on_event = [](const Event&) {};
  mama::FakeProbe probe;
  auto claimed = HostGuard::try_claim(PgStateStore(lab.conninfo, lab.options), "m2", go, {}, probe);
  CHECK(claimed);
  // The view keeps its snapshot (REPEATABLE READ): m2 still idle there.
  CHECK(view.find("m2")->idle());
  CHECK_THROWS_AS(view.write("m2", job_of("x")), mama::error);
}

TEST_CASE("SQL text is quoted by libpq whatever standard_conforming_strings says", "[pg]") {
  PgLab lab;
  lab.add_machine("m");
  for (const char* scs : {"on", "off"}) {
    std::string conninfo = lab.conninfo;  // ... options='-csearch_path=<lab>'
    conninfo.insert(conninfo.rfind('\''), std::string(" -cstandard_conforming_strings=") + scs);
    PgStateStore store(conninfo, lab.options);
    CHECK(store.exec("SHOW standard_conforming_strings")[0] == scs);
    JobRecord r = job_of(R"(it's a \'job\' with \\ and \x41 and '' quotes)", "12");
    r.token = "t\\";
    {
      auto tx = store.begin();
      REQUIRE(tx.find("m"));
      tx.write("m", r);
      tx.commit();
    }
    CHECK(lab.record("m") == r);
    CHECK(store.exec("SELECT " + store.literal(r.job))[0] == r.job);
  }
}

TEST_CASE("claims from several processes never overlap on the PostgreSQL store", "[pg][hosts]") {
  PgLab lab;
  lab.add_machine("m");
  auto* inside = static_cast<std::atomic<int>*>(::mmap(nullptr, sizeof(std::atomic<int>) * 2,
                                                       PROT_READ | PROT_WRITE,
                                                       MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  REQUIRE(inside != MAP_FAILED);
  new (inside) std::atomic<int>(0);
  new (inside + 1) std::atomic<int>(0);  // overlaps seen
  std::vector<std::unique_ptr<Child>> kids;
  for (int k = 0; k < 4; ++k)
    kids.push_back(std::make_unique<Child>([&, k] {
      PgStateStore store(lab.conninfo, lab.options);
      mama::FakeProbe probe;
      probe.set_host("host-" + std::to_string(k));
      mama::GuardOptions o;
      o.on_event = [](const Event&) {};
      o.poll_interval = 20ms;
      o.timeout = 60s;
      for (int i = 0; i < 15; ++i) {
        HostGuard g(store, "m", o, {}, probe);
        if (inside[0].fetch_add(1) != 0) inside[1].fetch_add(1);
        ::usleep(500);
        inside[0].fetch_sub(1);
      }
      return 0;
    }));
  for (auto& c : kids) {
    const int status = c->wait();
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  CHECK(inside[1].load() == 0);
  CHECK(lab.record("m").idle());
  ::munmap(inside, sizeof(std::atomic<int>) * 2);
}

namespace {
/// Every top-level element and every machine field, in order, as "path=text" lines.
std::vector<std::string> shape_of(const std::string& xml) {
  pugi::xml_document doc;
  REQUIRE(doc.load_string(xml.c_str()));
  std::vector<std::string> out;
  for (pugi::xml_node top : doc.document_element().children()) {
    if (top.type() != pugi::node_element) continue;
    out.push_back(std::string("<") + top.name() + ">");
    for (pugi::xml_node f : top.children())
      if (f.type() == pugi::node_element)
        out.push_back(std::string(f.name()) + "=" + f.text().get());
  }
  return out;
}
}  // namespace

TEST_CASE("import and export move a lab between mama.xml and PostgreSQL keeping everything",
          "[pg][import]") {
  PgLab lab;
  TempDir dir;
  const std::string own =
      "<?xml version=\"1.0\"?>\n<settings>\n"
      "  <resource><name>switch</name><port>4</port></resource>\n"
      "  <machine>\n    <name>b-second</name>\n    <mac>aa:bb</mac>\n    <custom_x>keep &amp; "
      "me</custom_x>\n"
      "    <job>run legacy</job>\n    <job_pid>12345</job_pid>\n    <startcmd/>\n    "
      "<start_timeout>240</start_timeout>\n"
      "  </machine>\n"
      "  <machine>\n    <mac>cc:dd</mac>\n    <name>a-first</name>\n    <job/>\n    <vm_params>-m "
      "2G</vm_params>\n"
      "  </machine>\n"
      "  <extra_thing>x</extra_thing>\n"
      "</settings>\n";
  const auto xml_path = dir / "mama.xml";

  SECTION("a sample mama.xml survives import and export: machines, fields, order, other elements") {
    for (const std::string& original :
         {own, mama::test::read_file(std::string(MAMA_TEST_DATA_DIR) + "/legacy_php.xml")}) {
      mama::test::write_file(xml_path, original);
      mama::XmlStateStore xml(xml_path);
      const auto result = mama::import_xml(xml, lab.store, {.replace = true});
      const auto shape = shape_of(original);
      CHECK(result.machines ==
            static_cast<std::size_t>(std::count(shape.begin(), shape.end(), "<machine>")));
      const std::string exported = mama::export_xml_string(lab.store);
      CHECK(shape_of(exported) == shape_of(original));
      CHECK(exported.rfind("<?xml version=\"1.0\"?>\n<settings>\n", 0) == 0);
      // The exported file is a mama.xml the XML store (and PHP) reads; exporting again is stable.
      mama::test::write_file(dir / "again.xml", exported);
      mama::XmlStateStore again(dir / "again.xml");
      mama::import_xml(again, lab.store, {.replace = true});
      CHECK(mama::export_xml_string(lab.store) == exported);
      CHECK(mama::test::read_file(xml_path) == original);  // import never changes the file
    }
  }
  SECTION("claims on the database show up in the export in the machines' own places") {
    mama::test::write_file(xml_path, own);
    mama::XmlStateStore xml(xml_path);
    const auto result = mama::import_xml(xml, lab.store);
    CHECK(result.machines == 2);
    CHECK(result.others == 2);
    CHECK(result.busy == 1);
    {
      auto tx = lab.store.begin();
      const auto all = tx.machines();
      REQUIRE(all.size() == 2);
      CHECK(all[0].name == "b-second");
      CHECK(all[0].field("custom_x") == "keep & me");
      CHECK(all[0].job.pid == "12345");
    }
    mama::GuardOptions o;
    o.job = "pg job";
    o.on_event = [](const Event&) {};
    mama::FakeProbe probe;
    {
      FakeGuard g(lab.store, "a-first", o, mama::ManualClock(), probe);
      const auto shape = shape_of(mama::export_xml_string(lab.store));
      const std::vector<std::string> a_first(shape.begin() + 12,
                                             shape.end() - 1);  // after <machine>
      REQUIRE(a_first.size() >= 4);
      CHECK(a_first[0] == "mac=cc:dd");
      CHECK(a_first[1] == "name=a-first");
      CHECK(a_first[2] == "job=pg job");
      CHECK(a_first[3] == "job_pid=4242");
      CHECK(a_first.back() == "vm_params=-m 2G");
    }
    const auto shape = shape_of(mama::export_xml_string(lab.store));
    CHECK(shape == shape_of(own));
  }
  SECTION("importing over a lab, or exporting over a file, needs to be asked for") {
    mama::test::write_file(xml_path, own);
    mama::XmlStateStore xml(xml_path);
    mama::import_xml(xml, lab.store);
    lab.store.exec("UPDATE mama_machine SET job = 'running now' WHERE name = 'a-first'");
    try {
      mama::import_xml(xml, lab.store);
      FAIL("second import did not throw");
    } catch (const mama::error& e) {
      CHECK(e.code() == mama::errc::invalid_argument);
      CHECK_THAT(e.what(), Catch::Contains("already holds 2 machines"));
    }
    CHECK(lab.record("a-first").job == "running now");

    const auto out = dir / "export.xml";
    mama::test::write_file(out, "precious");
    CHECK_THROWS_AS(mama::export_xml(lab.store, out), mama::error);
    CHECK(mama::test::read_file(out) == "precious");
    mama::export_xml(lab.store, out, /*overwrite=*/true);
    CHECK(shape_of(mama::test::read_file(out)) == shape_of(mama::export_xml_string(lab.store)));
  }
  SECTION("a file without machine names is refused and the database is left as it was") {
    mama::test::write_file(
        xml_path,
        "<?xml version=\"1.0\"?>\n<settings><machine><mac>x</mac></machine></settings>\n");
    mama::XmlStateStore xml(xml_path);
    CHECK_THROWS_AS(mama::import_xml(xml, lab.store), mama::error);
    CHECK(lab.store.exec("SELECT count(*) FROM mama_machine")[0] == "0");
  }
}
