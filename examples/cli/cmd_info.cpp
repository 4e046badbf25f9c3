// examples/cli/cmd_info.cpp — `mama info <machine> [--json]`: one machine's fields and its job.
#include <iostream>
#include <map>

#include "cli.hpp"
#include "views.hpp"

namespace mama::cli {

namespace {

// Labels for the fields the PHP tool knows; other fields show under their element name.
const std::map<std::string, std::string, std::less<>>& field_labels() {
  static const std::map<std::string, std::string, std::less<>> labels{
      {"mac", "MAC"},
      {"ip", "IP"},
      {"is_started", "Started"},
      {"only_vm", "Only VM"},
      {"arch", "Arch"},
      {"os", "OS"},
      {"kernel", "Kernel"},
      {"pwr_dev", "Power device"},
      {"pwr_slot", "Power slot"},
      {"rly_dev", "Relay device"},
      {"rly_slot", "Relay slot"},
      {"reservation", "Reservation"},
      {"resources", "Resources"},
      {"boot_params", "Boot params"},
      {"vm_params", "VM params"},
      {"startcmd", "Start command"},
      {"stopcmd", "Stop command"},
      {"start_timeout", "Start timeout"},
  };
  return labels;
}

// "Label:" padded to 16 columns, then the value.
std::string line(std::string_view label, std::string_view value) {
  std::string out(label);
  out += ':';
  if (out.size() < 16)
    out.append(16 - out.size(), ' ');
  else
    out += ' ';
  out += value;
  out += '\n';
  return out;
}

struct InfoArgs {
  std::string machine;
  bool json = false;
};

template <class Store>
int info_on(Context& ctx, Store& store, const InfoArgs& args) {
  auto tx = begin_view(store);
  const std::string name = resolve_machine(ctx, tx, args.machine);
  std::optional<MachineInfo> machine;
  for (auto& m : tx.machines())
    if (m.name == name) machine = std::move(m);
  const Assessment a =
      look_at(ctx, store, tx, name, machine->job, hold_probe::token_records).assessment;
  { auto done = std::move(tx); }

  if (args.json) {
    print_json(machine_json(*machine, a));
    return exit_status::ok;
  }
  std::string out = line("Name", esc(machine->name));
  for (const auto& [key, value] : machine->fields) {
    if (value.empty()) continue;  // absent and empty read alike (SPEC §2); --json shows all
    const auto it = field_labels().find(key);
    std::string shown = esc(value);
    if (key == "is_started" || key == "only_vm") shown = value == "1" ? "Yes" : "No";
    out += line(it != field_labels().end() ? it->second : esc(key), shown);
  }
  const JobRecord& job = machine->job;
  if (!job.idle()) {
    out += line("Running job", esc(job.job));
    out += line("Job PID", job.pid.empty() ? "none" : esc(job.pid));
    const std::string started = local_time(job.timestamp);
    out += line("Job started", !started.empty()        ? started
                               : job.timestamp.empty() ? "unknown"
                                                       : esc(job.timestamp));
    if (!job.host.empty()) out += line("Job host", esc(job.host));
    std::string status = status_text(a);
    if (a.verdict == verdict::stale)
      status = ctx.out.paint(status, "1;31");
    else if (a.verdict == verdict::invalid)
      status = ctx.out.paint(status, "1;33");
    else
      status = ctx.out.paint(status, "32");
    out += line("Job status", status);
  }
  std::cout << out << std::flush;
  return exit_status::ok;
}

int run_info(Context& ctx, const InfoArgs& args) {
  return ctx.with_store([&](auto& store) { return info_on(ctx, store, args); });
}

}  // namespace

void add_info_command(CLI::App& app, Context& ctx, Action& selected) {
  auto args = std::make_shared<InfoArgs>();
  auto* cmd = app.add_subcommand("info", "Show one machine's fields and its job with its status");
  cmd->add_option("machine", args->machine, "The machine's name or MAC address")->required();
  cmd->add_flag("--json", args->json, "Print JSON with every value whole (for scripts)");
  add_stale_after_option(*cmd, ctx);
  cmd->callback(
      [&selected, args] { selected = [args](Context& c) { return run_info(c, *args); }; });
}

}  // namespace mama::cli
