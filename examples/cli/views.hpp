// examples/cli/views.hpp — how `list` and `info` show a machine: JSON and status words.
#pragma once

#include <nlohmann/json.hpp>

#include "cli.hpp"

namespace mama::cli {

/// One machine with its job and verdict, every value whole (for `list --json`, `info --json`).
nlohmann::ordered_json machine_json(const MachineInfo& m, const Assessment& a);

/// Prints `j` to stdout; invalid UTF-8 from the file is replaced rather than refused.
void print_json(const nlohmann::ordered_json& j);

/// "RUNNING", "STALE (process not running)", "RUNNING (no PID recorded)", ... for `info`.
std::string status_text(const Assessment& a);

}  // namespace mama::cli
