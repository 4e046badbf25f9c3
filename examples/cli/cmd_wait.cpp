// examples/cli/cmd_wait.cpp — `mama wait <machine> [--timeout SEC]`: wait until a machine is free,
// clearing stale jobs, without claiming it (the file is not written while the machine is idle).
//
// The loop is StaleJobGuard::claim without the claim: each look is one transaction that decides
// with look_at (mama::assess) and clears a stale job in the same critical section; between
// looks it sleeps on the store's wake source (the holder's release or death wakes it at once).
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
  using namespace std::chrono_literals;
  std::optional<std::chrono::nanoseconds> timeout;
  if (!args.timeout.empty()) timeout = parse_seconds(args.timeout);
  const std::chrono::nanoseconds poll = 1s;
  const auto started = ctx.clock.steady_now();
  std::string name;
  std::optional<typename Store::watcher> watcher;

  for (;;) {
    auto tx = store.begin();
    if (name.empty()) name = resolve_machine(ctx, tx, args.machine);
    const auto found = tx.find(name);
    if (!found)
      throw error(errc::unknown_machine, "machine '" + esc(name) + "' was removed from " +
                                             store.describe() + " while waiting for it");
    const JobRecord record = *found;
    auto look = look_at(ctx, store, tx, name, record, hold_probe::always);
    const Assessment& a = look.assessment;
    std::string reason;
    if (a.verdict == verdict::invalid) {
      throw error(errc::bad_record,
                  "machine '" + esc(name) + "' in " + store.describe() + ": " + esc(a.reason));
    } else if (a.verdict == verdict::stale) {
      ctx.emit(event_kind::stale_detected, name, record, a.reason);
      tx.write(name, JobRecord{});
      tx.commit();
      ctx.emit(event_kind::stale_cleared, name, record, a.reason);
      if (look.hold_free) break;
      reason = "job lock held by leftover processes of the previous job";
    } else if (a.verdict == verdict::idle) {
      if (look.hold_free) break;
      reason = "job lock held by leftover processes of the previous job";
    } else {
      reason = a.reason.empty() ? std::string("running") : a.reason;
    }
    look.hold.reset();
    { auto done = std::move(tx); }

    const auto waited = ctx.clock.steady_now() - started;
    if (timeout && waited >= *timeout) {
      ctx.reporter.end_line();
      throw error(errc::timeout,
                  "timed out after " + human_duration(waited) + " waiting for machine '" +
                      esc(name) + "' in " + store.describe() + ": held by job '" + esc(record.job) +
                      "' (PID " + (record.pid.empty() ? "none" : esc(record.pid)) + ", " +
                      esc(reason) + "); wait longer or check that job with `mama info " +
                      esc(name) + "`");
    }
    ctx.emit(event_kind::waiting, name, record, reason, waited);
    if (!watcher) {
      // Look once more right after subscribing: a release in between is not missed.
      watcher.emplace(store.watch(name));
      continue;
    }
    auto slice = poll;
    if (timeout) slice = std::min<std::chrono::nanoseconds>(slice, *timeout - waited);
    ctx.clock.wait_for(slice, watcher->fd());
    watcher->drain();
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
