// Real network faults between a holder "host" and the PostgreSQL server (see netfault.sh, which
// makes the network namespaces and starts the server, and tests/pg/README.md).
//
//   pg_netfault agent CONNINFO NAME LOG STOPFILE SEED
//       One "host": claims machine m again and again through StaleJobGuard, runs a job (a child
//       process in its own process group, PR_SET_PDEATHSIG) for a random time, and ends the job
//       (TERM, grace, KILL) when the store reports the claim lost, as `mama run` does. LOG gets
//       one line per event, times in CLOCK_MONOTONIC nanoseconds (one clock for every process
//       on this machine, whatever its namespaces).
//   pg_netfault drive CONNINFO SECONDS NS_HOLDER DEV_HOLDER NS_SERVER DEV_SERVER WORKDIR
//       Starts a holder agent in NS_HOLDER and a waiter agent in NS_SERVER (each in its own UTS
//       namespace, so their host names differ), cuts the holder's link at random moments
//       (blackhole qdisc on one end or both, or the link down) for short blips (under half the
//       deadline) and long cuts (over the deadline), heals, checks that both hosts still get
//       the machine, stops the agents and checks the logs: no two jobs at once, every job lost
//       explained by a long cut, every blip survived. Prints the figures. Exit 0 when all hold.
//       MAMA_NETFAULT_UNSAFE=1 turns the lease off (see lease_options): the check must fail.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mama/guard.hpp"
#include "mama/pg_state_store.hpp"

namespace {

using namespace std::chrono_literals;

// The lease timings of both agents: short, so that a CI run sees many rounds.
mama::PgStoreOptions lease_options() {
  mama::PgStoreOptions o;
  o.heartbeat_period_ms = 250;
  o.hold_deadline_ms = 3000;
  o.kill_grace_ms = 1000;
  o.takeover_margin_ms = 1000;
  o.confirm_timeout_ms = 750;
  if (std::getenv("MAMA_NETFAULT_UNSAFE")) {
    // To see that the checker catches overlaps: holders that keep their jobs for 20 s without
    // contact, and waiters that take a free lock at once (the behaviour before the lease).
    o.hold_deadline_ms = 20000;
    o.takeover_margin_ms = -60000;
  }
  return o;
}

long long now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

struct Log {
  int fd = -1;
  explicit Log(const std::string& path) {
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
      std::perror(path.c_str());
      std::exit(2);
    }
  }
  void line(const std::string& text) {
    const std::string l = std::to_string(now_ns()) + " " + text + "\n";
    (void)!::write(fd, l.data(), l.size());
  }
  void line_at(long long t, const std::string& text) {
    const std::string l = std::to_string(t) + " " + text + "\n";
    (void)!::write(fd, l.data(), l.size());
  }
};

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

