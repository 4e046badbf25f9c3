// examples/cli/cmd_run.cpp — `mama run <machine> [--job TEXT] [--timeout SEC] [--kill-grace SEC]
// -- CMD [ARG...]`: claim the machine with a StaleJobGuard (waiting, clearing stale jobs), run
// CMD in a process group of its own (job_process.hpp), end what it leaves behind, release, and
// exit with CMD's status.
//
// The record names CMD, not `mama run`: after the claim the child is forked, recorded with
// guard.hand_over (PID and start time), and only then lets CMD exec. CMD inherits the machine's
// hold (with mama.xml, the claim's kernel lock), so the machine stays busy while CMD runs even
// if `mama run` itself is killed with SIGKILL, and the PHP tool's `ps -p job_pid` sees CMD alive.
// With a server-kept hold (PostgreSQL), the hold is `mama run`'s session: CMD gets
// PR_SET_PDEATHSIG(SIGKILL) so that it never outlives `mama run`. When the store reports the
// hold lost, the job's group is ended and `mama run` exits with exit_status::hold_lost.
//
// An explicit --job must be UTF-8 without control characters (refused before anything is
// opened or waited for); the default job text, the command line, is escaped instead.
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <type_traits>

#include "cli.hpp"
#include "job_process.hpp"

namespace mama::cli {

namespace {

struct RunArgs {
  std::string machine;
  std::string job;
  std::string timeout;
  std::string kill_grace;
  std::vector<std::string> command;
};

// The command line as a job text: control characters and bytes that are not UTF-8 written as
// visible escapes (\e, \xe9), at most 200 bytes, cut between two characters.
std::string default_job_text(const std::vector<std::string>& command) {
  std::string line;
  for (const auto& arg : command) {
    if (!line.empty()) line += ' ';
    line += arg;
  }
  return detail::printable_job_text(line, 200);
}

// What the hold-lost callback (another thread) tells the waiting loop: an eventfd it writes to,
// and the reason.
struct LostSignal {
  int fd = -1;
  std::mutex mutex;
  std::string reason;
  // The hold_lost event, kept to be reported from the main thread (the reporter and the audit
  // log are not for the store's watcher thread).
  std::optional<JobRecord> record;
  EventKind kind{};
  std::string machine, store;
  LostSignal() {
    fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) throw_errno("cannot create an eventfd");
  }
  ~LostSignal() { ::close(fd); }
  LostSignal(const LostSignal&) = delete;
  LostSignal& operator=(const LostSignal&) = delete;
  void keep_event(const Event& e) {
    std::lock_guard lock(mutex);
    kind = e.kind;
    record = e.record;
    machine = e.machine;
    store = e.store;
    reason = e.reason;
  }
  void raise(std::string_view why) {
    {
      std::lock_guard lock(mutex);
      reason = why;
    }
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(fd, &one, sizeof one);
  }
  std::string why() {
    std::lock_guard lock(mutex);
    return reason.empty() ? std::string("the store gave no reason") : reason;
  }
  /// Reports the kept hold_lost event through `ctx` (main thread).
  void report(Context& ctx) {
    std::lock_guard lock(mutex);
    if (!record) return;
    ctx.reporter.report(Event{kind, machine, store, *record, reason, {}});
    record.reset();
  }
};

template <class Store>
int run_on(Context& ctx, Store& store, const RunArgs& args) {
  std::string name;
  {
    auto tx = store.begin();
    name = resolve_machine(ctx, tx, args.machine);
  }
  auto lost = std::make_shared<LostSignal>();
  GuardOptions options;
  options.job = args.job.empty() ? default_job_text(args.command) : args.job;
  if (!args.timeout.empty()) options.timeout = parse_seconds(args.timeout);
  options.stale_after = ctx.stale_after();
  options.on_event = [&ctx, lost](const Event& e) {
    if (e.kind == EventKind::hold_lost)
      lost->keep_event(e);  // from the store's thread: reported by the main thread
    else
      ctx.reporter.report(e);
  };
  options.on_lost = [lost](std::string_view why) { lost->raise(why); };

  // While claiming, SIGINT, SIGTERM and SIGHUP end `mama run` at once (default dispositions).
  StaleJobGuard<SystemClock, ProcProbe, Store> guard(store, name, std::move(options), ctx.clock,
                                                     ctx.probe);
  ctx.reporter.end_line();

  JobProcess::Options jo;
  if (!args.kill_grace.empty()) jo.kill_grace = parse_seconds(args.kill_grace);
  // A server-kept hold promises waiters that a lost holder's job has ended within its kill
  // grace (written with the claim): TERM-to-KILL must fit inside it, with room for the KILL.
  if constexpr (requires { store.options().kill_grace_ms; }) {
    const auto promised = std::chrono::milliseconds(store.options().kill_grace_ms * 3 / 4);
    jo.kill_grace = std::min<std::chrono::nanoseconds>(jo.kill_grace, promised);
  }
  // A hold kept by a server for our session ends when we die: the command must not outlive it.
  // The mama.xml hold is a lock the command inherits: it keeps the machine busy on its own.
  jo.die_with_parent = !std::is_same_v<Store, XmlStateStore>;
  jo.on_stop = [&] {
    lost->report(ctx);
    std::cerr << "mama: lost the hold on machine " << esc(name) << ": " << esc(lost->why())
              << "; stopping the job\n"
              << std::flush;
  };
  JobProcess job(args.command, jo);
  bool handed = false;
  try {
    handed = guard.hand_over(ProcessIdentity{job.pid(), job.start_ticks()});
  } catch (...) {
    job.abandon();
    throw;
  }
  if (!handed) {
    // A waiter judged our claim stale and took the machine (reported as successor_found).
    job.abandon();
    std::cerr << "mama: machine " << esc(name)
              << " is no longer this claim's; the command was not run\n";
    return exit_status::failure;
  }
  if (guard.lost()) {
    job.abandon();
    jo.on_stop();
    guard.release();
    return exit_status::hold_lost;
  }
  if (const int exec_errno = job.go()) {
    guard.release();
    std::cerr << "mama: cannot run '" << esc(args.command.front())
              << "': " << std::strerror(exec_errno) << "; check the command name and PATH (machine "
              << esc(name) << " was released)\n";
    return exit_status::cannot_execute;
  }
  job.watch_stop_fd(lost->fd);
  const int status = job.wait();
  // From here a SIGINT, SIGTERM or SIGHUP abandons the release and ends `mama run` at once.
  if (job.stopped()) {
    // The hold is gone: releasing may fail as well; the exit status says what happened.
    try {
      guard.release();
    } catch (const std::exception& e) {
      std::cerr << "mama: " << e.what() << '\n';
    }
    return exit_status::hold_lost;
  }
  guard.release();  // errors: mama::error, exit status 1 (the job's record reads as stale)
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return exit_status::failure;
}

int run_run(Context& ctx, const RunArgs& args) {
  // Checked before the store is opened and before any waiting: a text the PHP tool cannot read
  // back must never reach the file, and must not be found out hours later.
  if (!args.job.empty())
    if (const auto problem = detail::job_text_problem(args.job))
      throw error(errc::invalid_argument,
                  "--job '" + esc(args.job) + "' cannot be stored: " + *problem +
                      "; give the job text as UTF-8 without control characters");
  return ctx.with_store([&](auto& store) { return run_on(ctx, store, args); });
}

}  // namespace

void add_run_command(CLI::App& app, Context& ctx, Action& selected) {
  auto args = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand(
      "run",
      "Claim a machine (waiting for it and clearing stale jobs), run a command, release it; "
      "exits with the command's status");
  cmd->add_option("machine", args->machine, "The machine's name or MAC address")->required();
  cmd->add_option("command", args->command, "The command and its arguments, after `--`")
      ->required();
  cmd->add_option("--job", args->job,
                  "The job text recorded on the machine (default: the command line)")
      ->type_name("TEXT");
  cmd->add_option("--timeout", args->timeout,
                  "Give up waiting for the machine after SEC seconds (exit status 3)")
      ->type_name("SEC")
      ->check(seconds_validator(true));
  cmd->add_option("--kill-grace", args->kill_grace,
                  "When the command ends, the seconds its leftover processes get between SIGTERM "
                  "and SIGKILL (default 10)")
      ->type_name("SEC")
      ->check(seconds_validator(true));
  add_stale_after_option(*cmd, ctx);
  cmd->callback([&selected, args] { selected = [args](Context& c) { return run_run(c, *args); }; });
}

}  // namespace mama::cli
