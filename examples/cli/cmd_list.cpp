// examples/cli/cmd_list.cpp — `mama list [--json]`: every machine and its job, as the PHP tool
// prints them, with ` [STALE]` after a stale job.
#include <iostream>

#include "cli.hpp"
#include "views.hpp"

namespace mama::cli {

namespace {

// The PHP tool's columns: No, Name, IP, MAC, State, On, Pwr, VM; then the job, unpadded.
constexpr std::size_t widths[] = {4, 16, 16, 18, 8, 5, 6, 4};

// `value` cut to `width - 1` characters, padded to that, then one space (as the PHP tool does).
// Counts UTF-8 characters, not bytes, so names in other scripts neither break nor misalign.
std::string cell(std::string_view value, std::size_t width) {
  std::string out;
  std::size_t chars = 0;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const auto c = static_cast<unsigned char>(value[i]);
    if ((c & 0xc0) != 0x80) {
      if (chars == width - 1) break;
      ++chars;
    }
    out += value[i];
  }
  out.append(width - 1 - chars, ' ');
  out += ' ';
  return out;
}

std::string yes_no(std::string_view flag) { return flag == "1" ? "Yes" : "No"; }

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
            ? Assessment{verdict::invalid, "machine without a name"}
            : look_at(ctx, store, tx, m.name, m.job, hold_probe::token_records).assessment);
  { auto done = std::move(tx); }  // unlock before printing

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
  for (std::size_t c = 0; c < 8; ++c) out += cell(headers[c], widths[c]);
  out += "Job\n";
  out += std::string(81, '-') + "\n";
  for (std::size_t i = 0; i < machines.size(); ++i) {
    const auto& m = machines[i];
    // State and Pwr need ping and the power device: mama never touches the network.
    const std::string values[] = {std::to_string(i + 1),
                                  esc(m.name),
                                  esc(m.field("ip")),
                                  esc(m.field("mac")),
                                  "-",
                                  yes_no(m.field("is_started")),
                                  "-",
                                  m.field("only_vm") == "1" ? "Yes" : ""};
    for (std::size_t c = 0; c < 8; ++c) out += cell(values[c], widths[c]);
    out += esc(m.job.job);
    if (verdicts[i].verdict == verdict::stale) out += ctx.out.paint(" [STALE]", "1;31");
    if (verdicts[i].verdict == verdict::invalid) out += ctx.out.paint(" [UNKNOWN]", "1;33");
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
