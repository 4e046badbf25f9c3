// tests/torture/torture.cpp — the torture run: many real worker processes claim and release the
// machines of one real mama.xml as fast as they can while a killer SIGKILLs them at random
// instants (and some workers kill themselves in the middle of a save); afterwards a checker
// proves invariants I1-I4 of SPEC §4 from the workers' logs and the file.
//
//   mama_torture [--workers N] [--machines M] [--seconds S] [--min-claims C] [--min-kills K]
//                [--max-seconds X] [--kill-ms MEAN] [--seed S] [--sync] [--dir DIR] [--keep]
//
// How the evidence is gathered (all times are CLOCK_MONOTONIC, the same clock in every process):
// - Each worker incarnation writes its own log, one write(2) per line with O_APPEND. A SIGKILL
//   can still cut the last write short (torture_log.hpp): that torn last line of a killed
//   worker's log is set aside, every other line is whole. A job's text names the incarnation and
//   job number ("torture-i17-j3"), which is what lands in the file's <job>.
// - `start` is written after the claim was saved, `end` before the release begins: [start, end]
//   lies inside the time the claim really held the machine. Some jobs fork a child "job process"
//   that inherits the machine's kernel hold and outlives the worker's release (or its death); it
//   writes `cend` just before it exits, so the job lasts at least until then.
// - A killed worker's open job (a `start` without `end`) is taken to last until the killer's
//   kill(2) call: the worker was alive then and had not begun releasing, so the hold was still
//   there. (The waitpid time would be later than the kernel dropping the hold: a successor may
//   rightly start before the killer reaps, so it would report false overlaps.)
// - Inside each job the worker re-reads the file under the state lock and logs whether its own
//   token is still in its machine's record (`check ok|lost`).
//
// Checks:
// - I1: per machine, the job intervals never overlap.
// - I4: no job ever finds its record gone or overwritten while it holds the machine (`check
//   lost`), no release ever meets a foreign record (`successor_found`: no worker here is ever
//   legitimately judged stale while alive, so a foreign record means somebody overwrote a live
//   holder), and every stale job that was cleared belonged to an incarnation that was already
//   killed (or had crashed itself) when it was cleared.
// - I2: once every worker and job process is gone, try_claim (which never waits) gets every
//   machine.
// - I3: the file parses, and with the job fields taken out it equals the initial file's
//   elements, order and text (unknown fields and elements included). Every claim error a worker
//   meets (e.g. a truncated file) is also a violation.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mama/guard.hpp>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "torture_log.hpp"

namespace fs = std::filesystem;