int agent(const std::string& conninfo, const std::string& name, const std::string& log_path,
          const std::string& stop, unsigned seed) {
  Log log(log_path);
  std::mt19937 rng(seed);
  std::atomic<bool> lost{false};
  mama::PgStoreOptions opts = lease_options();
  opts.on_lost = [&](const std::string&, const std::string& reason) {
    lost = true;
    log.line("lost " + reason.substr(0, 80));
  };
  mama::PgStateStore store(conninfo, opts);
  mama::GuardOptions go;
  go.job = "netfault job of " + name;
  go.poll_interval = 100ms;
  go.timeout = 4s;  // so that the stop file is seen
  go.on_event = [&](const mama::Event& e) {
    if (e.kind == mama::EventKind::stale_cleared) log.line("stale_cleared");
    if (e.kind == mama::EventKind::successor_found) log.line("successor_found");
    if (e.kind == mama::EventKind::release_failed) log.line("release_failed");
  };
  using Guard = mama::StaleJobGuard<mama::SystemClock, mama::ProcProbe, mama::PgStateStore>;
  const pid_t self = ::getpid();
  while (!exists(stop)) {
    log.line("want");
    std::optional<Guard> g;
    try {
      lost = false;
      g.emplace(store, "m", go);
    } catch (const mama::error& e) {
      log.line(std::string("claim_error ") + (e.code() == mama::errc::timeout ? "timeout" : "io"));
      std::this_thread::sleep_for(100ms);
      continue;
    }
    log.line("claimed");
    const int job_ms = std::uniform_int_distribution<int>(1000, 8000)(rng);
    // The job's start: stamped before the fork, so the interval logged covers the real one.
    const long long start = now_ns();
    const pid_t job = ::fork();
    if (job == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != self) ::_exit(1);
      const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(job_ms);
      while (std::chrono::steady_clock::now() < end) ::usleep(5000);
      ::_exit(0);
    }
    ::setpgid(job, job);
    log.line_at(start, "start " + std::to_string(job) + " " + std::to_string(job_ms));
    std::string outcome = "ok";
    int status = 0;
    for (;;) {
      if (::waitpid(job, &status, WNOHANG) == job) break;
      if (lost) {
        // As mama run: TERM to the group, a grace period, KILL; then the job is reaped.
        outcome = "lost";
        ::kill(-job, SIGTERM);
        for (int i = 0; i < 50 && ::waitpid(job, &status, WNOHANG) != job; ++i) ::usleep(10000);
        ::kill(-job, SIGKILL);
        ::waitpid(job, &status, 0);
        break;
      }
      ::usleep(5000);
    }
    // The end: stamped after the reaping, so again the logged interval covers the real one.
    log.line("end " + std::to_string(job) + " " + outcome);
    try {
      g->release();
      log.line("released");
    } catch (const mama::error&) {
      log.line("release_error");
    }
    g.reset();
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 300)(rng)));
  }
  log.line("stopped");
  return 0;
}

// ---- driver ----

struct Fault {
  long long start = 0, end = 0;
  std::string kind;
  bool long_cut = false;
};

int sh(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  if (rc != 0) std::cerr << "pg_netfault: failed (" << rc << "): " << cmd << "\n";
  return rc;
}

struct Event {
  long long t;
  std::string host, what, rest;
};

std::vector<Event> read_log(const std::string& path, const std::string& host) {
  std::vector<Event> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    Event e;
    e.host = host;
    if (!(ls >> e.t >> e.what)) continue;
    std::getline(ls, e.rest);
    if (!e.rest.empty() && e.rest[0] == ' ') e.rest.erase(0, 1);
    out.push_back(e);
  }
  return out;
}

