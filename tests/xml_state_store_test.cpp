// The mama.xml store on real files: lossless round trips, bad input, permissions, planted
// symlinks and standalone mode. Crashes, liveness and races with real processes are in
// store_process_test.cpp.
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mama/guard.hpp>
#include <mama/xml_state_store.hpp>
#include <optional>
#include <regex>
#include <vector>

#include "support.hpp"

namespace fs = std::filesystem;
using mama::JobRecord;
using mama::XmlStateStore;
using mama::XmlStoreOptions;
using mama::test::read_file;
using mama::test::TempDir;
using mama::test::write_file;

namespace {

std::string sample(const std::string& name) {
  return read_file(fs::path(MAMA_TEST_DATA_DIR) / name);
}

std::string to_crlf(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

JobRecord full_record(const std::string& job = "run <suite> & \"more\"") {
  JobRecord r;
  r.job = job;
  r.pid = "4321";
  r.timestamp = "1763047845";
  r.host = "lab-host";
  r.boot_id = "0f3a9c1e-2b44-4c55-8d66-77889900aabb";
  r.start = "123456";
  r.token = "00112233445566778899aabbccddeeff";
  return r;
}

void save_record(XmlStateStore& store, const std::string& machine, const JobRecord& r) {
  auto tx = store.begin();
  tx.write(machine, r);
  tx.commit();
}

// The bytes of the machine named `name`, from its <machine> to its </machine>.
std::pair<std::size_t, std::size_t> machine_span(const std::string& text, const std::string& name) {
  const auto at = text.find("<name>" + name + "</name>");
  REQUIRE(at != std::string::npos);
  const auto begin = text.rfind("<machine>", at);
  const auto end = text.find("</machine>", at) + std::string("</machine>").size();
  return {begin, end};
}

// Everything outside machine `name` must be byte-identical in `a` and `b`.
void require_same_outside(const std::string& a, const std::string& b, const std::string& name) {
  const auto [ab, ae] = machine_span(a, name);
  const auto [bb, be] = machine_span(b, name);
  REQUIRE(a.substr(0, ab) == b.substr(0, bb));
  REQUIRE(a.substr(ae) == b.substr(be));
}

// Inside machine `name`, everything but job field elements must be byte-identical.
std::string without_job_fields(std::string machine_text) {
  static const std::regex job_element(
      R"(\s*<job(_pid|_timestamp|_host|_boot_id|_start|_token)?\s*(/>|>[^<]*</job(_pid|_timestamp|_host|_boot_id|_start|_token)?>))");
  return std::regex_replace(machine_text, job_element, "");
}

struct FileSnapshot {
  std::string bytes;
  timespec mtime{};
  ino_t inode = 0;
  explicit FileSnapshot(const fs::path& p) : bytes(read_file(p)) {
    struct stat st {};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    mtime = st.st_mtim;
    inode = st.st_ino;
  }
  bool operator==(const FileSnapshot& o) const {
    return bytes == o.bytes && mtime.tv_sec == o.mtime.tv_sec && mtime.tv_nsec == o.mtime.tv_nsec &&
           inode == o.inode;
  }
};

mama::GuardOptions quiet(std::string job = "test job") {
  mama::GuardOptions o;
  o.job = std::move(job);
  o.on_event = [](const mama::Event&) {};
  return o;
}

}  // namespace

TEST_CASE("reading samples gives every machine and job field as written", "[xml_store]") {
  TempDir dir;
  const auto file = dir / "mama.xml";

  SECTION("the PHP tool's format") {
    write_file(file, sample("php_written.xml"));
    XmlStateStore store(file);
    auto tx = store.begin();
    const auto ms = tx.machines();
    REQUIRE(ms.size() == 2);
    CHECK(ms[0].name == "vm-1");
    CHECK(ms[0].job.idle());
    CHECK(ms[0].field("vm_params") == "-m 2048");
    CHECK(ms[1].name == "test-machine");
    CHECK(ms[1].job.job == "run test-job x86_64/fedora");
    CHECK(ms[1].job.pid == "12345");
    CHECK(ms[1].job.token.empty());
    CHECK(!tx.find("nope"));
  }
  SECTION("legacy and hand-edited files, LF and CRLF") {
    const auto text = GENERATE(as<std::string>{}, "lf", "crlf");
    const std::string base = sample("mixed_legacy.xml");
    write_file(file, text == "lf" ? base : to_crlf(base));
    XmlStateStore store(file);
    auto tx = store.begin();
    CHECK(tx.find("old-box") == JobRecord{});  // no job fields at all: idle
    const auto busy = tx.find("busy-box");
    REQUIRE(busy);
    CHECK(busy->job == "make && run <suite> \"quoted\"");  // entities decoded
    CHECK(busy->pid.empty());                              // <x></x> reads as empty
    CHECK(busy->timestamp.empty());                        // <x/> reads as empty
    CHECK(tx.find("compact") == JobRecord{});
    const auto ms = tx.machines();
    REQUIRE(ms.size() == 3);
    CHECK(ms[0].field("custom_field") == "x & y");
    CHECK(ms[0].field("kernel").empty());
  }
}

TEST_CASE("a claim and release change only the job fields of their machine", "[xml_store]") {
  TempDir dir;
  const auto file = dir / "mama.xml";

  SECTION("PHP-written file: added fields are indented like their neighbours") {
    const std::string before = sample("php_written.xml");
    write_file(file, before);
    XmlStateStore store(file);
    save_record(store, "vm-1", full_record());
    const std::string claimed = read_file(file);
    require_same_outside(before, claimed, "vm-1");
    const auto [b0, b1] = machine_span(before, "vm-1");
    const auto [c0, c1] = machine_span(claimed, "vm-1");
    CHECK(without_job_fields(before.substr(b0, b1 - b0)) ==
          without_job_fields(claimed.substr(c0, c1 - c0)));
    // The new fields follow job_pid, one a line, in the PHP tool's two-space indentation.
    CHECK(claimed.find("    <job>run &lt;suite&gt; &amp; \"more\"</job>\n"
                       "    <job_pid>4321</job_pid>\n"
                       "    <job_timestamp>1763047845</job_timestamp>\n"
                       "    <job_host>lab-host</job_host>\n"
                       "    <job_boot_id>0f3a9c1e-2b44-4c55-8d66-77889900aabb</job_boot_id>\n"
                       "    <job_start>123456</job_start>\n"
                       "    <job_token>00112233445566778899aabbccddeeff</job_token>\n"
                       "    <startcmd/>\n") != std::string::npos);
    {
      auto tx = store.begin();
      CHECK(tx.find("vm-1") == full_record());
      CHECK(tx.find("test-machine")->pid == "12345");
    }
    save_record(store, "vm-1", JobRecord{});
    const std::string released = read_file(file);
    // Back to the original bytes, plus the emptied fields this library added.
    std::string expected = before;
    const auto at = expected.find("    <job_pid/>\n", b0) + std::string("    <job_pid/>\n").size();
    expected.insert(at,
                    "    <job_timestamp/>\n    <job_host/>\n    <job_boot_id/>\n"
                    "    <job_start/>\n    <job_token/>\n");
    CHECK(released == expected);
  }

  SECTION("legacy file with every oddity, LF and CRLF: other bytes never change") {
    const auto eol = GENERATE(as<std::string>{}, "lf", "crlf");
    const std::string base = sample("mixed_legacy.xml");
    const std::string before = eol == "lf" ? base : to_crlf(base);
    write_file(file, before);
    XmlStateStore store(file);
    for (const std::string m : {"old-box", "busy-box", "compact"}) {
      INFO("machine " << m);
      const std::string start = read_file(file);
      JobRecord previous;
      {
        auto tx = store.begin();
        previous = *tx.find(m);
      }
      save_record(store, m, full_record("job on " + m + " with\ttab"));
      const std::string claimed = read_file(file);
      require_same_outside(start, claimed, m);
      const auto [s0, s1] = machine_span(start, m);
      const auto [c0, c1] = machine_span(claimed, m);
      CHECK(without_job_fields(start.substr(s0, s1 - s0)) ==
            without_job_fields(claimed.substr(c0, c1 - c0)));
      if (eol == "crlf" && m != "compact") {
        // Inserted fields use the file's line ends: no bare LF appears.
        CHECK(std::regex_search(claimed, std::regex("[^\r]\n")) == false);
      }
      {
        XmlStateStore fresh(file);  // a second reader sees exactly what was written
        auto tx = fresh.begin();
        CHECK(tx.find(m) == full_record("job on " + m + " with\ttab"));
      }
      save_record(store, m, previous);
      const std::string restored = read_file(file);
      require_same_outside(start, restored, m);
      auto tx = store.begin();
      CHECK(tx.find(m) == previous);
    }
    // The machine whose seven job fields all existed returns to its exact bytes.
    const auto [r0, r1] = machine_span(read_file(file), "compact");
    const auto [o0, o1] = machine_span(before, "compact");
    CHECK(read_file(file).substr(r0, r1 - r0) == before.substr(o0, o1 - o0));
  }

  SECTION("a write that changes nothing does not touch the file") {
    write_file(file, sample("php_written.xml"));
    const FileSnapshot before(file);
    XmlStateStore store(file);
    auto tx = store.begin();
    tx.write("test-machine", *tx.find("test-machine"));
    tx.commit();
    CHECK(FileSnapshot(file) == before);
  }

  SECTION("the inode is kept: PHP processes waiting on its lock see the new content") {
    write_file(file, sample("php_written.xml"));
    const FileSnapshot before(file);
    XmlStateStore store(file);
    save_record(store, "vm-1", full_record());
    CHECK(FileSnapshot(file).inode == before.inode);
  }

  SECTION("text XML cannot hold is refused before anything is written") {
    write_file(file, sample("php_written.xml"));
    const FileSnapshot before(file);
    XmlStateStore store(file);
    auto tx = store.begin();
    JobRecord bad = full_record();
    bad.job = std::string("evil\x01job");
    try {
      tx.write("vm-1", bad);
      FAIL("no error");
    } catch (const mama::error& e) {
      CHECK(e.code() == mama::errc::invalid_argument);
      CHECK(std::string(e.what()).find("vm-1") != std::string::npos);
    }
    CHECK_THROWS_AS(tx.write("no-such-machine", full_record()), mama::error);
    tx.commit();
    CHECK(FileSnapshot(file) == before);
  }
}

TEST_CASE("the output is a file the PHP tool reads", "[xml_store][php]") {
  if (::system(
          "php -r 'exit(function_exists(\"simplexml_load_string\") ? 0 : 1);' >/dev/null 2>&1") !=
      0) {
    MAMA_SKIP("php-cli with php-xml is not installed: the PHP tool's reading is not checked");
  }
  TempDir dir;
  const auto file = dir / "mama.xml";
  for (const std::string name : {"php_written.xml", "mixed_legacy.xml"}) {
    write_file(file, sample(name));
    XmlStateStore store(file);
    auto tx = store.begin();
    const std::string m = tx.machines().front().name;
    tx.write(m, full_record());
    tx.commit();
    const std::string cmd =
        "php -r '$s = file_get_contents(\"" + file.string() +
        "\"); if (strpos($s, \"</settings>\") === false) exit(2); $x = simplexml_load_string($s); "
        "if ($x === false) exit(3); foreach ($x->machine as $m) if ((string)$m->name === \"" +
        m + "\") { echo $m->job, \"|\", $m->job_pid; exit(0); } exit(4);'";
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p);
    char buf[256] = {};
    const auto n = std::fread(buf, 1, sizeof buf - 1, p);
    const int status = ::pclose(p);
    INFO(name);
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(std::string(buf, n) == "run <suite> & \"more\"|4321");
  }
}

