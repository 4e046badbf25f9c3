// examples/cli/cmd_list.cpp — `mama list [--json]`: every machine and its job, as the PHP tool
// prints them (its src/main.php cmd_list), with ` [STALE]` after a stale job.
//
// Byte for byte the tool's table on a lab without power devices: machines sorted by name as PHP
// compares strings, each cell cut and padded as its Util::pad_str does (by bytes, but never
// inside a UTF-8 character), `On`/`VM` as `Yes` or empty, the MAC in lower case, the header's
// `Job` padded to 32 and a rule of 85 dashes. State and Pwr are `-` (only ping and the power
// device could tell). Every difference is listed in the README's `mama list` section.
#include <iostream>
#include <map>

#include "cli.hpp"
#include "views.hpp"

namespace mama::cli {

namespace {

// The PHP tool's columns: No, Name, IP, MAC, State, On, Pwr, VM; then the job, unpadded.
constexpr std::size_t widths[] = {4, 16, 16, 18, 8, 5, 6, 4};

struct ListArgs {
  bool json = false;
};

template <class Store>
int list_on(Context& ctx, Store& store, const ListArgs& args) {
  auto tx = begin_view(store);
  const auto machines = tx.machines();
  // Decide every status inside the one transaction that read the records.
  std::vector<Assessment> verdicts;
  verdicts.reserve(machines.size());
  for (const auto& m : machines)
    verdicts.push_back(
        m.name.empty()
            ? Assessment{Verdict::invalid, "machine without a name"}
            : assess_machine(ctx, store, tx, m.name, m.job, HoldProbe::token_records).assessment);
  { auto done = std::move(tx); }  // unlock before printing

  // A name used twice: the lab is shown, but nothing may claim or clear that name (the store
  // refuses it) until one is renamed.
  std::map<std::string_view, int> uses;
  for (const auto& m : machines)
    if (!m.name.empty() && ++uses[m.name] == 2)
      std::cerr << "mama: warning: " << store.describe() << " names machine '" << esc(m.name)
                << "' more than once; run, wait, clear and info refuse it until one is renamed\n";

  if (args.json) {
    nlohmann::ordered_json j;
    j["state"] = store.describe();
    j["machines"] = nlohmann::ordered_json::array();
    for (std::size_t i = 0; i < machines.size(); ++i)
      j["machines"].push_back(machine_json(machines[i], verdicts[i]));
    print_json(j);
    return exit_status::ok;
  }

  const char* headers[] = {"No", "Name", "IP", "MAC", "State", "On", "Pwr", "VM"};
  std::string out;
  for (std::size_t c = 0; c < 8; ++c) out += php_cell(headers[c], widths[c]);
  out += php_cell("Job", 32) + "\n";
  out += std::string(85, '-') + "\n";
  std::size_t number = 0;
  for (const std::size_t i : php_order(machines)) {
    const auto& m = machines[i];
    std::string mac(m.field("mac"));
    for (char& c : mac)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    // State and Pwr need ping and the power device: mama never touches the network.
    const std::string values[] = {std::to_string(++number),
                                  esc(m.name),
                                  esc(m.field("ip")),
                                  esc(mac),
                                  "-",
                                  php_is_one(m.field("is_started")) ? "Yes" : "",
                                  "-",
                                  php_is_one(m.field("only_vm")) ? "Yes" : ""};
    for (std::size_t c = 0; c < 8; ++c) out += php_cell(values[c], widths[c]);
    out += esc(m.job.job);
    if (verdicts[i].verdict == Verdict::stale) out += ctx.out.paint(" [STALE]", "1;31");
    if (verdicts[i].verdict == Verdict::invalid) out += ctx.out.paint(" [UNKNOWN]", "1;33");
    out += '\n';
  }
  std::cout << out << std::flush;
  return exit_status::ok;
}

int run_list(Context& ctx, const ListArgs& args) {
  return ctx.with_store([&](auto& store) { return list_on(ctx, store, args); });
}

}  // namespace

void add_list_command(CLI::App& app, Context& ctx, Action& selected) {
  auto args = std::make_shared<ListArgs>();
  auto* cmd = app.add_subcommand("list",
                                 "List every machine and its job; ` [STALE]` marks a "
                                 "job whose holder is gone");
  cmd->add_flag("--json", args->json, "Print JSON with every value whole (for scripts)");
  add_stale_after_option(*cmd, ctx);
  cmd->callback(
      [&selected, args] { selected = [args](Context& c) { return run_list(c, *args); }; });
}

}  // namespace mama::cli
