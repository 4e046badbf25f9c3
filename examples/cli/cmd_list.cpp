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
#include <range/v3/view/enumerate.hpp>
#include <range/v3/view/transform.hpp>
#include <range/v3/view/zip.hpp>

#include "cli.hpp"
#include "views.hpp"

namespace mama::cli {

namespace {

// The PHP tool's columns: No, Name, IP, MAC, State, On, Pwr, VM; then the job, unpadded.
constexpr std::size_t widths[] = {4, 16, 16, 18, 8, 5, 6, 4};
constexpr const char* headers[] = {"No", "Name", "IP", "MAC", "State", "On", "Pwr", "VM"};

struct ListArgs {
  bool json = false;
};

// What the table shows of one machine (the rest of its fields is not kept), with its verdict.
struct Row {
  std::string name;
  std::string ip;
  std::string mac;  // in lower case
  bool started = false;
  bool only_vm = false;
  std::string job;
  Verdict v = Verdict::idle;
};

// `list --json` keeps each machine as the text it prints: `name` and one element of "machines".
struct JsonItem {
  std::string name;
  std::string text;
};

// A name used twice: the lab is shown, but nothing may claim or clear that name (the store
// refuses it) until one is renamed.
template <class Names>
void warn_twice_named(const std::string& state, Names&& names) {
  std::map<std::string_view, int> uses;
  for (const std::string& name : names)
    if (!name.empty() && ++uses[name] == 2)
      std::cerr << "mama: warning: " << state << " names machine '" << esc(name)
                << "' more than once; run, wait, clear and info refuse it until one is renamed\n";
}

// `j.dump` as print_json writes it, for an element of the top-level "machines" array: its
// lines after the first indented by the array's 4 spaces.
std::string json_element(const nlohmann::ordered_json& j) {
  const std::string flat = j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  std::string out;
  out.reserve(flat.size() + flat.size() / 8);
  for (const char c : flat) {
    out += c;
    if (c == '\n') out += "    ";
  }
  return out;
}

// What print_json prints for {"state": state, "machines": [items...]}, from the items' text.
void print_list_json(const std::string& state, const std::vector<JsonItem>& items) {
  std::string out = "{\n  \"state\": ";
  out += nlohmann::ordered_json(state).dump(2, ' ', false,
                                            nlohmann::ordered_json::error_handler_t::replace);
  out += ",\n  \"machines\": ";
  if (items.empty()) {
    out += "[]";
  } else {
    out += "[\n";
    for (const auto& [i, item] : ranges::views::enumerate(items)) {
      out += i == 0 ? "    " : ",\n    ";
      out += item.text;
    }
    out += "\n  ]";
  }
  out += "\n}\n";
  std::cout << out << std::flush;
}

template <class Store>
int list_on(Context& ctx, Store& store, const ListArgs& args) {
  // Decide every status inside the one transaction that read the records, keeping only what is
  // shown.
  std::vector<Row> rows;
  std::vector<JsonItem> items;
  {
    auto tx = begin_view(store);
    Sweep<Store> sweep(ctx, store, tx);
    for_each_machine(tx, [&](const MachineInfo& m) {
      const Assessment a = m.name.empty() ? Assessment{Verdict::invalid, "machine without a name"}
                                          : sweep.look(m.name, m.job);
      if (args.json) {
        items.push_back({m.name, json_element(machine_json(m, a))});
        return;
      }
      Row& r = rows.emplace_back();
      r.name = m.name;
      r.ip = m.field("ip");
      r.mac = m.field("mac");
      for (char& c : r.mac)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      r.started = php_is_one(m.field("is_started"));
      r.only_vm = php_is_one(m.field("only_vm"));
      r.job = m.job.job;
      r.v = a.verdict;
    });
  }  // unlock before printing

  const std::string state = store.describe();
  if (args.json) {
    warn_twice_named(state, items | ranges::views::transform(&JsonItem::name));
    print_list_json(state, items);
    return exit_status::ok;
  }
  warn_twice_named(state, rows | ranges::views::transform(&Row::name));

  std::string out;
  for (const auto& [header, width] : ranges::views::zip(headers, widths))
    out += php_cell(header, width);
  out += php_cell("Job", 32) + "\n";
  out += std::string(85, '-') + "\n";
  const std::vector<std::size_t> order = php_order(rows, &Row::name);
  const auto sorted =
      order | ranges::views::transform([&](std::size_t i) -> const Row& { return rows[i]; });
  for (const auto& [index, r] : ranges::views::enumerate(sorted)) {
    // State and Pwr need ping and the power device: mama never touches the network.
    const std::string values[] = {std::to_string(index + 1),
                                  esc(r.name),
                                  esc(r.ip),
                                  esc(r.mac),
                                  "-",
                                  r.started ? "Yes" : "",
                                  "-",
                                  r.only_vm ? "Yes" : ""};
    for (const auto& [value, width] : ranges::views::zip(values, widths))
      out += php_cell(value, width);
    out += esc(r.job);
    if (r.v == Verdict::stale) out += ctx.out.paint(" [STALE]", "1;31");
    if (r.v == Verdict::invalid) out += ctx.out.paint(" [UNKNOWN]", "1;33");
    out += '\n';
    if (out.size() >= (64u << 10)) {  // a large lab's table is written as it is made
      std::cout << out;
      out.clear();
    }
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
