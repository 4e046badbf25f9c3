// examples/cli/cmd_info.cpp — `mama info <machine> [--json]`: one machine's fields and its job.
//
// The lines of the PHP tool's Machine::print_info (its labels and tabs, its order, its
// conditional lines), then `Job started:`, `Job host:` and `Job status:` from this project's
// records and rules (SPEC §6). `Status:` is `-` (only ping could tell) and the power sensors
// are not shown (only the power device could tell); the README's `mama info` section lists
// every difference.
#include <algorithm>
#include <iostream>

#include "cli.hpp"
#include "views.hpp"

namespace mama::cli {

namespace {

// "Label:\tvalue\n": `label` carries its tabs as the PHP tool writes them.
std::string line(std::string_view label, std::string_view value) {
  std::string out(label);
  out += value;
  out += '\n';
  return out;
}

// PHP's trim() characters.
std::string_view php_trim(std::string_view s) {
  constexpr std::string_view blanks(" \t\n\r\0\x0b", 6);
  const auto b = s.find_first_not_of(blanks);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(blanks) - b + 1);
}

// The PHP tool's Machine::get_nested_resources: the resources of the machine called `name` (the
// first in name order, compared as PHP does), each followed by the resources of the machine it
// names, recursively. A machine that is already being expanded is not expanded again (the PHP
// tool would recurse until it runs out of memory).
std::string nested_resources(const std::vector<MachineInfo>& machines,
                             const std::vector<std::size_t>& order, std::string_view name,
                             std::vector<std::size_t>& expanding) {
  const MachineInfo* machine = nullptr;
  std::size_t index = 0;
  for (const std::size_t i : order)
    if (php_equal(machines[i].name, name)) {
      machine = &machines[i];
      index = i;
      break;
    }
  if (!machine || std::find(expanding.begin(), expanding.end(), index) != expanding.end())
    return {};
  expanding.push_back(index);
  std::string out;
  std::string_view rest = machine->field("resources");
  for (;;) {
    const auto space = rest.find(' ');
    const std::string_view resource = php_trim(rest.substr(0, space));
    if (!resource.empty()) {
      if (!out.empty()) out += ' ';
      out += resource;
      const std::string nested = nested_resources(machines, order, resource, expanding);
      if (!nested.empty()) out += " " + nested;
    }
    if (space == std::string_view::npos) break;
    rest.remove_prefix(space + 1);
  }
  expanding.pop_back();
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
  const std::vector<MachineInfo> all = tx.machines();
  std::optional<MachineInfo> machine;
  for (const auto& m : all)
    if (m.name == name && !machine) machine = m;
  const Assessment a =
      assess_machine(ctx, store, tx, name, machine->job, HoldProbe::token_records).assessment;
  { auto done = std::move(tx); }

  if (args.json) {
    print_json(machine_json(*machine, a));
    return exit_status::ok;
  }
  const MachineInfo& m = *machine;
  const auto field = [&m](std::string_view key) { return esc(m.field(key)); };
  std::string mac(m.field("mac"));
  for (char& c : mac)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  std::string out = line("Name:\t\t", esc(m.name));
  out += line("MAC:\t\t", esc(mac));
  out += line("IP:\t\t", field("ip"));
  out += line("Is started:\t", php_is_one(m.field("is_started")) ? "yes" : "no");
  out += line("Is only VM:\t", php_is_one(m.field("only_vm")) ? "yes" : "no");
  out += line("OS:\t\t", field("os"));
  out += line("Kernel:\t\t", field("kernel"));
  out += line("Status:\t\t", "-");
  if (!m.field("pwr_dev").empty())
    out += line("Power device:\t", field("pwr_dev") + "," + field("pwr_slot"));
  if (!m.field("rly_dev").empty())
    out += line("Relay device:\t", field("rly_dev") + "," + field("rly_slot"));
  if (!m.field("reservation").empty()) out += line("Reserved by:\t", field("reservation"));
  if (!m.field("resources").empty()) {
    std::vector<std::size_t> expanding;
    const std::string nested = nested_resources(all, php_order(all), m.name, expanding);
    out += line("Resources:\t",
                field("resources") + " " + (nested.empty() ? "" : "(nested: " + esc(nested) + ")"));
  }
  if (!m.field("startcmd").empty()) out += line("Start command:\t", field("startcmd"));
  if (!m.field("stopcmd").empty()) out += line("Stop command:\t", field("stopcmd"));
  // The PHP tool's default start timeout (its Machine::$start_timeout_default, 4 minutes).
  out +=
      line("Start timeout:\t", m.field("start_timeout").empty() ? "240" : field("start_timeout"));
  out += line("Boot params:\t", field("boot_params"));
  if (!m.field("vm_params").empty()) out += line("VM params:\t", field("vm_params"));
  const JobRecord& job = m.job;
  if (!job.job.empty()) {
    out += line("Running job:\t", esc(job.job));
    if (!job.pid.empty()) out += line("Job PID:\t", esc(job.pid));
  }
  if (!job.idle()) {
    if (!job.timestamp.empty()) {
      const std::string started = local_time(job.timestamp);
      out += line("Job started:\t", started.empty() ? esc(job.timestamp) : started);
    }
    if (!job.host.empty()) out += line("Job host:\t", esc(job.host));
    std::string status = status_text(a);
    if (a.verdict == Verdict::stale)
      status = ctx.out.paint(status, "1;31");
    else if (a.verdict == Verdict::invalid)
      status = ctx.out.paint(status, "1;33");
    else
      status = ctx.out.paint(status, "32");
    out += line("Job status:\t", status);
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