namespace {

struct Config {
  int workers = 4;
  int machines = 3;
  double seconds = 30;
  long min_claims = 0;
  long min_kills = 0;
  double max_seconds = 0;  // 0: 4 x seconds + 60
  double kill_ms = 60;     // mean time between two kills
  unsigned seed = 0;
  bool sync = false;
  bool keep = false;
  fs::path dir;
};

std::int64_t mono_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void log_line(int fd, const std::string& line) {
  const std::string l = line + "\n";
  // One write(2) per line: with O_APPEND lines never interleave. Only a SIGKILL during the
  // write can cut it short (the checker sets such a last line aside).
  (void)!::write(fd, l.data(), l.size());
}

std::string word(std::string_view s) {
  if (s.empty()) return "-";
  std::string out(s);
  for (char& c : out)
    if (c == ' ' || c == '\n' || c == '\t') c = '_';
  return out;
}

std::string machine_name(int i) { return "tm-" + std::to_string(i); }

// The initial state file: the SPEC's fields, an unknown field per machine, a comment, an
// unknown top-level element, and on the first machine a stale legacy job (PID that cannot exist).
std::string initial_file(int machines) {
  std::string s = "<?xml version=\"1.0\"?>\n<settings>\n  <!-- torture lab -->\n";
  for (int i = 0; i < machines; ++i) {
    s += "  <machine>\n    <name>" + machine_name(i) + "</name>\n";
    char mac[32];
    std::snprintf(mac, sizeof mac, "aa:bb:cc:dd:%02x:%02x", i / 256, i % 256);
    s += std::string("    <mac>") + mac + "</mac>\n";
    s += "    <ip>10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1) + "</ip>\n";
    s += "    <is_started>1</is_started>\n    <only_vm>0</only_vm>\n    <arch>x86_64</arch>\n"
         "    <os>fedora</os>\n    <kernel/>\n    <pwr_dev>mpower1</pwr_dev>\n"
         "    <pwr_slot>" +
         std::to_string(i) + "</pwr_slot>\n    <rack>row &amp; rack " + std::to_string(i) +
         "</rack>\n";
    if (i == 0)
      s += "    <job>leftover-job</job>\n    <job_pid>2147483000</job_pid>\n";
    else
      s += "    <job/>\n    <job_pid/>\n";
    s += "    <startcmd/>\n    <stopcmd/>\n    <start_timeout>240</start_timeout>\n  </machine>\n";
  }
  s += "  <resource>\n    <name>shared-usb</name>\n    <owner>lab</owner>\n  "
       "</resource>\n</settings>\n";
  return s;
}

struct StringWriter final : pugi::xml_writer {
  std::string out;
  void write(const void* data, std::size_t size) override {
    out.append(static_cast<const char*>(data), size);
  }
};

// The file without its job fields and without whitespace-only text: what no claim may change.
std::optional<std::string> skeleton(const std::string& content, std::string& error) {
  pugi::xml_document doc;
  const auto r = doc.load_buffer(content.data(), content.size(), mama::detail::xml_parse_flags);
  if (!r) {
    error = r.description();
    return std::nullopt;
  }
  std::vector<pugi::xml_node> drop;
  std::vector<pugi::xml_node> todo{doc};
  while (!todo.empty()) {
    const pugi::xml_node n = todo.back();
    todo.pop_back();
    for (pugi::xml_node c : n.children()) {
      const bool blank = c.type() == pugi::node_pcdata && mama::detail::is_blank(c.value());
      const bool job = c.type() == pugi::node_element && std::string_view(n.name()) == "machine" &&
                       mama::job_field(c.name());
      if (blank || job)
        drop.push_back(c);
      else
        todo.push_back(c);
    }
  }
  for (auto& n : drop) n.parent().remove_child(n);
  StringWriter w;
  doc.save(w, "", pugi::format_raw | pugi::format_no_declaration);
  return w.out;
}

struct Shared {
  std::atomic<long> claims{0};
  std::atomic<long> child_jobs{0};
};

// ---------------------------------------------------------------------------------- worker --

int worker_main(const Config& cfg, Shared* shared, long inc, bool crasher, unsigned seed) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::signal(SIGCHLD, SIG_IGN);  // job child processes reap themselves
  const fs::path log_path = cfg.dir / "logs" / (std::to_string(inc) + ".log");
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return 2;
  std::mt19937_64 rng(seed);