TEST_CASE("bad input gives an error naming the file and leaves it as it was", "[xml_store]") {
  TempDir dir;
  const auto file = dir / "mama.xml";
  const std::string good = sample("php_written.xml");

  const auto expect_refused = [&](const std::string& content, const std::string& problem,
                                  XmlStoreOptions options = {}) {
    write_file(file, content);
    const FileSnapshot before(file);
    XmlStateStore store(file, options);
    try {
      auto tx = store.begin();
      tx.write("vm-1", full_record());
      tx.commit();
      FAIL("accepted: " << problem);
    } catch (const mama::error& e) {
      const std::string what = e.what();
      INFO(what);
      CHECK(e.code() == mama::errc::bad_state_file);
      CHECK(what.find(file.string()) != std::string::npos);
      CHECK(what.find(problem) != std::string::npos);
    }
    CHECK(FileSnapshot(file) == before);
    CHECK(!fs::exists(dir / "mama.xml.d" / "journal"));
  };

  SECTION("empty") {
    expect_refused("", "is empty");
    expect_refused("\n  \n", "is empty");
  }
  SECTION("truncated at many points") {
    for (std::size_t cut : {std::size_t{1}, std::size_t{10}, good.size() / 3, good.size() / 2,
                            good.size() - 20, good.size() - 3}) {
      INFO("cut at " << cut);
      expect_refused(good.substr(0, cut), "has no </settings>");
    }
  }
  SECTION("not XML") {
    expect_refused("this is not xml </settings>", "not valid XML");
    expect_refused("<settings><machine><name>a</machine></settings>", "not valid XML");
  }
  SECTION("wrong root or two roots") {
    expect_refused("<?xml version=\"1.0\"?>\n<config><x>&lt;/settings&gt;</x></config>\n",
                   "has no </settings>");
    expect_refused("<config><y/></config><!-- </settings> -->\n",
                   "exactly one root element <settings>");
    expect_refused("<settings></settings>\n<settings></settings>\n",
                   "exactly one root element <settings>");
  }
  SECTION("a save that would remove the file's only </settings> text") {
    // The root is closed as `</settings >` (valid XML); the only literal `</settings>`, which
    // the PHP tool looks for, is inside vm-1's job text. Rewriting that job would lock the
    // PHP tool out of the lab: the save is refused instead (found by the fuzzer).
    const std::string doc =
        "<?xml version=\"1.0\"?>\n<settings>\n  <machine>\n    <name>vm-1</name>\n"
        "    <job><![CDATA[old </settings> text]]></job>\n  </machine>\n</settings >\n";
    expect_refused(doc, "</settings>");
  }
  SECTION("duplicate machine names") {
    const auto at = good.find("  <machine>\n    <name>test-machine");
    std::string dup = good;
    dup.insert(at, "  <machine>\n    <name>vm-1</name>\n  </machine>\n");
    expect_refused(dup, "names machine 'vm-1' twice");
  }
  SECTION("larger than max_file_size") {
    XmlStoreOptions small;
    small.max_file_size = 512;
    expect_refused(good, "is larger than", small);
  }
  SECTION("missing") {
    XmlStateStore store(dir / "absent.xml");
    try {
      store.begin();
      FAIL("no error");
    } catch (const mama::error& e) {
      CHECK(std::string(e.what()).find((dir / "absent.xml").string()) != std::string::npos);
      CHECK(std::string(e.what()).find("does not exist") != std::string::npos);
    }
    CHECK(!fs::exists(dir / "absent.xml"));
    CHECK(!fs::exists(dir / "absent.xml.d"));
  }
  SECTION("a directory where the file should be") {
    fs::create_directory(dir / "adir.xml");
    XmlStateStore store(dir / "adir.xml");
    try {
      store.begin();
      FAIL("no error");
    } catch (const mama::error& e) {
      CHECK(e.code() == mama::errc::bad_state_file);
      CHECK(std::string(e.what()).find("is a directory") != std::string::npos);
    }
  }
}

