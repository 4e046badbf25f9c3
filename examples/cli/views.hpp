// examples/cli/views.hpp — how `list` and `info` show a machine: JSON, status words, and the
// PHP tool's rules for its table and its `info` lines (comparisons, cells, order).
#pragma once

#include <algorithm>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <string_view>
#include <vector>

#include "cli.hpp"

namespace mama::cli {

/// One machine with its job and verdict, every value whole (for `list --json`, `info --json`).
nlohmann::ordered_json machine_json(const MachineInfo& m, const Assessment& a);

/// Prints `j` to stdout; invalid UTF-8 from the file is replaced rather than refused.
void print_json(const nlohmann::ordered_json& j);

/// "RUNNING", "STALE (process not running)", "RUNNING (no PID recorded)", ... for `info`.
std::string status_text(const Assessment& a);

// The PHP tool compares strings with PHP 8's `==` and `>`: two numeric strings ("10", " 1e3",
// "2.") compare as numbers, anything else byte by byte. `list` and `info` follow it so that
// they show what the tool shows.

/// The value of `text` when PHP 8 reads it as a numeric string (blanks around it allowed).
std::optional<double> php_number(std::string_view text);
/// PHP's `$a == $b` on two strings.
bool php_equal(std::string_view a, std::string_view b);
/// PHP's `$a < $b` on two strings.
bool php_less(std::string_view a, std::string_view b);
/// PHP's `$value == 1` (how the tool reads is_started and only_vm).
bool php_is_one(std::string_view value);

/// The indices of `items` in the PHP tool's order: by name (the member `name`, compared with
/// php_less), stable.
template <class T>
std::vector<std::size_t> php_order(const std::vector<T>& items, std::string T::*name) {
  std::vector<std::size_t> order(items.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return php_less(items[a].*name, items[b].*name);
  });
  return order;
}

/// The indices of `machines` in the PHP tool's order: by name (php_less), stable.
inline std::vector<std::size_t> php_order(const std::vector<MachineInfo>& machines) {
  return php_order(machines, &MachineInfo::name);
}

/// A cell of the PHP tool's table: `value` cut to `width - 1` bytes (never inside a UTF-8
/// character: the cut moves back to the character's start), padded with spaces to that, then
/// one space.
std::string php_cell(std::string_view value, std::size_t width);

}  // namespace mama::cli
