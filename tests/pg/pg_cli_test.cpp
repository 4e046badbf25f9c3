// tests/pg/pg_cli_test.cpp — the real `mama` binary on a real PostgreSQL server (CTest fixture
// mama_pg): `import` of a mama.xml into a fresh database, `list`/`info` on the database showing
// what they show on the file, `run` claiming and releasing through the server, a SIGKILLed
// `mama run` whose job the next `mama run` on another host (its own UTS namespace, when the
// system allows one) finds stale and clears, and `export` back to a mama.xml the file store
// reads with the same machines and fields. Refused imports and exports change nothing.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "mama/pg_state_store.hpp"
#include "mama/xml_state_store.hpp"
#include "support.hpp"

namespace {

using mama::PgStateStore;
using mama::test::eventually;
using mama::test::read_file;
using mama::test::TempDir;
using mama::test::write_file;
namespace fs = std::filesystem;

std::string cli_path() {
  const char* cli = std::getenv("MAMA_CLI");
  if (!cli || !*cli) FAIL("MAMA_CLI is not set: run this test through ctest");
  return cli;
}

std::string server_conninfo() {
  const char* file = std::getenv("MAMA_PG_CONNINFO_FILE");
  if (!file)
    FAIL("MAMA_PG_CONNINFO_FILE is not set: run this test through ctest (fixture mama_pg)");
  std::string text = read_file(file);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  if (text.empty()) FAIL(std::string("no server connection string in ") + file);
  return text;
}

// The value of `key` in a "key=value key=value" connection string.
std::string conninfo_value(const std::string& conninfo, const std::string& key) {
  const auto at = conninfo.find(key + "=");
  if (at == std::string::npos) return {};
  const auto begin = at + key.size() + 1;
  return conninfo.substr(begin, conninfo.find(' ', begin) - begin);
}

// A database of its own on the test server, dropped at the end; `url` is what users type.
struct PgDatabase {
  std::string name;
  std::string url;