  mama::XmlStoreOptions options;
  options.sync = cfg.sync;
  if (crasher) {
    // Dies in the middle of a save now and then: about one save in 25.
    options.crash_hook = [&rng, log_fd](mama::SaveStep s) {
      if (rng() % 150 == 0) {
        log_line(log_fd,
                 "crash " + std::string(mama::to_string(s)) + " " + std::to_string(mono_ns()));
        ::kill(::getpid(), SIGKILL);
      }
    };
  }
  mama::XmlStateStore store(cfg.dir / "mama.xml", options);
  mama::GuardOptions g;
  g.poll_interval = std::chrono::milliseconds(20);
  g.on_event = [log_fd](const mama::Event& e) {
    if (e.kind == mama::EventKind::waiting || e.kind == mama::EventKind::stale_detected) return;
    if (e.kind == mama::EventKind::claimed) {
      // Emitted right after the claim's save: the earliest instant known to be inside the hold.
      log_line(log_fd, "claimed " + word(e.machine) + " " + word(e.record.token) + " " +
                           std::to_string(mono_ns()));
      return;
    }
    log_line(log_fd, "ev " + std::string(mama::to_string(e.kind)) + " " + word(e.machine) + " " +
                         word(e.record.job) + " " + word(e.record.token) + " " +
                         std::to_string(mono_ns()) + " " + word(e.reason));
  };
  const fs::path stop = cfg.dir / "stop";
  try {
    for (long n = 0; !fs::exists(stop); ++n) {
      const std::string machine = machine_name(static_cast<int>(rng() % cfg.machines));
      g.job = "torture-i" + std::to_string(inc) + "-j" + std::to_string(n);
      mama::StaleJobGuard<> guard(store, machine, g);
      const std::string tok = guard.token();
      log_line(log_fd,
               "start " + machine + " " + tok + " " + std::to_string(mono_ns()) + " " + g.job);
      shared->claims.fetch_add(1, std::memory_order_relaxed);
      {
        auto tx = store.begin();
        const auto r = tx.find(machine);
        const bool mine = r && r->token == tok && r->job == g.job;
        log_line(log_fd, "check " + machine + " " + tok + (mine ? " ok " : " lost ") +
                             std::to_string(mono_ns()));
      }
      if (rng() % 4 == 0) {
        // A job process that inherits the hold and may outlive the worker's release.
        const auto nap = std::chrono::microseconds(rng() % 3000);
        const pid_t c = ::fork();
        if (c == 0) {
          std::this_thread::sleep_for(nap);
          log_line(log_fd, "cend " + machine + " " + tok + " " + std::to_string(mono_ns()));
          ::_exit(0);
        }
        if (c > 0) shared->child_jobs.fetch_add(1, std::memory_order_relaxed);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
      log_line(log_fd, "end " + machine + " " + tok + " " + std::to_string(mono_ns()));
    }
  } catch (const std::exception& e) {
    log_line(log_fd, "error " + std::to_string(mono_ns()) + " " + word(e.what()));
    return 3;
  }
  return 0;
}

// ---------------------------------------------------------------------------------- driver --

struct Incarnation {
  long id = 0;
  pid_t pid = -1;
  bool crasher = false;
  std::optional<std::int64_t> kill_ns;  // the killer's kill(2) call
  std::optional<std::int64_t> reap_ns;
  int status = 0;
  bool reaped = false;
};

struct Job {
  std::string machine, token, job;
  long inc = 0;
  std::int64_t start = 0;
  std::optional<std::int64_t> end, cend;
};

struct Report {
  std::vector<std::string> violations;
  long jobs = 0, killed_jobs = 0, stale_cleared = 0, crashes = 0, checks = 0, final_stale = 0,
       torn_lines = 0;
  std::map<std::string, long> by_kind;
  void fail(const std::string& v) {
    ++by_kind[v.substr(0, v.find(':'))];
    if (violations.size() < 50) std::cerr << "VIOLATION: " << v << "\n";
    violations.push_back(v);
  }
};

long inc_of_job(const std::string& job) {
  if (job.rfind("torture-i", 0) != 0) return -1;
  return std::strtol(job.c_str() + 9, nullptr, 10);
}

void check_logs(const Config& cfg, std::map<long, Incarnation>& incs, Report& rep) {
  std::map<std::string, Job> jobs;  // by token
  std::map<long, std::int64_t> crash_ns;
  std::map<std::string, std::int64_t> claimed_ns;  // by token: the `claimed` event's time
  struct Cleared {
    std::string job, token;
    std::int64_t at;
  };
  std::vector<Cleared> cleared;
  for (auto& [id, inc] : incs) {
    std::ifstream in(cfg.dir / "logs" / (std::to_string(id) + ".log"), std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    // A SIGKILL may tear the last line of the log (see torture_log.hpp): not evidence.
    const bool killed = inc.kill_ns.has_value() ||
                        (inc.reaped && WIFSIGNALED(inc.status) && WTERMSIG(inc.status) == SIGKILL);
    const auto log = mama::torture::split_log(text.str(), killed);
    if (log.torn) ++rep.torn_lines;
    for (const std::string& line : log.lines) {
      std::istringstream ls(line);
      std::string kind;
      ls >> kind;
      if (kind == "start") {
        Job j;
        ls >> j.machine >> j.token >> j.start >> j.job;
        j.inc = id;
        jobs[j.token] = j;
      } else if (kind == "claimed") {
        std::string machine, token;
        std::int64_t t = 0;
        ls >> machine >> token >> t;
        claimed_ns[token] = t;
      } else if (kind == "end" || kind == "cend") {
        std::string machine, token;
        std::int64_t t = 0;
        ls >> machine >> token >> t;
        auto it = jobs.find(token);
        if (it == jobs.end()) {
          rep.fail("log: incarnation " + std::to_string(id) + ": " + kind +
                   " without start: " + line);
          continue;
        }
        (kind == "end" ? it->second.end : it->second.cend) = t;
      } else if (kind == "check") {
        std::string machine, token, verdict;
        ls >> machine >> token >> verdict;
        ++rep.checks;
        if (verdict != "ok")
          rep.fail("I4: job " + token + " of incarnation " + std::to_string(id) +
                   " found its record on " + machine + " gone while it held the machine");
      } else if (kind == "crash") {
        std::string step;
        std::int64_t t = 0;
        ls >> step >> t;
        crash_ns[id] = t;
        ++rep.crashes;
      } else if (kind == "ev") {
        std::string ev, machine, job, token, reason;
        std::int64_t t = 0;
        ls >> ev >> machine >> job >> token >> t >> reason;
        if (ev == "stale_cleared") {
          cleared.push_back({job, token, t});
        } else if (ev == "successor_found") {
          rep.fail("I4: incarnation " + std::to_string(id) + " found a foreign record (" + job +
                   ") on " + machine + " at its release although it was never stale");
        } else if (ev == "release_failed") {
          rep.fail("I4: release failed in incarnation " + std::to_string(id) + ": " + line);
        }
      } else if (kind == "error") {
        rep.fail("worker: error in incarnation " + std::to_string(id) + ": " + line);
      }
    }
  }
  // When each incarnation was surely still alive at the latest (a lower bound of its death).
  auto death_bound = [&](long id) -> std::optional<std::int64_t> {
    const auto it = incs.find(id);
    if (it == incs.end()) return std::nullopt;
    // A worker that killed itself in a save may still be picked by the killer before it is
    // reaped: the earlier of the two instants counts.
    std::optional<std::int64_t> bound = it->second.kill_ns;
    if (const auto c = crash_ns.find(id); c != crash_ns.end())
      bound = bound ? std::min(*bound, c->second) : c->second;
    return bound;
  };

  // I1: per machine, no two job intervals overlap.
  std::map<std::string, std::vector<std::pair<std::int64_t, std::int64_t>>> per_machine;
  std::map<std::string, std::vector<std::string>> names;
  for (auto& [token, j] : jobs) {
    ++rep.jobs;
    if (const auto c = claimed_ns.find(token); c != claimed_ns.end())
      j.start = std::min(j.start, c->second);
    std::int64_t end = 0;
    if (j.end) {
      end = *j.end;
    } else if (const auto d = death_bound(j.inc)) {
      ++rep.killed_jobs;
      end = std::max(j.start, *d);
    } else {
      rep.fail("I1: job " + j.job + " on " + j.machine +
               " never ended although its worker was not killed");
      continue;
    }
    if (j.cend) end = std::max(end, *j.cend);
    per_machine[j.machine].emplace_back(j.start, end);
  }
  for (auto& [machine, v] : per_machine) {
    std::sort(v.begin(), v.end());
    std::int64_t busy_until = INT64_MIN;
    for (const auto& [s, e] : v) {
      if (s < busy_until)
        rep.fail("I1: two jobs on " + machine + " at once (a job started " +
                 std::to_string(busy_until - s) + " ns before the previous one ended)");
      busy_until = std::max(busy_until, e);
    }
  }
  // A cleared stale job must belong to an incarnation that was dead by then.
  for (const auto& c : cleared) {
    ++rep.stale_cleared;
    if (c.job == "leftover-job") continue;
    // A worker that released while a job process still held the machine's lock kept the record
    // (SPEC §4: busy until every job process is gone); once that process ended, anyone may
    // clear it as stale, its own live worker included. The job must have ended by then.
    if (const auto it = jobs.find(c.token); it != jobs.end() && it->second.end &&
                                            *it->second.end <= c.at &&
                                            (!it->second.cend || *it->second.cend <= c.at))
      continue;
    const long id = inc_of_job(c.job);
    const auto d = death_bound(id);
    if (!d || *d > c.at)
      rep.fail("I1/I4: job " + c.job + " was cleared as stale while its worker was alive");
  }
}

int run(Config cfg) {
  if (cfg.dir.empty()) {
    const char* base = std::getenv("TMPDIR");
    std::string templ = std::string(base && *base ? base : "/tmp") + "/mama-torture-XXXXXX";
    if (!::mkdtemp(templ.data())) {
      std::perror("mkdtemp");
      return 2;
    }
    cfg.dir = templ;
  }
  fs::create_directories(cfg.dir / "logs");
  fs::remove(cfg.dir / "stop");
  const std::string initial = initial_file(cfg.machines);
  { std::ofstream(cfg.dir / "mama.xml", std::ios::binary) << initial; }
  std::string err;
  const auto initial_skeleton = skeleton(initial, err);
  if (cfg.max_seconds <= 0) cfg.max_seconds = cfg.seconds * 4 + 60;

  ::prctl(PR_SET_CHILD_SUBREAPER, 1);  // orphaned job processes come back to us to be reaped
  auto* shared = static_cast<Shared*>(
      ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  new (shared) Shared();

  std::mt19937_64 rng(cfg.seed ? cfg.seed : std::random_device{}());
  std::map<long, Incarnation> incs;
  std::vector<long> live;  // incarnation ids of the running workers
  long next_inc = 0;
  Report rep;

  auto spawn = [&]() -> long {
    Incarnation inc;
    inc.id = next_inc++;
    inc.crasher = rng() % 3 == 0;
    const unsigned seed = static_cast<unsigned>(rng());
    std::cout.flush();
    inc.pid = ::fork();
    if (inc.pid == 0) ::_exit(worker_main(cfg, shared, inc.id, inc.crasher, seed));
    incs[inc.id] = inc;
    return inc.id;
  };
  auto on_exit = [&](long id, int status) {
    auto& inc = incs[id];
    inc.reaped = true;
    inc.reap_ns = mono_ns();
    inc.status = status;
    live.erase(std::find(live.begin(), live.end(), id));
  };
  auto by_pid = [&](pid_t pid) -> long {
    for (long id : live)
      if (incs[id].pid == pid) return id;
    return -1;
  };

  for (int i = 0; i < cfg.workers; ++i) live.push_back(spawn());
  const auto t0 = std::chrono::steady_clock::now();
  std::exponential_distribution<double> gap(1.0 / cfg.kill_ms);
  auto next_kill = t0 + std::chrono::microseconds(static_cast<long>(gap(rng) * 1000));
  long kills = 0;
  double elapsed = 0;
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    elapsed = std::chrono::duration<double>(now - t0).count();
    if (elapsed >= cfg.seconds && shared->claims >= cfg.min_claims && kills >= cfg.min_kills) break;
    if (elapsed >= cfg.max_seconds) {
      rep.fail("run: did not reach the requested claims/kills within " +
               std::to_string(cfg.max_seconds) + " s");
      break;
    }
    // Workers that died by themselves (crash hook) or exited.
    for (;;) {
      int status = 0;
      const pid_t p = ::waitpid(-1, &status, WNOHANG);
      if (p <= 0) break;
      const long id = by_pid(p);
      if (id < 0) continue;  // an orphaned job process
      on_exit(id, status);
      if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && incs[id].crasher))
        rep.fail("worker: incarnation " + std::to_string(id) + " ended during the run (status " +
                 std::to_string(status) + ")");
      live.push_back(spawn());
    }
    if (now >= next_kill && !live.empty()) {
      const long id = live[rng() % live.size()];
      auto& inc = incs[id];
      inc.kill_ns = mono_ns();
      ::kill(inc.pid, SIGKILL);
      int status = 0;
      ::waitpid(inc.pid, &status, 0);
      on_exit(id, status);
      ++kills;
      live.push_back(spawn());
      next_kill = now + std::chrono::microseconds(static_cast<long>(gap(rng) * 1000));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }

  // Stop: workers finish their job and leave; then every orphaned job process is reaped.
  { std::ofstream(cfg.dir / "stop") << "stop\n"; }
  const auto stop_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!live.empty()) {
    int status = 0;
    const pid_t p = ::waitpid(-1, &status, WNOHANG);
    if (p > 0) {
      const long id = by_pid(p);
      if (id >= 0) {
        on_exit(id, status);
        const bool crashed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && incs[id].crasher;
        if (!crashed && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
          rep.fail("worker: incarnation " + std::to_string(id) + " ended with status " +
                   std::to_string(status));
      }
      continue;
    }
    if (std::chrono::steady_clock::now() > stop_deadline) {
      for (long id : live) {
        rep.fail("I2: worker incarnation " + std::to_string(id) +
                 " still waiting 60 s after the stop");
        ::kill(incs[id].pid, SIGKILL);
      }
      while (::waitpid(-1, nullptr, 0) > 0) {
      }
      live.clear();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  while (::waitpid(-1, nullptr, 0) > 0) {
  }
  const double duration =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  check_logs(cfg, incs, rep);

  // I2: nothing stuck. try_claim never waits: it gets a free machine or clears a stale job.
  {
    mama::XmlStateStore store(cfg.dir / "mama.xml", {});
    mama::GuardOptions g;
    g.job = "final-check";
    g.on_event = [&](const mama::Event& e) {
      if (e.kind == mama::EventKind::stale_cleared) ++rep.final_stale;
    };
    for (int i = 0; i < cfg.machines; ++i) {
      try {
        auto guard = mama::StaleJobGuard<>::try_claim(store, machine_name(i), g);
        if (!guard)
          rep.fail("I2: " + machine_name(i) + " is still held after every worker is gone");
      } catch (const std::exception& e) {
        rep.fail("I2/I3: final claim of " + machine_name(i) + " failed: " + e.what());
      }
    }
    try {
      auto tx = store.begin();
      for (const auto& m : tx.machines())
        if (!m.job.idle())
          rep.fail("I2: " + m.name + " not idle after the final claim and release");
    } catch (const std::exception& e) {
      rep.fail(std::string("I3: the final file cannot be read: ") + e.what());
    }
  }
  // I3: nothing lost.
  {
    std::ifstream in(cfg.dir / "mama.xml", std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    const auto final_skeleton = skeleton(s.str(), err);
    if (!final_skeleton)
      rep.fail("I3: the final file does not parse: " + err);
    else if (*final_skeleton != *initial_skeleton)
      rep.fail("I3: non-job content changed:\n  before: " + *initial_skeleton +
               "\n  after:  " + *final_skeleton);
  }

  std::printf(
      "mama torture: %d workers, %d machines, %.1f s: %ld claims (%ld with a job process), "
      "%ld kills by the killer, %ld self-kills in a save, %ld killed jobs, %ld stale jobs "
      "cleared, %ld in-job checks, %ld incarnations, %ld stale at the final check, %ld torn "
      "last log lines of killed workers set aside; violations: %zu\n",
      cfg.workers, cfg.machines, duration, shared->claims.load(), shared->child_jobs.load(), kills,
      rep.crashes, rep.killed_jobs, rep.stale_cleared, rep.checks, next_inc, rep.final_stale,
      rep.torn_lines, rep.violations.size());
  for (const auto& [kind, n] : rep.by_kind) std::printf("  %s violations: %ld\n", kind.c_str(), n);
  if (rep.violations.empty() && !cfg.keep) {
    std::error_code ec;
    fs::remove_all(cfg.dir, ec);
  } else {
    std::printf("evidence kept in %s\n", cfg.dir.c_str());
  }
  return rep.violations.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "mama_torture: " << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--workers")
      cfg.workers = std::stoi(next());
    else if (a == "--machines")
      cfg.machines = std::stoi(next());
    else if (a == "--seconds")
      cfg.seconds = std::stod(next());
    else if (a == "--min-claims")
      cfg.min_claims = std::stol(next());
    else if (a == "--min-kills")
      cfg.min_kills = std::stol(next());
    else if (a == "--max-seconds")
      cfg.max_seconds = std::stod(next());
    else if (a == "--kill-ms")
      cfg.kill_ms = std::stod(next());
    else if (a == "--seed")
      cfg.seed = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--dir")
      cfg.dir = next();
    else if (a == "--sync")
      cfg.sync = true;
    else if (a == "--keep")
      cfg.keep = true;
    else {
      std::cerr << "usage: mama_torture [--workers N] [--machines M] [--seconds S] [--min-claims C]"
                   " [--min-kills K] [--max-seconds X] [--kill-ms MEAN] [--seed S] [--sync]"
                   " [--dir DIR] [--keep]\n";
      return 2;
    }
  }
  if (cfg.workers < 1 || cfg.machines < 1) {
    std::cerr << "mama_torture: need at least one worker and one machine\n";
    return 2;
  }
  return run(cfg);
}
