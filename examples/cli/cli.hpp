// examples/cli/cli.hpp — what the commands of the `mama` CLI share.
//
// Each command lives in its own file (cmd_<name>.cpp) and registers itself with CLI11 through an
// add_<name>_command function listed in main.cpp. A command is a small function over the library:
// mama::assess decides every status shown (through look_at below, which builds the Observation
// the way StaleJobGuard::claim does), mama::JobGuard claims for `run`, and XmlStateStore
// transactions read and clear for `list`, `info`, `clear` and `wait`. Every event a command or a
// guard produces goes through one Reporter (reporter.hpp), the one place to add logging.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <mama/guard.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reporter.hpp"

namespace mama::cli {

/// Exit statuses of `mama` (stable, documented in docs/sections/cli.md).
namespace exit_status {
inline constexpr int ok = 0;
inline constexpr int failure = 1;          ///< I/O or system error (permissions, disk, ...)
inline constexpr int usage = 2;            ///< bad command line: unknown option, bad number, ...
inline constexpr int timed_out = 3;        ///< `--timeout` expired while the machine stayed busy
inline constexpr int busy = 4;             ///< refused: a live job holds the machine (`clear`)
inline constexpr int unknown_machine = 5;  ///< no machine with that name or MAC
inline constexpr int bad_state = 6;        ///< state file missing, truncated, malformed; bad record
inline constexpr int cannot_execute = 127;  ///< `run`: the command could not be executed
}  // namespace exit_status

/// Where output goes and whether it may be coloured (only on a terminal, never with NO_COLOR).
struct Style {
  bool tty = false;
  bool color = false;

  /// Style for file descriptor `fd` (1 or 2).
  static Style for_fd(int fd);
  /// `text` wrapped in the SGR sequence `sgr` (e.g. "31" red) when colour is on.
  std::string paint(std::string_view text, std::string_view sgr) const;
};

/// The global options and what every command needs.
class Context {
 public:
  Context();

  std::string state_option;             ///< --state, empty when not given
  std::optional<long> stale_after_sec;  ///< --stale-after
  Style out;                            ///< stdout
  Style err;                            ///< stderr
  Reporter reporter;                    ///< every event goes here

  /// --state, else $MAMA_STATE, else $MAMA_PATH/mama.xml ($MAMA_PATH defaults to /usr/share/mama).
  std::filesystem::path state_path() const;
  /// The store on state_path() (created on first use).
  XmlStateStore& store();
  /// Rows 4/5 of SPEC §3.
  std::chrono::seconds stale_after() const {
    return std::chrono::seconds(stale_after_sec.value_or(300));
  }
  /// The facts about here and now that assess compares records with (hold: none).
  Observation here() const;
  /// The event handler to give a guard: forwards to reporter.
  EventHandler handler();
  /// Emits an event that a command (not a guard) produced, through the reporter.
  void emit(event_kind kind, std::string_view machine, const JobRecord& record,
            std::string_view reason = {}, std::chrono::nanoseconds waited = {});

  ProcProbe probe;
  SystemClock clock;

 private:
  std::optional<XmlStateStore> store_;
};

/// What a command registration gives back to main: the action to run after parsing.
using Action = std::function<int(Context&)>;

/// Registers a command on `app`; when the command is selected on the command line, CLI11's
/// callback stores the command's action in `selected`.
using CommandRegistrar = void (*)(CLI::App& app, Context& ctx, Action& selected);

void add_list_command(CLI::App& app, Context& ctx, Action& selected);
void add_info_command(CLI::App& app, Context& ctx, Action& selected);
void add_clear_command(CLI::App& app, Context& ctx, Action& selected);
void add_run_command(CLI::App& app, Context& ctx, Action& selected);
void add_wait_command(CLI::App& app, Context& ctx, Action& selected);

/// A machine's verdict as decided inside one transaction, and the machine's hold when it was
/// free (kept so that a caller can clear or claim in the same critical section).
struct Look {
  Assessment assessment;
  std::optional<XmlStateStore::hold> hold;
  bool hold_free = false;  ///< the kernel hold was free (or the store keeps none)
};

/// When to probe the machine's kernel hold.
enum class hold_probe {
  token_records,  ///< only for records that carry a token (read-only commands: no lock files)
  always,         ///< also for idle records (leftover job processes keep a machine busy)
};

/// Decides `record` of `machine` in `tx` exactly as StaleJobGuard::claim does: the machine's
/// kernel hold (tx.try_hold) decides rows 6-9 for records with a token; the /proc probe decides
/// for the others.
Look look_at(Context& ctx, XmlStateStore::transaction& tx, std::string_view machine,
             const JobRecord& record, hold_probe when);

/// The name of the machine called `arg` (its name, or its MAC as the PHP tool accepts) in `tx`.
/// Throws mama::error(unknown_machine) naming the file.
std::string resolve_machine(Context& ctx, const XmlStateStore::transaction& tx,
                            std::string_view arg);

/// `text` with control characters escaped (strings from the state file).
inline std::string esc(std::string_view text) { return detail::escape_control(text); }

/// Unix seconds as local time "YYYY-MM-DD HH:MM:SS"; empty when `stamp` is not a number.
std::string local_time(std::string_view stamp);

/// A duration for humans: "12 s", "3 min 05 s", "2 h 07 min".
std::string human_duration(std::chrono::nanoseconds d);

/// A CLI11 validator for a number of seconds >= 0 (fractions allowed when `fractional`).
CLI::Validator seconds_validator(bool fractional);

/// Parses a value that seconds_validator accepted.
std::chrono::nanoseconds parse_seconds(const std::string& text);

/// Adds `--stale-after SEC` to `app`, stored in the context.
void add_stale_after_option(CLI::App& app, Context& ctx);

}  // namespace mama::cli
