// mama/lookup.hpp — where the lab state is, and which machine a name means.
//
// The rules every front end shares (the CLI, the test-runner harness, your own program):
//   - the state: an explicit path (a --state option) wins; else $MAMA_STATE when set and not
//     empty; else $MAMA_PATH/mama.xml, with MAMA_PATH defaulting to /usr/share/mama (the PHP
//     tool's default);
//   - a machine is named by its name or, as the PHP tool accepts, by its MAC address in any
//     letter case (a name wins over a MAC).
#pragma once

#include <strings.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mama/record.hpp"
#include "mama/state_store.hpp"

namespace mama {

/// The state file: `explicit_path` when not empty, else $MAMA_STATE when set and not empty,
/// else $MAMA_PATH/mama.xml with MAMA_PATH defaulting to /usr/share/mama.
inline std::filesystem::path default_state_path(std::string_view explicit_path = {}) {
  if (!explicit_path.empty()) return std::filesystem::path(explicit_path);
  if (const char* s = std::getenv("MAMA_STATE"); s && *s) return s;
  const char* dir = std::getenv("MAMA_PATH");
  return std::filesystem::path(dir && *dir ? dir : "/usr/share/mama") / "mama.xml";
}

/// Whether machine `m` has a name and the MAC `mac` (any letter case).
inline bool has_mac(const MachineInfo& m, std::string_view mac) noexcept {
  const auto own = m.field("mac");
  return !own.empty() && !m.name.empty() && own.size() == mac.size() &&
         ::strncasecmp(own.data(), mac.data(), own.size()) == 0;
}

/// The name of the machine whose MAC is `mac` (any letter case), if any (the first).
inline std::optional<std::string> machine_by_mac(const std::vector<MachineInfo>& machines,
                                                 std::string_view mac) {
  for (const auto& m : machines)
    if (has_mac(m, mac)) return m.name;
  return std::nullopt;
}

/// The name of the machine called `name_or_mac` in transaction `t` (its name, else its MAC: the
/// first machine in file order that has it); nullopt when there is none. `t` needs find() and,
/// for the MAC, a listing (machines(); read through mama::for_each_machine, which keeps only
/// the name that matched). A store without a listing finds machines by name only.
template <class Transaction>
std::optional<std::string> find_machine(const Transaction& t, std::string_view name_or_mac) {
  if (t.find(name_or_mac)) return std::string(name_or_mac);
  if constexpr (requires { t.machines(); }) {
    std::optional<std::string> found;
    for_each_machine(t, [&](const MachineInfo& m) {
      if (!found && has_mac(m, name_or_mac)) found = m.name;
    });
    return found;
  } else {
    return std::nullopt;
  }
}

}  // namespace mama
