// examples/cli/cmd_run.cpp — `mama run <machine> [--job TEXT] [--timeout SEC] -- CMD [ARG...]`:
// claim the machine with a JobGuard (waiting, clearing stale jobs), run CMD, release, and exit
// with CMD's status.
//
// CMD inherits the machine's hold (the claim's kernel lock), so the machine stays busy while CMD
// runs even if `mama run` itself is killed with SIGKILL. SIGINT, SIGTERM and SIGHUP sent to
// `mama run` are passed on to CMD; `mama run` then waits for CMD and releases the machine.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "cli.hpp"

namespace mama::cli {

namespace {

struct RunArgs {
  std::string machine;
  std::string job;
  std::string timeout;
  std::vector<std::string> command;
};

constexpr int forwarded_signals[] = {SIGINT, SIGTERM, SIGHUP};

volatile sig_atomic_t child_pid = 0;  // 0: no command yet (a signal ends `mama run` as usual)

void forward_signal(int sig, siginfo_t* info, void*) {
  const pid_t child = child_pid;
  if (child <= 0) {
    // Still claiming: no job to pass it to. Die of it as if we had no handler.
    ::signal(sig, SIG_DFL);
    ::raise(sig);
    return;
  }
  // A terminal's ^C reaches the whole foreground process group, CMD included: do not send it
  // twice. Signals from kill(2) (SI_USER) and others are passed on.
  if (info && info->si_code == SI_KERNEL) return;
  ::kill(child, sig);
}

void set_forwarding(bool on) {
  struct sigaction sa {};
  sigemptyset(&sa.sa_mask);
  if (on) {
    sa.sa_sigaction = forward_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
  } else {
    sa.sa_handler = SIG_DFL;
  }
  for (int sig : forwarded_signals) ::sigaction(sig, &sa, nullptr);
}

sigset_t forwarded_set() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : forwarded_signals) sigaddset(&set, sig);
  return set;
}

std::string default_job_text(const std::vector<std::string>& command) {
  std::string text;
  for (const auto& arg : command) {
    if (!text.empty()) text += ' ';
    text += arg;
  }
  if (text.size() > 200) text = text.substr(0, 197) + "...";
  return text;
}

// Forks and execs `command`; returns its raw wait status, or -errno when it could not be run.
int run_command(const std::vector<std::string>& command) {
  std::vector<char*> argv;
  for (const auto& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);

  int report[2];  // the child writes exec's errno here; closed on a successful exec
  if (::pipe2(report, O_CLOEXEC) != 0) throw_errno("cannot create a pipe to start the command");
  const sigset_t set = forwarded_set();
  sigset_t old;
  ::sigprocmask(SIG_BLOCK, &set, &old);  // until child_pid is known
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int saved = errno;
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    ::close(report[0]);
    ::close(report[1]);
    errno = saved;
    throw_errno("cannot start the command (fork)");
  }
  if (pid == 0) {
    set_forwarding(false);
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    ::close(report[0]);
    ::execvp(argv[0], argv.data());
    const int e = errno;
    [[maybe_unused]] auto n = ::write(report[1], &e, sizeof e);
    ::_exit(exit_status::cannot_execute);
  }
  child_pid = pid;
  ::sigprocmask(SIG_SETMASK, &old, nullptr);
  ::close(report[1]);
  int exec_errno = 0;
  ssize_t got;
  do got = ::read(report[0], &exec_errno, sizeof exec_errno);
  while (got < 0 && errno == EINTR);
  ::close(report[0]);

  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ::sigprocmask(SIG_BLOCK, &set, nullptr);  // the child is reaped: its PID is no longer ours
  child_pid = 0;
  if (got == static_cast<ssize_t>(sizeof exec_errno)) return -exec_errno;
  return status;
}

template <class Store>
int run_on(Context& ctx, Store& store, const RunArgs& args) {
  std::string name;
  {
    auto tx = store.begin();
    name = resolve_machine(ctx, tx, args.machine);
  }
  GuardOptions options;
  options.job = args.job.empty() ? default_job_text(args.command) : args.job;
  if (!args.timeout.empty()) options.timeout = parse_seconds(args.timeout);
  options.stale_after = ctx.stale_after();
  options.on_event = ctx.handler();

  set_forwarding(true);  // before the claim: a signal while waiting still ends mama at once
  StaleJobGuard<SystemClock, ProcProbe, Store> guard(store, name, std::move(options), ctx.clock,
                                                     ctx.probe);
  ctx.reporter.end_line();

  const int status = run_command(args.command);
  guard.release();  // errors: mama::error, exit status 1 (the job's record reads as stale)
  set_forwarding(false);

  if (status < 0) {
    std::cerr << "mama: cannot run '" << esc(args.command.front())
              << "': " << std::strerror(-status) << "; check the command name and PATH (machine "
              << esc(name) << " was released)\n";
    return exit_status::cannot_execute;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return exit_status::failure;
}

int run_run(Context& ctx, const RunArgs& args) {
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
  add_stale_after_option(*cmd, ctx);
  cmd->callback([&selected, args] { selected = [args](Context& c) { return run_run(c, *args); }; });
}

}  // namespace mama::cli