TEST_CASE("bad numbers in a record: invalid PID is stale, a bad timestamp is stamped",
          "[xml_store][guard]") {
  TempDir dir;
  const auto file = dir / "mama.xml";
  const std::string good = sample("php_written.xml");

  SECTION("job_pid not a positive number: stale, cleared, claimed") {
    for (const std::string pid : {"abc", "-5", "0", "x12"}) {
      INFO("job_pid " << pid);
      std::string text = good;
      const auto at = text.find("<job_pid>12345</job_pid>");
      text.replace(at, std::string("<job_pid>12345</job_pid>").size(),
                   "<job_pid>" + pid + "</job_pid>");
      write_file(file, text);
      std::vector<std::string> reasons;
      auto options = quiet();
      options.on_event = [&](const mama::Event& e) {
        if (e.kind == mama::EventKind::stale_detected) reasons.emplace_back(e.reason);
      };
      auto guard = mama::JobGuard::try_claim(XmlStateStore(file), "test-machine", options);
      REQUIRE(guard);
      REQUIRE(reasons == std::vector<std::string>{"invalid PID"});
    }
  }
  SECTION("job_timestamp not a number on a PID-less job: stamped once, only that field") {
    std::string text = good;
    const auto at = text.find("    <job_pid>12345</job_pid>\n");
    text.replace(at, std::string("    <job_pid>12345</job_pid>\n").size(),
                 "    <job_pid/>\n    <job_timestamp>yesterday</job_timestamp>\n");
    write_file(file, text);
    auto guard = mama::JobGuard::try_claim(XmlStateStore(file), "test-machine", quiet());
    CHECK_FALSE(guard);
    const std::string after = read_file(file);
    const auto stamp = after.find("<job_timestamp>");
    REQUIRE(stamp != std::string::npos);
    const auto end = after.find("</job_timestamp>", stamp);
    const auto value = std::stoll(after.substr(stamp + 15, end - stamp - 15));
    CHECK(std::abs(value - std::time(nullptr)) < 60);
    std::string expected = text;
    expected.replace(expected.find("yesterday"), 9, std::to_string(value));
    CHECK(after == expected);
  }
}