  PgDatabase() {
    static int counter = 0;
    name = "cli_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
    const std::string server = server_conninfo();
    PgStateStore(server).exec("CREATE DATABASE " + name);
    url = "postgresql://" + conninfo_value(server, "user") + "@" + conninfo_value(server, "host") +
          ":" + conninfo_value(server, "port") + "/" + name;
  }
  ~PgDatabase() {
    try {
      PgStateStore(server_conninfo()).exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
    } catch (...) {
    }
  }
  PgStateStore store() const { return PgStateStore(url); }
  mama::JobRecord record(const std::string& machine) const {
    auto s = store();
    auto tx = s.begin();
    auto r = tx.find(machine);
    REQUIRE(r);
    return *r;
  }
  // The server sessions holding a mama job lock in this database.
  int holds() const {
    auto s = store();
    return std::stoi(
        s.exec("SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = "
               "l.database WHERE l.locktype = 'advisory' AND l.granted AND "
               "d.datname = current_database()")[0]);
  }
};

using Result = mama::test::RunResult;
using mama::test::exit_status_of;

// argv for `mama args...`, run through `prefix` (e.g. unshare) when given.
std::vector<std::string> command_line(const std::vector<std::string>& prefix,
                                      const std::vector<std::string>& args) {
  std::vector<std::string> argv = prefix;
  argv.push_back(cli_path());
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// Every run: TZ=UTC, no MAMA_STATE/MAMA_PATH/NO_COLOR inherited, then `env` ("NAME=value").
std::vector<std::string> run_env(const std::vector<std::string>& env) {
  std::vector<std::string> all{"TZ=UTC", "MAMA_STATE", "MAMA_PATH", "NO_COLOR"};
  all.insert(all.end(), env.begin(), env.end());
  return all;
}

// Runs `mama args...` to completion (through `prefix`), capturing stdout and stderr.
Result run_mama(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
                const std::vector<std::string>& prefix = {}) {
  return mama::test::run_capture(command_line(prefix, args), run_env(env));
}

// `mama args...` in the background, output to files; killed with SIGKILL if still running.
struct Background : mama::test::Background {
  Background(const std::vector<std::string>& args, const fs::path& out, const fs::path& err)
      : mama::test::Background(command_line({}, args), run_env({}), out, err) {}
};

// How to run a command as "another host": in a UTS namespace of its own with host name
// `name`, when unshare(1) may make one here; else nothing (the same host, and the test says so).
std::vector<std::string> other_host(const std::string& name) {
  static const bool can = std::system("unshare --uts true >/dev/null 2>&1") == 0;
  if (!can) {
    WARN("unshare --uts is not allowed here: the second host is this host");
    return {};
  }
  return {"unshare", "--uts", "sh", "-c", "hostname \"$0\" && exec \"$@\"", name};
}

std::string host_name() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

// A lab in a temporary mama.xml: idle machines, a job whose PHP-tool holder is gone (dead PID),
// fields mama does not know, and a top-level element other than machines.
const std::string sample_lab =
    "<?xml version=\"1.0\"?>\n<settings>\n"
    "  <machine>\n    <name>alpha</name>\n    <mac>52:54:00:12:34:01</mac>\n"
    "    <ip>10.0.0.1</ip>\n    <is_started>1</is_started>\n    <only_vm>0</only_vm>\n"
    "    <kernel/>\n    <job/>\n    <job_pid/>\n    <start_timeout>240</start_timeout>\n"
    "  </machine>\n"
    "  <machine>\n    <name>bravo</name>\n    <mac>52:54:00:12:34:02</mac>\n"
    "    <ip>10.0.0.2</ip>\n    <is_started>0</is_started>\n    <only_vm>0</only_vm>\n"
    "    <job>run crashed-test</job>\n    <job_pid>4194305</job_pid>\n"
    "    <job_timestamp>1700000000</job_timestamp>\n    <rack>B7 &amp; C1</rack>\n"
    "  </machine>\n"
    "  <machine>\n    <name>charlie-vm</name>\n    <mac>52:54:00:12:34:03</mac>\n"
    "    <ip>10.0.0.3</ip>\n    <is_started>1</is_started>\n    <only_vm>1</only_vm>\n"
    "    <job/>\n    <job_pid/>\n  </machine>\n"
    "  <resource>\n    <name>shared-nfs</name>\n  </resource>\n"
    "</settings>\n";

struct Lab {
  TempDir dir;
  fs::path file = dir / "mama.xml";
  PgDatabase db;
  Lab() { write_file(file, sample_lab); }
  Result on_db(std::vector<std::string> args, const std::vector<std::string>& env = {}) const {
    args.insert(args.begin(), {"--state", db.url});
    return run_mama(args, env);
  }
  Result on_file(std::vector<std::string> args) const {
    args.insert(args.begin(), {"--state", file.string()});
    return run_mama(args);
  }
  void import() const {
    const Result r = on_db({"import", file.string()});
    INFO(r.err);
    REQUIRE(r.status == 0);
  }
};

std::vector<mama::MachineInfo> machines_in(const fs::path& file) {
  mama::XmlStateStore store(file);
  return store.begin().machines();
}

}  // namespace

TEST_CASE("import copies a mama.xml; list and info on the database show what they show on the file",
          "[pg][cli]") {
  Lab l;
  const Result imported = l.on_db({"import", l.file.string()});
  INFO(imported.err);
  REQUIRE(imported.status == 0);
  CHECK(imported.out.starts_with("Imported 3 machines and 1 other element from " + l.file.string() +
                                 " into " + l.db.url));
  CHECK(imported.out.find("1 machine has a job recorded") != std::string::npos);
  CHECK(read_file(l.file) == sample_lab);  // the source is only read

  const Result on_file = l.on_file({"list"});
  const Result on_db = l.on_db({"list"});
  CHECK(on_db.status == 0);
  CHECK(on_db.out == on_file.out);
  CHECK(on_db.out.find("run crashed-test [STALE]") != std::string::npos);
  // MAMA_STATE may name the database too.
  CHECK(run_mama({"list"}, {"MAMA_STATE=" + l.db.url}).out == on_file.out);
  // info by MAC, every field, the same on both.
  const Result info_db = l.on_db({"info", "52:54:00:12:34:02", "--json"});
  const Result info_file = l.on_file({"info", "52:54:00:12:34:02", "--json"});
  CHECK(info_db.status == 0);
  CHECK(info_db.out == info_file.out);
  CHECK(info_db.out.find("B7 & C1") != std::string::npos);

  SECTION("a second import is refused and leaves the database as it was; --replace replaces") {
    write_file(l.dir / "other.xml",
               "<?xml version=\"1.0\"?>\n<settings>\n  <machine>\n    <name>zulu</name>\n"
               "  </machine>\n</settings>\n");
    const Result again = l.on_db({"import", (l.dir / "other.xml").string()});
    CHECK(again.status == 2);
    CHECK(again.err == "mama: " + l.db.url +
                           " already holds 3 machines; import into an empty database, or replace "
                           "them (mama import --replace)\n");
    CHECK(l.on_db({"list"}).out == on_file.out);

    const Result replaced = l.on_db({"import", "--replace", (l.dir / "other.xml").string()});
    CHECK(replaced.status == 0);
    const Result list = l.on_db({"list"});
    CHECK(list.out.find("zulu") != std::string::npos);
    CHECK(list.out.find("alpha") == std::string::npos);
  }
  SECTION("a malformed or missing file is refused, naming it; the database is unchanged") {
    write_file(l.dir / "broken.xml", "<settings><machine><name>x</name></settings>");
    const Result broken = l.on_db({"import", "--replace", (l.dir / "broken.xml").string()});
    CHECK(broken.status == 6);
    CHECK(broken.err.find((l.dir / "broken.xml").string()) != std::string::npos);
    const Result missing = l.on_db({"import", "--replace", (l.dir / "none.xml").string()});
    CHECK(missing.status == 6);
    CHECK(missing.err == "mama: cannot import " + (l.dir / "none.xml").string() +
                             ": no such file; give the path of the lab's mama.xml\n");
    CHECK(l.on_db({"list"}).out == on_file.out);
  }
  SECTION("import and export need a database as the state") {
    const Result r = l.on_file({"import", l.file.string()});
    CHECK(r.status == 2);
    CHECK(r.err.find("name the database with --state postgresql://") != std::string::npos);
  }
}

TEST_CASE("run claims the machine through the database and releases it", "[pg][cli]") {
  Lab l;
  l.import();
  const fs::path started = l.dir / "started", go = l.dir / "go";
  Background run({"--state", l.db.url, "run", "alpha", "--job", "pg job", "--", "sh", "-c",
                  "touch " + started.string() + "; while [ ! -e " + go.string() +
                      " ]; do sleep 0.05; done; exit 7"},
                 l.dir / "run.out", l.dir / "run.err");
  REQUIRE(eventually([&] { return fs::exists(started); }));

  // The claim is in the database, with this host and a token, and the server holds its lock.
  const mama::JobRecord claimed = l.db.record("alpha");
  CHECK(claimed.job == "pg job");
  CHECK(mama::detail::read_proc_stat(std::stoi(claimed.pid))->ppid == run.pid());  // the command
  CHECK(claimed.host == host_name());
  CHECK(claimed.token.size() == 32);
  CHECK(l.db.holds() == 1);
  const Result info = l.on_db({"info", "alpha"});
  CHECK(info.out.find("Job status:\tRUNNING") != std::string::npos);
  const Result clear = l.on_db({"clear", "alpha"});
  CHECK(clear.status == 4);
  const Result wait = l.on_db({"wait", "alpha", "--timeout", "1.5"});
  CHECK(wait.status == 3);
  CHECK(l.db.record("alpha").token == claimed.token);

  write_file(go, "");
  CHECK(run.wait() == 7);  // the command's status
  CHECK(l.db.record("alpha").idle());
  CHECK(l.db.holds() == 0);
  CHECK(l.on_db({"wait", "alpha", "--timeout", "5"}).status == 0);
  const Result again = l.on_db({"run", "alpha", "--", "true"});
  CHECK(again.status == 0);
  CHECK(l.db.record("alpha").idle());
}

TEST_CASE(
    "a SIGKILLed mama run: the next mama run on another host finds its job stale and clears it",
    "[pg][cli]") {
  Lab l;
  l.import();
  const fs::path pidfile = l.dir / "cmd.pid";
  Background holder({"--state", l.db.url, "run", "alpha", "--job", "crashed job", "--", "sh", "-c",
                     "echo $$ > " + pidfile.string() + "; exec sleep 100"},
                    l.dir / "h.out", l.dir / "h.err");
  REQUIRE(eventually([&] { return read_file(pidfile).find('\n') != std::string::npos; }));
  const pid_t sleeper = std::stoi(read_file(pidfile));
  CHECK(holder.signal_and_wait(SIGKILL) == 128 + SIGKILL);
  const auto other = other_host("lab-host-2");

  // The command still runs and holds the server lock: the machine stays busy, for every host.
  const Result busy =
      run_mama({"--state", l.db.url, "run", "alpha", "--timeout", "0.5", "--", "true"}, {}, other);
  CHECK(busy.status == 3);
  CHECK(l.db.record("alpha").job == "crashed job");

  ::kill(sleeper, SIGKILL);
  // The server frees the lock with the command's session: `list` on the other host, which
  // cannot check PIDs here, sees the job stale from the lock alone (assess_machine as the guard) once
  // the holder's lease is over (its last confirmation + deadline + grace + margin: 17 s by
  // default, as a cut-off holder may still be ending its job until then).
  REQUIRE(eventually(
      [&] {
        const Result list = run_mama({"--state", l.db.url, "list"}, {}, other);
        return list.out.find("crashed job [STALE]") != std::string::npos;
      },
      std::chrono::seconds(40)));
  CHECK(l.db.record("alpha").job == "crashed job");  // list only reads
  const Result r = run_mama({"--state", l.db.url, "run", "alpha", "--timeout", "30", "--", "sh",
                             "-c", "hostname > " + (l.dir / "ran-on").string()},
                            {}, other);
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK(r.err.find("Detected stale job: crashed job (PID: " + std::to_string(sleeper)) !=
        std::string::npos);
  if (!other.empty()) CHECK(read_file(l.dir / "ran-on") == "lab-host-2\n");
  CHECK(l.db.record("alpha").idle());
  CHECK(l.db.holds() == 0);
}

TEST_CASE("export writes a mama.xml the file store reads with the same machines and fields",
          "[pg][cli]") {
  Lab l;
  SECTION("an empty database is not exported") {
    const Result r = l.on_db({"export", (l.dir / "out.xml").string()});
    CHECK(r.status == 6);
    CHECK(r.err.find("holds no machines") != std::string::npos);
    CHECK_FALSE(fs::exists(l.dir / "out.xml"));
  }
  SECTION("round trip") {
    l.import();
    CHECK(l.on_db({"run", "alpha", "--", "true"}).status == 0);  // a claim and a release between
    const fs::path out = l.dir / "out.xml";
    const Result r = l.on_db({"export", out.string()});
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(r.out == "Exported 3 machines from " + l.db.url + " to " + out.string() + "\n");

    const auto before = machines_in(l.file);
    const auto after = machines_in(out);
    REQUIRE(after.size() == before.size());
    for (std::size_t i = 0; i < before.size(); ++i) {
      CHECK(after[i].name == before[i].name);
      CHECK(after[i].fields == before[i].fields);
      CHECK(after[i].job == before[i].job);
    }
    CHECK(read_file(out).find("<resource>") != std::string::npos);
    CHECK(l.on_file({"list"}).out == run_mama({"--state", out.string(), "list"}).out);

    // An existing file is replaced only with --force; refused, it stays byte for byte.
    write_file(out, "precious\n");
    const Result refused = l.on_db({"export", out.string()});
    CHECK(refused.status == 2);
    CHECK(refused.err == "mama: " + out.string() +
                             " exists; export to a new file, or overwrite it (mama export "
                             "--force)\n");
    CHECK(read_file(out) == "precious\n");
    CHECK(l.on_db({"export", "--force", out.string()}).status == 0);
    CHECK(machines_in(out).size() == 3);
  }
}

TEST_CASE("an unreachable database gets a clear error naming it", "[pg][cli]") {
  const Result r = run_mama({"--state", "postgresql://mama@127.0.0.1:1/nowhere", "list"});
  CHECK(r.status == 1);
  CHECK(r.err.starts_with("mama: cannot connect to postgresql://mama@127.0.0.1:1/nowhere: "));
  CHECK(r.err.find("check that the server runs and the URL is right") != std::string::npos);
}