int drive(const std::string& conninfo, int seconds, const std::string& ns_h,
          const std::string& dev_h, const std::string& ns_s, const std::string& dev_s,
          const std::string& dir) {
  const auto opts = lease_options();
  // The fault schedule is made for the safe lease's deadline (also in the unsafe run).
  const int deadline = std::getenv("MAMA_NETFAULT_UNSAFE") ? 3000 : opts.hold_deadline_ms;
  const std::string self = "/proc/self/exe";
  char exe[4096] = {};
  if (::readlink(self.c_str(), exe, sizeof exe - 1) <= 0) return 2;
  const std::string stop = dir + "/stop";
  ::unlink(stop.c_str());

  // The lab: one machine.
  {
    mama::PgStateStore admin(conninfo);
    admin.exec("DELETE FROM mama_machine; INSERT INTO mama_machine (name) VALUES ('m')");
  }

  const auto start_agent = [&](const std::string& ns, const std::string& host, unsigned seed) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      const std::string log = dir + "/" + host + ".log";
      ::execlp("ip", "ip", "netns", "exec", ns.c_str(), "unshare", "--uts", "sh", "-c",
               "hostname \"$0\" && exec \"$@\"", host.c_str(), exe, "agent", conninfo.c_str(),
               host.c_str(), log.c_str(), stop.c_str(), std::to_string(seed).c_str(),
               static_cast<char*>(nullptr));
      ::_exit(127);
    }
    return pid;
  };
  std::random_device rd;
  const unsigned seed = std::getenv("MAMA_NETFAULT_SEED")
                            ? static_cast<unsigned>(std::atol(std::getenv("MAMA_NETFAULT_SEED")))
                            : rd();
  std::cout << "seed " << seed << " (MAMA_NETFAULT_SEED=" << seed << " repeats the schedule)\n";
  std::mt19937 rng(seed);
  const pid_t holder = start_agent(ns_h, "nf-holder", seed + 1);
  const pid_t waiter = start_agent(ns_s, "nf-waiter", seed + 2);

  const auto cut = [&](const std::string& kind, bool on) {
    const std::string add = on ? "add" : "del";
    if (kind == "out" || kind == "both")
      sh("ip netns exec " + ns_h + " tc qdisc " + add + " dev " + dev_h + " root" +
         (on ? " blackhole" : ""));
    if (kind == "in" || kind == "both")
      sh("ip netns exec " + ns_s + " tc qdisc " + add + " dev " + dev_s + " root" +
         (on ? " blackhole" : ""));
    if (kind == "down") sh("ip -n " + ns_h + " link set " + dev_h + (on ? " down" : " up"));
  };

  std::vector<Fault> faults;
  const long long t_begin = now_ns();
  const long long t_end = t_begin + seconds * 1000000000LL;
  const char* kinds[] = {"out", "in", "both", "down"};
  std::this_thread::sleep_for(2s);
  while (now_ns() < t_end) {
    Fault f;
    f.kind = kinds[std::uniform_int_distribution<int>(0, 3)(rng)];
    f.long_cut = std::uniform_int_distribution<int>(0, 2)(rng) == 0;  // a third long
    // Where the cut lands: a quarter of all cuts at the job's end (so the release runs into it),
    // most other long cuts inside a running job (the case that matters) at a random point of
    // it; the rest wherever the holder is (claiming, releasing, idle).
    const int aim = std::uniform_int_distribution<int>(0, 3)(rng);
    if (aim == 0 || (f.long_cut && aim != 1)) {
      const long long give_up = now_ns() + 10 * 1000000000LL;
      Event started{};
      while (now_ns() < give_up) {
        const auto ev = read_log(dir + "/nf-holder.log", "h");
        if (!ev.empty() && ev.back().what == "start") {
          started = ev.back();
          break;
        }
        std::this_thread::sleep_for(20ms);
      }
      if (aim == 0 && started.t > 0) {
        // The job's planned end, minus a little: the cut begins as the holder releases.
        std::istringstream rs(started.rest);
        int pid = 0, planned_ms = 0;
        rs >> pid >> planned_ms;
        const long long at = started.t + planned_ms * 1000000LL -
                             std::uniform_int_distribution<int>(0, 30)(rng) * 1000000LL;
        while (now_ns() < at) std::this_thread::sleep_for(1ms);
      } else {
        std::this_thread::sleep_for(
            std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 1000)(rng)));
      }
    }
    const int ms = f.long_cut
                       ? std::uniform_int_distribution<int>(deadline + 500, deadline + 3000)(rng)
                       : std::uniform_int_distribution<int>(150, deadline / 2 - 200)(rng);
    f.start = now_ns();
    cut(f.kind, true);
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    cut(f.kind, false);
    f.end = now_ns();
    faults.push_back(f);
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(1500, 5000)(rng)));
  }
  const long long healed = now_ns();

  // Nothing stuck: after the last heal, both hosts get the machine again.
  const long long lease_ns =
      static_cast<long long>(opts.hold_deadline_ms + opts.kill_grace_ms + opts.takeover_margin_ms) *
      1000000;
  bool holder_again = false, waiter_again = false;
  const long long give_up = healed + lease_ns + 40 * 1000000000LL;
  while (now_ns() < give_up && !(holder_again && waiter_again)) {
    std::this_thread::sleep_for(200ms);
    for (const auto& e : read_log(dir + "/nf-holder.log", "h"))
      if (e.what == "start" && e.t > healed) holder_again = true;
    for (const auto& e : read_log(dir + "/nf-waiter.log", "w"))
      if (e.what == "start" && e.t > healed) waiter_again = true;
  }
  { std::ofstream(stop).put('\n'); }
  int st_h = 0, st_w = 0;
  ::waitpid(holder, &st_h, 0);
  ::waitpid(waiter, &st_w, 0);

  // ---- check ----
  struct Job {
    std::string host;
    long long start = 0, end = -1;
    int pid = 0;
    std::string outcome;
  };
  std::vector<Job> jobs;
  std::vector<Event> all;
  for (const auto& [file, host] : std::vector<std::pair<std::string, std::string>>{
           {"nf-holder", "holder"}, {"nf-waiter", "waiter"}}) {
    std::map<int, std::size_t> open;
    for (const auto& e : read_log(dir + "/" + file + ".log", host)) {
      all.push_back(e);
      if (e.what == "start") {
        Job j;
        j.host = host;
        j.start = e.t;
        j.pid = std::atoi(e.rest.c_str());
        open[j.pid] = jobs.size();
        jobs.push_back(j);
      } else if (e.what == "end") {
        std::istringstream rs(e.rest);
        int pid = 0;
        std::string outcome;
        rs >> pid >> outcome;
        if (auto it = open.find(pid); it != open.end()) {
          jobs[it->second].end = e.t;
          jobs[it->second].outcome = outcome;
          open.erase(it);
        }
      }
    }
  }
  std::sort(jobs.begin(), jobs.end(), [](const Job& a, const Job& b) { return a.start < b.start; });
  int overlaps = 0, unfinished = 0, lost = 0, lost_unexplained = 0, kept_through_blip = 0,
      blips_in_jobs = 0, stale_takeovers = 0;
  long long max_overlap_ns = 0, latest_end = -1;
  int latest_pid = 0;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (jobs[i].end < 0) {
      ++unfinished;
      std::cout << "UNFINISHED job " << jobs[i].host << " pid " << jobs[i].pid << "\n";
      continue;
    }
    // Sorted by start: a job overlaps an earlier one when it starts before the latest end so far.
    if (i > 0 && jobs[i].start <= latest_end) {
      ++overlaps;
      max_overlap_ns = std::max(max_overlap_ns, std::min(latest_end, jobs[i].end) - jobs[i].start);
      std::cout << "OVERLAP: " << jobs[i].host << " pid " << jobs[i].pid << " ["
                << (jobs[i].start - t_begin) / 1000000 << ", " << (jobs[i].end - t_begin) / 1000000
                << "] ms started before job pid " << latest_pid << " ended at "
                << (latest_end - t_begin) / 1000000 << " ms\n";
    }
    if (jobs[i].end > latest_end) {
      latest_end = jobs[i].end;
      latest_pid = jobs[i].pid;
    }
    // Only the holder's link is cut: the waiter's jobs see no fault.
    bool saw_long = false, saw_short = false;
    if (jobs[i].host == "holder")
      for (const auto& f : faults)
        if (f.start < jobs[i].end && f.end > jobs[i].start - deadline * 1000000LL) {
          (f.long_cut ? saw_long : saw_short) = true;
        }
    if (jobs[i].outcome == "lost") {
      ++lost;
      if (!saw_long) {
        ++lost_unexplained;
        std::cout << "LOST WITHOUT A LONG CUT: " << jobs[i].host << " pid " << jobs[i].pid << " at "
                  << (jobs[i].end - t_begin) / 1000000 << " ms\n";
      }
    } else if (saw_short && !saw_long) {
      ++kept_through_blip;
    }
    if (saw_short) ++blips_in_jobs;
  }
  for (const auto& e : all)
    if (e.what == "stale_cleared") ++stale_takeovers;
  // For each holder job lost to a long cut: cut -> job ended, and cut -> the next job's start.
  std::vector<long long> to_kill, to_takeover;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (jobs[i].outcome != "lost") continue;
    const Fault* cause = nullptr;
    for (const auto& f : faults)
      if (f.long_cut && f.start <= jobs[i].end && (!cause || f.start > cause->start)) cause = &f;
    if (!cause) continue;
    to_kill.push_back((jobs[i].end - cause->start) / 1000000);
    if (i + 1 < jobs.size()) to_takeover.push_back((jobs[i + 1].start - cause->start) / 1000000);
  }
  const auto span = [](std::vector<long long> v) {
    if (v.empty()) return std::string("none");
    std::sort(v.begin(), v.end());
    return std::to_string(v.front()) + " / " + std::to_string(v[v.size() / 2]) + " / " +
           std::to_string(v.back()) + " ms (min / median / max, " + std::to_string(v.size()) + ")";
  };

  // The phase of the holder when each fault began.
  std::map<std::string, int> phase_count;
  std::vector<Event> hev;
  for (const auto& e : all)
    if (e.host == "holder") hev.push_back(e);
  std::sort(hev.begin(), hev.end(), [](const Event& a, const Event& b) { return a.t < b.t; });
  for (const auto& f : faults) {
    std::string phase = "idle";
    for (const auto& e : hev) {
      if (e.t > f.start) break;
      if (e.what == "want" || e.what == "claim_error") phase = "claim";
      if (e.what == "claimed" || e.what == "start") phase = "job";
      if (e.what == "end") phase = "release";
      if (e.what == "released") phase = "idle";
    }
    // A job that ended normally while the link was cut: its release ran into the cut.
    for (const auto& e : hev)
      if (e.what == "end" && e.t >= f.start && e.t <= f.end &&
          e.rest.find(" ok") != std::string::npos)
        phase = "release";
    ++phase_count[phase];
  }
  int short_faults = 0, long_faults = 0;
  for (const auto& f : faults) (f.long_cut ? long_faults : short_faults)++;
  int jobs_holder = 0, jobs_waiter = 0;
  for (const auto& j : jobs) (j.host == "holder" ? jobs_holder : jobs_waiter)++;

  std::cout << "rounds (jobs): " << jobs.size() << " (holder " << jobs_holder << ", waiter "
            << jobs_waiter << ")\n"
            << "faults injected: " << faults.size() << " (blips under " << deadline / 2
            << " ms: " << short_faults << ", cuts over " << deadline << " ms: " << long_faults
            << "; at claim " << phase_count["claim"] << ", job " << phase_count["job"]
            << ", release " << phase_count["release"] << ", idle " << phase_count["idle"] << ")\n"
            << "overlaps: " << overlaps << " (longest " << max_overlap_ns / 1000000 << " ms)\n"
            << "jobs stopped by loss: " << lost
            << " (unexplained by a long cut: " << lost_unexplained << ")\n"
            << "jobs kept through blips: " << kept_through_blip
            << " (holder jobs during a blip: " << blips_in_jobs << ")\n"
            << "takeovers of a lost holder's machine: " << stale_takeovers << "\n"
            << "cut -> lost job ended: " << span(to_kill) << "\n"
            << "cut -> next job started (other host): " << span(to_takeover) << "\n"
            << "unfinished jobs: " << unfinished << "\n"
            << "both hosts claimed again after the faults healed: "
            << (holder_again && waiter_again ? "yes" : "NO") << "\n";
  const bool ok = overlaps == 0 && unfinished == 0 && lost_unexplained == 0 && holder_again &&
                  waiter_again && WIFEXITED(st_h) && WIFEXITED(st_w) && !jobs.empty() &&
                  faults.size() >= 3;
  if (faults.size() < 3 || jobs.empty())
    std::cout << "too few faults or jobs to show anything: run longer (MAMA_NETFAULT_SECONDS)\n";
  std::cout << (ok ? "PASS" : "FAIL") << "\n";
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> a(argv + 1, argv + argc);
  try {
    if (a.size() == 6 && a[0] == "agent")
      return agent(a[1], a[2], a[3], a[4], static_cast<unsigned>(std::stoul(a[5])));
    if (a.size() == 8 && a[0] == "drive")
      return drive(a[1], std::stoi(a[2]), a[3], a[4], a[5], a[6], a[7]);
  } catch (const std::exception& e) {
    std::cerr << "pg_netfault: " << e.what() << "\n";
    return 2;
  }
  std::cerr << "usage: pg_netfault agent CONNINFO NAME LOG STOPFILE SEED\n"
               "       pg_netfault drive CONNINFO SECONDS NS_HOLDER DEV_HOLDER NS_SERVER "
               "DEV_SERVER WORKDIR\n";
  return 2;
}