TEST_CASE("mode, group and runtime files have sensible permissions", "[xml_store]") {
  TempDir dir;
  const auto file = dir / "mama.xml";
  write_file(file, sample("php_written.xml"));
  // A group other than ours when we may choose one (root), so keeping it means something.
  gid_t gid = ::getegid();
  if (::geteuid() == 0) {
    if (const ::group* g = ::getgrnam("nogroup")) gid = g->gr_gid;
    REQUIRE(::chown(file.c_str(), 0, gid) == 0);
  }
  REQUIRE(::chmod(file.c_str(), 0640) == 0);

  SECTION("shared_with_php") {
    XmlStateStore store(file);
    {
      auto tx = store.begin();
      tx.write("vm-1", full_record());
      REQUIRE(tx.try_hold("vm-1"));
      tx.commit();
    }
    save_record(store, "vm-1", JobRecord{});
    struct stat st {};
    REQUIRE(::stat(file.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0640);
    CHECK(st.st_gid == gid);
    REQUIRE(::stat((dir / "mama.xml.d").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0750);  // the file's read bits become search bits
    CHECK((st.st_mode & S_ISGID) != 0);  // what anyone creates in it gets the file's group
    CHECK(st.st_gid == gid);
    REQUIRE(::stat((dir / "mama.xml.d" / "machine.vm-1.lock").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0440);  // opened for reading only; never world-readable here
    CHECK(st.st_gid == gid);
    CHECK(!fs::exists(dir / "mama.xml.d" / "journal"));
    CHECK(!fs::exists(dir / "mama.xml.d" / "journal.tmp"));
  }
  SECTION("a runtime directory made without the file's group and setgid bit is mended") {
    fs::create_directory(dir / "mama.xml.d");
    REQUIRE(::chmod((dir / "mama.xml.d").c_str(), 0700) == 0);
    XmlStateStore store(file);
    save_record(store, "vm-1", full_record());
    struct stat st {};
    REQUIRE(::stat((dir / "mama.xml.d").c_str(), &st) == 0);
    CHECK(st.st_gid == gid);
    CHECK((st.st_mode & S_ISGID) != 0);
    CHECK((st.st_mode & 0777) == 0700);  // its owner's choice of permissions stays
  }
  SECTION("standalone keeps mode and owner across the rename") {
    XmlStoreOptions o;
    o.mode = XmlStoreOptions::LockMode::standalone;
    XmlStateStore store(file, o);
    struct stat old_st {};
    REQUIRE(::stat(file.c_str(), &old_st) == 0);
    save_record(store, "vm-1", full_record());
    struct stat st {};
    REQUIRE(::stat(file.c_str(), &st) == 0);
    CHECK(st.st_ino != old_st.st_ino);  // replaced atomically
    CHECK((st.st_mode & 07777) == 0640);
    CHECK(st.st_uid == old_st.st_uid);
    CHECK(st.st_gid == gid);
  }
}

TEST_CASE("planted symbolic links in the runtime directory are never followed", "[xml_store]") {
  TempDir dir;
  const auto file = dir / "mama.xml";
  write_file(file, sample("php_written.xml"));
  const auto target = dir / "victim";
  write_file(target, "precious\n");
  fs::create_directory(dir / "mama.xml.d");
  XmlStateStore store(file);

  SECTION("journal.tmp") {
    fs::create_symlink(target, dir / "mama.xml.d" / "journal.tmp");
    save_record(store, "vm-1", full_record());
    CHECK(read_file(target) == "precious\n");
    auto tx = store.begin();
    CHECK(tx.find("vm-1") == full_record());
  }
  SECTION("journal") {
    fs::create_symlink(target, dir / "mama.xml.d" / "journal");
    save_record(store, "vm-1", full_record());
    CHECK(read_file(target) == "precious\n");
    CHECK(!fs::exists(fs::symlink_status(dir / "mama.xml.d" / "journal")));
  }
  SECTION("a lock file") {
    fs::create_symlink(target, dir / "mama.xml.d" / "machine.vm-1.lock");
    auto tx = store.begin();
    try {
      tx.try_hold("vm-1");
      FAIL("followed the link");
    } catch (const mama::error& e) {
      CHECK(std::string(e.what()).find("symbolic link") != std::string::npos);
    }
    CHECK(read_file(target) == "precious\n");
    struct stat st {};
    REQUIRE(::stat(target.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0644);
  }
  SECTION("the runtime directory itself") {
    fs::remove(dir / "mama.xml.d");
    fs::create_directory(dir / "elsewhere");
    fs::create_directory_symlink(dir / "elsewhere", dir / "mama.xml.d");
    auto tx = store.begin();
    tx.write("vm-1", full_record());
    CHECK_THROWS_AS(tx.commit(), mama::error);
    CHECK(fs::is_empty(dir / "elsewhere"));
  }
  SECTION("standalone temporary file") {
    XmlStoreOptions o;
    o.mode = XmlStoreOptions::LockMode::standalone;
    XmlStateStore standalone(file, o);
    fs::create_symlink(target, dir / ".mama.xml.mama-tmp");
    save_record(standalone, "vm-1", full_record());
    CHECK(read_file(target) == "precious\n");
    CHECK(fs::is_regular_file(fs::symlink_status(file)));
  }
}

TEST_CASE("standalone mode claims, releases and replaces the file atomically", "[xml_store]") {
  TempDir dir;
  const auto file = dir / "mama.xml";
  write_file(file, sample("php_written.xml"));
  XmlStoreOptions o;
  o.mode = XmlStoreOptions::LockMode::standalone;
  XmlStateStore store(file, o);
  {
    auto guard = mama::JobGuard::try_claim(store, "vm-1", quiet("standalone job"));
    REQUIRE(guard);
    XmlStateStore other(file, o);
    auto tx = other.begin();
    CHECK(tx.find("vm-1")->job == "standalone job");
    CHECK(!tx.try_hold("vm-1"));  // our hold is a kernel lock in this mode too
    CHECK(fs::exists(dir / "mama.xml.d" / "state.lock"));
  }
  auto tx = store.begin();
  CHECK(tx.find("vm-1")->job.empty());
  CHECK(tx.find("test-machine")->pid == "12345");
  CHECK(!fs::exists(dir / ".mama.xml.mama-tmp"));
}

TEST_CASE("a transaction goes on after a commit: reads and further saves follow the new bytes",
          "[xml_store]") {
  TempDir dir;
  const auto file = dir / "mama.xml";
  const std::string before = sample("mixed_legacy.xml");
  write_file(file, before);
  XmlStateStore store(file);
  std::vector<std::string> names;
  {
    auto tx = store.begin();
    for (const auto& m : tx.machines()) names.push_back(m.name);
  }
  REQUIRE(names.size() >= 2);
  const std::string first = names.front(), last = names.back();
  {
    auto tx = store.begin();
    tx.write(first, full_record("first job"));
    tx.commit();
    // Read again after the commit, then edit another machine and commit again.
    CHECK(tx.find(first)->job == "first job");
    tx.write(last, full_record("last job"));
    tx.commit();
    CHECK(tx.find(last)->job == "last job");
    const auto all = tx.machines();
    CHECK(all.front().job.job == "first job");
    CHECK(all.back().job.job == "last job");
  }
  {
    auto tx = store.begin();
    CHECK(*tx.find(first) == full_record("first job"));
    CHECK(*tx.find(last) == full_record("last job"));
    tx.write(first, {});
    tx.write(last, {});
    tx.commit();
  }
  // Both machines cleared in one save: only their job elements differ from the original.
  const std::string after = read_file(file);
  CHECK(without_job_fields(after) == without_job_fields(before));
}

namespace {
// php_written.xml after mama claimed vm-1 ("kept job"), with the check record that save left.
struct RecordedLab {
  TempDir dir;
  fs::path file = dir / "mama.xml";
  fs::path record = dir / "mama.xml.d" / "checked";
  std::string saved;
  std::optional<mama::detail::check_record> decoded;
  RecordedLab() {
    write_file(file, sample("php_written.xml"));
    XmlStateStore store(file);
    save_record(store, "vm-1", full_record("kept job"));  // creates mama.xml.d and the record
    saved = read_file(file);
    decoded = mama::detail::decode_check_record(read_file(record));
    REQUIRE(decoded);
  }
};
}  // namespace

// The check record (detail/xml/check_record.hpp) as the store uses it: a new store trusts it
// only for the bytes it was made of.
TEST_CASE("a new store uses the check record only for the bytes it describes",
          "[xml_store][check_record]") {
  const RecordedLab lab;
  const fs::path &file = lab.file, &record = lab.record;
  const std::string& saved = lab.saved;
  const auto& decoded = lab.decoded;
  std::vector<std::uint64_t> sums;
  REQUIRE(mama::detail::check_record_matches(*decoded, saved, sums));

  // A record of these bytes whose names are swapped: a new store that reads through it finds
  // vm-1's job under test-machine, which proves the record, not a parse, gave the index.
  mama::detail::check_record swapped = *decoded;
  REQUIRE(swapped.names.size() >= 2);
  std::swap(swapped.names[0], swapped.names[1]);
  REQUIRE(swapped.names[1] == "vm-1");
  const auto plant = [&](const mama::detail::check_record& r) {
    write_file(record,
               mama::detail::encode_check_record(r.size, r.utf8, r.sums, r.extents, r.names));
  };

  SECTION("the bytes it was made of: it gives the index") {
    plant(swapped);
    XmlStateStore fresh(file);
    auto tx = fresh.begin();
    CHECK(tx.find(swapped.names[0])->job == "kept job");
    // A save through a wrong index is refused by the read-back check; nothing is written.
    tx.write("vm-1", full_record("other job"));
    CHECK_THROWS_AS(tx.commit(), mama::error);
    CHECK(read_file(file) == saved);
  }
  SECTION("one byte changed by another writer, size kept: the file is read, not the record") {
    plant(swapped);
    std::string changed = saved;
    const auto at = changed.find("kept job");
    REQUIRE(at != std::string::npos);
    changed.replace(at, 8, "PHP  job");
    write_file(file, changed);
    XmlStateStore fresh(file);
    auto tx = fresh.begin();
    CHECK(tx.find("vm-1")->job == "PHP  job");
    CHECK(tx.find("test-machine")->job != "PHP  job");  // found by its own name
    // The check wrote a record of the new bytes.
    const auto now = mama::detail::decode_check_record(read_file(record));
    REQUIRE(now);
    CHECK(mama::detail::check_record_matches(*now, changed, sums));
  }
  SECTION("a same-size change that breaks the XML is refused, the file left as it was") {
    plant(*decoded);
    std::string broken = saved;
    const auto at = broken.find("</name>");
    REQUIRE(at != std::string::npos);
    broken.replace(at, 7, "</nam> ");
    write_file(file, broken);
    XmlStateStore fresh(file);
    CHECK_THROWS_AS(fresh.begin(), mama::error);
    CHECK(read_file(file) == broken);
  }
  SECTION("a torn record is ignored and written anew") {
    const std::string whole = read_file(record);
    write_file(record, whole.substr(0, whole.size() / 2));
    XmlStateStore fresh(file);
    CHECK(fresh.begin().find("vm-1")->job == "kept job");
    CHECK(read_file(record) == whole);
  }
  SECTION("switched off: no record is read or written") {
    plant(swapped);
    XmlStoreOptions o;
    o.check_record = false;
    XmlStateStore fresh(file, o);
    CHECK(fresh.begin().find("vm-1")->job == "kept job");
    fs::remove(record);
    save_record(fresh, "vm-1", {});
    CHECK(!fs::exists(record));
  }
}

// wide_checksum64's lane step, x -> ((x ^ w) * K) ^ shift, is a bijection for every word w, so
// whoever can write mama.xml can make other bytes of the same size sum to the record's blocks
// without any search: change one word, and solve the word 32 bytes later (same lane) for the
// lane value the original bytes reached. This test does exactly that.
namespace {
constexpr std::uint64_t lane_mul = 0xff51afd7ed558ccdull;
std::uint64_t lane_step(std::uint64_t lane, std::uint64_t w) {
  lane = (lane ^ w) * lane_mul;
  return lane ^ (lane >> 32);
}
std::uint64_t lane_unstep(std::uint64_t after) {  // the value of (lane ^ w) that gives `after`
  std::uint64_t inv = lane_mul;                   // Newton: inv = lane_mul^-1 mod 2^64
  for (int i = 0; i < 6; ++i) inv *= 2 - lane_mul * inv;
  return (after ^ (after >> 32)) * inv;
}
std::uint64_t word_at(std::string_view s, std::size_t at) {
  std::uint64_t w;
  std::memcpy(&w, s.data() + at, 8);
  return w;
}
}  // namespace

// A hostile writer of mama.xml, not of mama.xml.d/: bytes that the whole parse refuses, of the
// record's size and block sums, inside a machine element (the scan between machines does not
// look there). The record must not vouch for them. It does (the block sums are a checksum, not
// a hash nobody can invert): an open limit, documented in check_record.hpp, so [!mayfail]. Such
// a writer can already lock the PHP tool out or free any machine by editing mama.xml.
TEST_CASE("a same-size file forged to the record's block sums is still refused, left as it was",
          "[xml_store][check_record][!mayfail]") {
  const RecordedLab lab;
  const fs::path &file = lab.file, &record = lab.record;
  const std::string& saved = lab.saved;
  const auto& decoded = lab.decoded;
  REQUIRE(saved.size() < mama::detail::check_block);  // one block; lane 0 takes words 0, 32, ...
  // Two words of lane 0 inside test-machine's element, after its start tag: break the first,
  // solve the second for the lane value the original bytes reached.
  const auto [mb, me] = machine_span(saved, "test-machine");
  std::size_t m = (mb + 40 + 31) / 32;
  REQUIRE(32 * (m + 1) + 32 <= me);
  std::uint64_t lane = 0x9e3779b97f4a7c15ull ^ saved.size();
  for (std::size_t j = 0; j < m; ++j) lane = lane_step(lane, word_at(saved, 32 * j));
  const std::uint64_t want =
      lane_step(lane_step(lane, word_at(saved, 32 * m)), word_at(saved, 32 * (m + 1)));
  std::string forged = saved;
  std::memcpy(forged.data() + 32 * m, "</oops> ", 8);  // an end tag that closes nothing
  const std::uint64_t fixed = lane_unstep(want) ^ lane_step(lane, word_at(forged, 32 * m));
  std::memcpy(forged.data() + 32 * (m + 1), &fixed, 8);
  REQUIRE(forged != saved);
  REQUIRE(mama::detail::wide_checksum64(forged) == mama::detail::wide_checksum64(saved));
  std::vector<std::uint64_t> sums;
  REQUIRE(mama::detail::check_record_matches(*decoded, forged, sums));  // the forgery holds
  write_file(file, forged);
  {
    XmlStoreOptions whole;  // the whole parse refuses these bytes
    whole.check_record = false;
    XmlStateStore parsed(file, whole);
    CHECK_THROWS_AS(parsed.begin(), mama::error);
  }
  // A new process with the record: the same refusal, and a save writes nothing.
  XmlStateStore fresh(file);
  bool refused = false;
  try {
    auto tx = fresh.begin();
    tx.write("vm-1", full_record("hostile"));
    tx.commit();
  } catch (const mama::error&) {
    refused = true;
  }
  CHECK(refused);
  CHECK(read_file(file) == forged);
}

// A save and a read that checked only what changed reuse the block sums of the bytes before the
// change; over several 64 KiB blocks, with the file first exactly three blocks long, the record
// they leave must be byte for byte the one a whole check of the same bytes writes.
TEST_CASE("the record a save or a changed read leaves is the one a whole check writes",
          "[xml_store][check_record]") {
  TempDir dir;
  const auto file = dir / "mama.xml";
  const auto record = dir / "mama.xml.d" / "checked";
  const std::string php = sample("php_written.xml");
  const auto [mb, me] = machine_span(php, "vm-1");
  const std::string machine = php.substr(mb, me - mb);
  std::string lab = "<?xml version=\"1.0\"?>\n<settings>\n";
  for (int i = 0; i < 300; ++i) {
    std::string m = machine;
    const std::string name = "m-" + std::to_string(1000 + i);
    m.replace(m.find("vm-1"), 4, name);
    lab += "  " + m + "\n";
  }
  const std::string tail = "</settings>\n";
  const std::size_t size = 3 * mama::detail::check_block;
  REQUIRE(lab.size() + tail.size() + 9 < size);
  lab += "<!--" + std::string(size - lab.size() - tail.size() - 8, 'p') + "-->\n" + tail;
  REQUIRE(lab.size() == size);
  write_file(file, lab);
  fs::create_directory(dir / "mama.xml.d");
  const auto whole_check_record = [&] {
    fs::remove(record);
    XmlStateStore whole(file);
    CHECK(whole.begin().machines().size() == 300);
    return read_file(record);
  };

  XmlStateStore store(file);
  save_record(store, "m-1150", full_record("a job in the second block"));
  std::string left = read_file(record);
  CHECK(left == whole_check_record());

  // Another writer lengthens a machine in the third block: the store checks that machine only.
  std::string text = read_file(file);
  const auto [b, e] = machine_span(text, "m-1260");
  const auto ip = text.find("<ip>", b);
  REQUIRE(ip < e);
  text.insert(ip + 4, "10.");
  write_file(file, text);
  CHECK(store.begin().find("m-1260")->job.empty());
  left = read_file(record);
  CHECK(left == whole_check_record());

  // A save in the first block moves every block after it; one in the last block moves none.
  save_record(store, "m-1001", full_record("a job in the first block"));
  CHECK(read_file(record) == whole_check_record());
  save_record(store, "m-1299", full_record("a job in the last block"));
  CHECK(read_file(record) == whole_check_record());

  // A new store reads through the record: each machine's job as a whole parse finds it.
  XmlStateStore fresh(file);
  auto tx = fresh.begin();
  CHECK(tx.find("m-1001")->job == "a job in the first block");
  CHECK(tx.find("m-1150")->job == "a job in the second block");
  CHECK(tx.find("m-1299")->job == "a job in the last block");
}

// check_record.hpp says a forged index cannot redirect a save, since a commit parses each machine
// it edits back by itself and checks its name. A lab that keeps an old copy of a machine in a
// comment gives a forged record an element of the right name that no parse of the file sees:
// a user who may write mama.xml.d/ (not mama.xml) points vm-1 at that copy, and a claim lands in
// the comment, where neither the PHP tool nor a whole parse finds it (vm-1 looks free). The
// record's extents are therefore checked against a scan of the bytes between them, which does
// not meet an extent inside a comment.
TEST_CASE("a forged record cannot send a claim into a commented-out copy of its machine",
          "[xml_store][check_record]") {
  TempDir dir;
  const auto file = dir / "mama.xml";
  const auto record = dir / "mama.xml.d" / "checked";
  std::string lab = sample("php_written.xml");
  const auto [mb, me] = machine_span(lab, "vm-1");
  const std::string old_copy =
      "<!-- vm-1 before the move:\n  " + lab.substr(mb, me - mb) + "\n  -->\n  ";
  lab.insert(mb, old_copy);
  write_file(file, lab);
  {
    XmlStateStore store(file);
    save_record(store, "test-machine", full_record("other job"));  // the record of these bytes
  }
  const std::string saved = read_file(file);
  auto forged = mama::detail::decode_check_record(read_file(record));
  REQUIRE(forged);
  REQUIRE(forged->names.front() == "vm-1");
  const auto copy_begin = saved.find("<machine>");
  REQUIRE(copy_begin < forged->extents.front().begin);
  const auto copy_end = saved.find("</machine>", copy_begin) + std::string("</machine>").size();
  forged->extents.front() = {copy_begin, copy_end};
  write_file(record, mama::detail::encode_check_record(forged->size, forged->utf8, forged->sums,
                                                       forged->extents, forged->names));

  XmlStateStore fresh(file);
  bool refused = false;
  try {
    save_record(fresh, "vm-1", full_record("a claim"));
  } catch (const mama::error&) {
    refused = true;
  }
  XmlStoreOptions whole;  // what the PHP tool and a whole parse see
  whole.check_record = false;
  XmlStateStore parsed(file, whole);
  if (refused)
    CHECK(read_file(file) == saved);
  else
    CHECK(parsed.begin().find("vm-1")->job == "a claim");
}

// The record is believed on the premise that whoever may write mama.xml.d/ may write mama.xml.
// A lab that narrows mama.xml's mode (0666 -> 0644) keeps the wide directory mama made before,
// and a user mama.xml now refuses could plant a record there (see the commented-copy case
// above for what a forged index can do). So a record is believed only when neither the
// directory nor the record lets anyone write whom mama.xml does not.
TEST_CASE("a record that someone mama.xml refuses could have written is not believed",
          "[xml_store][check_record]") {
  TempDir dir;
  const auto file = dir / "mama.xml";
  const auto runtime = dir / "mama.xml.d";
  const auto record = runtime / "checked";
  write_file(file, sample("php_written.xml"));
  fs::permissions(file, fs::perms(0644));
  {
    XmlStateStore store(file);
    save_record(store, "vm-1", full_record("kept job"));
  }
  auto swapped = mama::detail::decode_check_record(read_file(record));
  REQUIRE(swapped);
  REQUIRE(swapped->names.size() >= 2);
  REQUIRE(swapped->names[0] == "vm-1");
  std::swap(swapped->names[0], swapped->names[1]);
  const std::string forged = mama::detail::encode_check_record(
      swapped->size, swapped->utf8, swapped->sums, swapped->extents, swapped->names);
  const auto plant = [&] {
    fs::remove(record);
    write_file(record, forged);
    fs::permissions(record, fs::perms(0644));
  };
  const auto found_by = [&] {  // the machine holding vm-1's job, as a new store finds it
    XmlStateStore fresh(file);
    auto tx = fresh.begin();
    return tx.find("vm-1")->job == "kept job" ? std::string("vm-1") : swapped->names[0];
  };

  SECTION("the directory mama made: the record is believed (so the cases below test trust)") {
    plant();
    CHECK(found_by() == swapped->names[0]);
  }
  SECTION("a directory that others may write, mama.xml not") {
    fs::permissions(runtime, fs::perms(0777), fs::perm_options::add);
    plant();
    CHECK(found_by() == "vm-1");
  }
  SECTION("a directory that its group may write, mama.xml not") {
    fs::permissions(runtime, fs::perms(0070), fs::perm_options::add);
    plant();
    CHECK(found_by() == "vm-1");
  }
  SECTION("a record that others may write, mama.xml not") {
    plant();
    fs::permissions(record, fs::perms(0666));
    CHECK(found_by() == "vm-1");
  }
  SECTION("mama.xml that others may write: its wide directory is no wider") {
    fs::permissions(file, fs::perms(0666));
    fs::permissions(runtime, fs::perms(0777), fs::perm_options::add);
    plant();
    CHECK(found_by() == swapped->names[0]);
  }
}

TEST_CASE("reading a file does not create its runtime directory, not even for the check record",
          "[xml_store][check_record]") {
  // Root listing a lab first would otherwise make a directory that the lab's users cannot
  // write their lock files in.
  TempDir dir;
  const auto file = dir / "mama.xml";
  write_file(file, sample("php_written.xml"));
  XmlStateStore store(file);
  CHECK(store.begin().machines().size() >= 2);
  CHECK(!fs::exists(dir / "mama.xml.d"));
  // Once the directory is there (a claim made it), a read leaves the record in it.
  fs::create_directory(dir / "mama.xml.d");
  XmlStateStore fresh(file);
  CHECK(fresh.begin().machines().size() >= 2);
  CHECK(fs::is_regular_file(dir / "mama.xml.d" / "checked"));
}

TEST_CASE("one file reached through symbolic links shares its holds, journal and runtime directory",
          "[xml_store][paths]") {
  TempDir dir;
  fs::create_directory(dir / "real");
  const auto file = dir / "real" / "mama.xml";
  write_file(file, sample("php_written.xml"));
  fs::create_symlink(file, dir / "alias.xml");                  // the file itself
  fs::create_directory_symlink(dir / "real", dir / "linkdir");  // one of its directories
  const std::vector<fs::path> names{
      file,
      dir / "alias.xml",
      dir / "linkdir" / "mama.xml",
      dir / "real" / ".." / "linkdir" / "." / "mama.xml",
      fs::relative(dir / "alias.xml", fs::current_path()),  // relative to the working directory
  };
  const fs::path expected = fs::canonical(file).string() + ".d";

  SECTION("a hold taken through any name is held through every other") {
    for (const auto& holder_name : names) {
      XmlStateStore holder(holder_name);
      CHECK(holder.runtime_dir() == expected);
      auto hold = holder.begin().try_hold("vm-1");  // kept past the transaction, as a claim does
      REQUIRE(hold);
      for (const auto& other_name : names) {
        INFO("held through " << holder_name << ", probed through " << other_name);
        XmlStateStore other(other_name);
        CHECK(!other.begin().try_hold("vm-1"));
      }
    }
    CHECK(fs::exists(expected / "machine.vm-1.lock"));
    CHECK(!fs::exists(dir / "alias.xml.d"));
  }

  SECTION("a save killed half way through one name is restored through another") {
    for (std::size_t i = 0; i < names.size(); ++i) {
      const fs::path& writer = names[i];
      const fs::path& reader = names[(i + 1) % names.size()];
      INFO("written through " << writer << ", read through " << reader);
      XmlStoreOptions crash;
      crash.crash_hook = [](mama::SaveStep s) {
        if (s == mama::SaveStep::file_half_written) ::kill(::getpid(), SIGKILL);
      };
      mama::test::Child child([&] {
        XmlStateStore store(writer, crash);
        auto tx = store.begin();
        tx.write("vm-1", full_record("job " + std::to_string(i)));
        tx.commit();
        return 0;
      });
      const int status = child.wait();
      REQUIRE(WIFSIGNALED(status));
      REQUIRE(read_file(file).find("</settings>") == std::string::npos);  // torn
      XmlStateStore store(reader);
      CHECK(store.begin().find("vm-1") == full_record("job " + std::to_string(i)));
      CHECK(read_file(file).find("</settings>") != std::string::npos);
      CHECK(!fs::exists(expected / "journal"));
    }
  }

  SECTION("one store follows a link that is pointed at another file") {
    const auto other = dir / "real" / "other.xml";
    write_file(other, sample("php_written.xml"));
    XmlStateStore store(dir / "alias.xml");
    auto first = store.begin().try_hold("vm-1");
    REQUIRE(first);
    fs::remove(dir / "alias.xml");
    fs::create_symlink(other, dir / "alias.xml");
    CHECK(store.runtime_dir() == fs::canonical(other).string() + ".d");
    auto second = store.begin().try_hold("vm-1");  // other.xml's vm-1 is free
    CHECK(second);
    CHECK(fs::exists(fs::canonical(other).string() + ".d/machine.vm-1.lock"));
    CHECK(!XmlStateStore(file).begin().try_hold("vm-1"));  // mama.xml's is still held
  }
  SECTION("an explicit runtime directory is used as given") {
    XmlStoreOptions o;
    o.runtime_dir = dir / "elsewhere";
    XmlStateStore store(dir / "alias.xml", o);
    CHECK(store.runtime_dir() == dir / "elsewhere");
    auto hold = store.begin().try_hold("vm-1");
    REQUIRE(hold);
    CHECK(fs::exists(dir / "elsewhere" / "machine.vm-1.lock"));
    CHECK(!XmlStateStore(file, o).begin().try_hold("vm-1"));
    CHECK(!fs::exists(expected));
  }
}

TEST_CASE("valid_utf8 accepts well-formed UTF-8 and nothing else", "[utf8]") {
  using mama::detail::valid_utf8;
  for (const std::string ok :
       {"", "plain ascii", "caf\xc3\xa9", "\xe2\x82\xac 5", "\xf0\x9f\x98\x80", "\xef\xbf\xbd",
        "\xed\x9f\xbf", "\xee\x80\x80", "\xf4\x8f\xbf\xbd", "\xef\xb7\x90", "tab\tand\nnewline"}) {
    INFO(mama::detail::escape_control(ok));
    CHECK(valid_utf8(ok));
  }
  for (const std::string bad : {
           "\x80",                  // a continuation byte alone
           "\xc3",                  // truncated at the end
           "\xc3(",                 // truncated in the middle
           "\xe2\x82",              // three-byte sequence cut short
           "\xf0\x9f\x98",          // four-byte sequence cut short
           "\xc0\xaf",              // overlong '/'
           "\xc1\xbf",              // overlong
           "\xe0\x80\xaf",          // overlong (three bytes)
           "\xf0\x80\x80\xaf",      // overlong (four bytes)
           "\xed\xa0\x80",          // U+D800, a surrogate
           "\xed\xbf\xbf",          // U+DFFF
           "\xf4\x90\x80\x80",      // U+110000, past Unicode
           "\xf5\x80\x80\x80",      // lead byte past U+10FFFF
           "\xff",                  // never in UTF-8
           "\xfe",                  // never in UTF-8
           "\xef\xbf\xbe",          // U+FFFE, not an XML character
           "\xef\xbf\xbf",          // U+FFFF, not an XML character
           "ok then \xe9 latin-1",  // Latin-1, not UTF-8
       }) {
    INFO(mama::detail::escape_control(bad));
    CHECK(!valid_utf8(bad));
  }
}

TEST_CASE("job text that is not UTF-8 is refused, and the file stays readable by PHP",
          "[xml_store][utf8][php]") {
  TempDir dir;
  const auto file = dir / "mama.xml";
  write_file(file, sample("php_written.xml"));
  const std::string before = read_file(file);
  const bool php =
      ::system(
          "php -r 'exit(function_exists(\"simplexml_load_file\") ? 0 : 1);' >/dev/null "
          "2>&1") == 0;
  // Exit 0 when PHP's SimpleXML loads `p` and finds machine vm-1 in it.
  const auto php_loads = [](const fs::path& p) {
    const std::string cmd = "php -r '$x = @simplexml_load_file(\"" + p.string() +
                            "\"); exit($x !== false && count($x->machine) == 2 ? 0 : 1);'";
    return WEXITSTATUS(::system(cmd.c_str())) == 0;
  };
  if (php) {
    // Why: a file with such bytes in it is one the PHP tool cannot load at all.
    std::string broken = before;
    broken.replace(broken.find("<job/>"), 6, "<job>caf\xe9</job>");
    write_file(dir / "broken.xml", broken);
    CHECK(!php_loads(dir / "broken.xml"));
    CHECK(php_loads(file));
  }
  XmlStateStore store(file);
  for (const std::string bad : {"caf\xe9", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "x\xc3",
                                "\xef\xbf\xbe", "\xef\xbf\xbf"}) {
    for (std::size_t field = 0; field < mama::job_field_names.size(); ++field) {
      INFO(mama::job_field_names[field] << " = " << mama::detail::escape_control(bad));
      JobRecord r = full_record();
      r.*mama::job_field_members[field] = bad;
      auto tx = store.begin();
      try {
        tx.write("vm-1", r);
        tx.commit();
        FAIL("accepted");
      } catch (const mama::error& e) {
        const std::string what = e.what();
        INFO(what);
        CHECK(e.code() == mama::errc::invalid_argument);
        CHECK(what.find("vm-1") != std::string::npos);
        CHECK(what.find(file.string()) != std::string::npos);
        CHECK(what.find("UTF-8") != std::string::npos);
      }
      tx.commit();  // nothing was staged
    }
  }
  CHECK(read_file(file) == before);
  if (php) {
    CHECK(php_loads(file));
  } else {
    mama::test::skip_check(
        "php-cli with SimpleXML is not installed: the PHP half of this test did not run");
  }
}

TEST_CASE("the state file is read into memory once, not into a buffer twice its size",
          "[xml_store]") {
  // pread_all checked whether the file grew by growing its string, which doubled the capacity
  // and held two copies of a large mama.xml at once.
  TempDir dir;
  const auto path = dir / "big.xml";
  std::string content(3u << 20, 'x');
  for (std::size_t i = 0; i < content.size(); i += 97) content[i] = static_cast<char>('a' + i % 26);
  write_file(path, content);
  mama::detail::unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd);
  std::string out;
  REQUIRE(mama::detail::pread_all(fd.get(), out, 64u << 20));
  CHECK(out == content);
  CHECK(out.capacity() < content.size() + content.size() / 8);
  // Over the limit: refused with EFBIG, also when the file is exactly one byte larger.
  CHECK_FALSE(mama::detail::pread_all(fd.get(), out, content.size() - 1));
  CHECK(errno == EFBIG);
  CHECK(mama::detail::pread_all(fd.get(), out, content.size()));
  CHECK(out == content);
}
