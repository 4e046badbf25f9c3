// examples/cli/cmd_clear.cpp — `mama clear <machine>|all [--force]`: clear stale jobs (and, on
// request, live ones). Deciding and clearing happen in one transaction, after re-reading.
#include <iostream>
#include <mama/clear.hpp>
#include <map>

#include "cli.hpp"

namespace mama::cli {

namespace {

struct ClearArgs {
  std::string machine;
  bool force = false;
};

// "run x (PID: 123, process not running)"
std::string job_text(const JobRecord& r, std::string_view reason) {
  std::string text = esc(r.job) + " (PID: " + (r.pid.empty() ? std::string("none") : esc(r.pid));
  if (!reason.empty()) text += ", " + esc(reason);
  return text + ")";
}

// Decides one machine inside `tx` (mama::decide_clear, the library's judge-and-clear step).
template <class Store>
ClearDecision clear_one(Context& ctx, Store& store, typename Store::transaction& tx,
                        const std::string& name, bool force) {
  return decide_clear(
      store, tx, name, ctx.here(),
      [&ctx](int pid, std::optional<std::uint64_t> start) { return ctx.probe.check(pid, start); },
      force);
}

// After the commit: says what was cleared and reports it.
void tell_cleared(Context& ctx, const ClearDecision& d) {
  if (d.forced)
    std::cout << "Cleared running job on " << esc(d.machine)
              << " (--force): " << job_text(d.record, d.assessment.reason) << '\n';
  else
    std::cout << "Cleared stale job on " << esc(d.machine) << ": "
              << job_text(d.record, d.assessment.reason) << '\n';
  report_clear(d, ctx.describe_state(), ctx.handler());
}

template <class Store>
int clear_on(Context& ctx, Store& store, const ClearArgs& args) {
  auto tx = store.begin();
  if (args.machine != "all" || tx.find("all")) {
    const std::string name = resolve_machine(ctx, tx, args.machine);
    const ClearDecision d = clear_one(ctx, store, tx, name, args.force);
    if (d.what == ClearOutcome::cleared) {
      tx.commit();
      { auto done = std::move(tx); }
      tell_cleared(ctx, d);
      return exit_status::ok;
    }
    if (d.what == ClearOutcome::idle) {
      std::cout << esc(name) << " has no job; nothing to clear\n";
      return exit_status::ok;
    }
    const auto& a = d.assessment;
    throw error(errc::busy, "machine '" + esc(name) + "' in " + store.describe() + " runs job '" +
                                esc(d.record.job) + "' (PID " +
                                (d.record.pid.empty() ? "none" : esc(d.record.pid)) + ", " +
                                (a.reason.empty() ? std::string("running") : esc(a.reason)) +
                                "); not cleared. Wait for it with `mama wait " + esc(name) +
                                "`, or clear it anyway with `mama clear --force " + esc(name) +
                                "`");
  }

  // `all`: every machine, in one critical section.
  std::vector<ClearDecision> decisions;
  const auto machines = tx.machines();
  std::map<std::string_view, int> uses;  // a name used twice is refused by the store: skip it
  for (const auto& m : machines) ++uses[m.name];
  for (const auto& m : machines) {
    if (m.name.empty()) continue;
    if (int& n = uses[m.name]; n != 1) {
      if (n > 1)
        std::cerr << "mama: skipped '" << esc(m.name) << "': more than one machine in "
                  << store.describe() << " has that name; rename one\n";
      n = 0;  // said once
      continue;
    }
    decisions.push_back(clear_one(ctx, store, tx, m.name, args.force));
  }
  tx.commit();
  { auto done = std::move(tx); }
  int cleared = 0;
  int left = 0;
  for (const auto& d : decisions) {
    if (d.what == ClearOutcome::cleared) {
      ++cleared;
      tell_cleared(ctx, d);
    } else if (d.what == ClearOutcome::left) {
      ++left;
      std::cout << "Left running job on " << esc(d.machine) << ": "
                << job_text(d.record, d.assessment.reason) << '\n';
    }
  }
  std::cout << "Cleared " << cleared << (cleared == 1 ? " job" : " jobs");
  if (left) std::cout << "; left " << left << " running (clear them with `mama clear --force all`)";
  std::cout << '\n';
  return exit_status::ok;
}

int run_clear(Context& ctx, const ClearArgs& args) {
  return ctx.with_store([&](auto& store) { return clear_on(ctx, store, args); });
}

}  // namespace

void add_clear_command(CLI::App& app, Context& ctx, Action& selected) {
  auto args = std::make_shared<ClearArgs>();
  auto* cmd = app.add_subcommand(
      "clear", "Clear a stale job (its holder is gone); a live one only with --force");
  cmd->add_option("machine", args->machine, "The machine's name or MAC address, or `all`")
      ->required();
  cmd->add_flag("--force", args->force,
                "Also clear a job whose holder still runs (it keeps running; the machine is "
                "then free for the next job)");
  add_stale_after_option(*cmd, ctx);
  cmd->callback(
      [&selected, args] { selected = [args](Context& c) { return run_clear(c, *args); }; });
}

}  // namespace mama::cli
