// examples/cli/cmd_wait.cpp — `mama wait <machine> [--timeout SEC]`: wait until a machine is free,
// clearing stale jobs, without claiming it (the file is not written while the machine is idle).
//
// The loop is the library's: StaleJobGuard::wait_until_free, the claim loop without the claim
// (each look one transaction that judges and clears a stale job in the same critical section;
// between looks it sleeps on the store's wake source). Its events reach the reporter.
#include <iostream>

#include "cli.hpp"

namespace mama::cli {

namespace {

struct WaitArgs {
  std::string machine;
  std::string timeout;
};

template <class Store>
int wait_on(Context& ctx, Store& store, const WaitArgs& args) {
  const std::string name = [&] {
    auto tx = store.begin();
    return resolve_machine(ctx, tx, args.machine);
  }();
  GuardOptions options;
  options.stale_after = ctx.stale_after();
  if (!args.timeout.empty()) options.timeout = parse_seconds(args.timeout);
  options.on_event = ctx.handler();
  try {
    StaleJobGuard<SystemClock, ProcProbe, Store>::wait_until_free(store, name, std::move(options),
                                                                  ctx.clock, ctx.probe);
  } catch (const error&) {
    ctx.reporter.end_line();  // a status line on a terminal ends before the error
    throw;
  }
  ctx.reporter.end_line();
  std::cout << esc(name) << " is free\n";
  return exit_status::ok;
}

int run_wait(Context& ctx, const WaitArgs& args) {
  return ctx.with_store([&](auto& store) { return wait_on(ctx, store, args); });
}

}  // namespace

void add_wait_command(CLI::App& app, Context& ctx, Action& selected) {
  auto args = std::make_shared<WaitArgs>();
  auto* cmd = app.add_subcommand(
      "wait", "Wait until a machine is free (clearing stale jobs) without claiming it");
  cmd->add_option("machine", args->machine, "The machine's name or MAC address")->required();
  cmd->add_option("--timeout", args->timeout,
                  "Give up after SEC seconds (exit status 3); default: wait as long as it takes")
      ->type_name("SEC")
      ->check(seconds_validator(true));
  add_stale_after_option(*cmd, ctx);
  cmd->callback(
      [&selected, args] { selected = [args](Context& c) { return run_wait(c, *args); }; });
}

}  // namespace mama::cli
