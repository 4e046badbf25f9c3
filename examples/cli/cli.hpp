// examples/cli/cli.hpp — what the commands of the `mama` CLI share.
//
// Each command lives in its own file (cmd_<name>.cpp) and registers itself with CLI11 through an
// add_<name>_command function listed in main.cpp. A command is a small function over the library:
// mama::assess decides every status shown (through assess_machine below, which builds the Observation
// the way StaleJobGuard::claim does), a StaleJobGuard claims for `run`, and store transactions
// read and clear for `list`, `info`, `clear` and `wait`. The store is a mama.xml (XmlStateStore)
// or a PostgreSQL database (PgStateStore, when built with libpq): command bodies are templates
// over the store, called through Context::with_store. Every event a command or a
// guard produces goes through one Reporter (reporter.hpp), the one place to add logging.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <mama/guard.hpp>
#include <mama/lookup.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#if MAMA_CLI_WITH_PG
#include <mama/pg_state_store.hpp>
#endif

#include "audit.hpp"
#include "reporter.hpp"

namespace mama::cli {

/// Exit statuses of `mama` (stable, documented in examples/cli/README.md, "Exit statuses").
namespace exit_status {
inline constexpr int ok = 0;
inline constexpr int failure = 1;          ///< I/O or system error (permissions, disk, ...)
inline constexpr int usage = 2;            ///< bad command line: unknown option, bad number, ...
inline constexpr int timed_out = 3;        ///< `--timeout` expired while the machine stayed busy
inline constexpr int busy = 4;             ///< refused: a live job holds the machine (`clear`)
inline constexpr int unknown_machine = 5;  ///< no machine with that name or MAC
inline constexpr int bad_state = 6;        ///< state file missing, truncated, malformed; bad record
inline constexpr int hold_lost = 7;        ///< `run`: the store lost the machine's hold; job ended
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

/// Every kind of lab state the CLI can work on: a mama.xml file, or (when built with libpq) a
/// PostgreSQL database named by a postgresql:// URL. Commands are templates over the store and
/// run through Context::with_store.
#if MAMA_CLI_WITH_PG
using AnyStore = std::variant<XmlStateStore, PgStateStore>;
#else
using AnyStore = std::variant<XmlStateStore>;
#endif

/// Whether `state` names a PostgreSQL database: a `postgresql://` or `postgres://` URL.
bool is_database_url(std::string_view state);

/// The global options and what every command needs.
class Context {
 public:
  Context();

  std::string state_option;             ///< --state, empty when not given
  std::optional<long> stale_after_sec;  ///< --stale-after
  Style out;                            ///< stdout
  Style err;                            ///< stderr
  Reporter reporter;                    ///< every event goes here
  AuditSettings audit;                  ///< audit log and --on-stale hook (audit.hpp)

  /// --state, else $MAMA_STATE, else $MAMA_PATH/mama.xml (mama::default_state_path): a file, or
  /// a postgresql:// URL (see is_database_url).
  std::filesystem::path state_path() const;
  /// Whether state_path() is a PostgreSQL URL.
  bool state_is_database() const { return is_database_url(state_path().native()); }
  /// The store on state_path() (created on first use). Throws mama::error when the state is a
  /// database URL and this `mama` was built without PostgreSQL support.
  AnyStore& any_store();
  /// Calls `f(store)` with the concrete store (XmlStateStore or PgStateStore).
  template <class F>
  decltype(auto) with_store(F&& f) {
    return std::visit(std::forward<F>(f), any_store());
  }
  /// The mama.xml store; throws mama::error (invalid_argument) when the state is a database (for
  /// code that works on files only; commands use with_store).
  XmlStateStore& store();
  /// The state as messages name it: the file, or postgresql://user@host:port/db.
  std::string describe_state();
  /// For commands that may change the state (run, wait, clear): throws mama::error naming the
  /// file when this user cannot change it (no write permission, a read-only file system, an
  /// immutable or append-only file), before anything is detected, cleared or waited for.
  void require_writable();
  /// Rows 4/5 of SPEC §3.
  std::chrono::seconds stale_after() const {
    return std::chrono::seconds(stale_after_sec.value_or(300));
  }
  /// The facts about here and now that assess compares records with (hold: none).
  Observation here() const;
  /// The event handler to give a guard: forwards to reporter.
  EventHandler handler();
  /// Emits an event that a command (not a guard) produced, through the reporter.
  void emit(EventKind kind, std::string_view machine, const JobRecord& record,
            std::string_view reason = {}, std::chrono::nanoseconds waited = {});

  ProcProbe probe;
  SystemClock clock;

 private:
  std::optional<AnyStore> store_;
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
void add_stats_command(CLI::App& app, Context& ctx, Action& selected);
void add_import_command(CLI::App& app, Context& ctx, Action& selected);
void add_export_command(CLI::App& app, Context& ctx, Action& selected);

using mama::HoldProbe;

/// Decides `record` of `machine` in `tx` (a transaction of `store`) with mama::assess, the same
/// function StaleJobGuard::claim uses, on the context's host, boot, time and probe.
template <class Store>
StoreAssessment<Store> assess_machine(Context& ctx, Store& store, typename Store::transaction& tx,
                         std::string_view machine, const JobRecord& record, HoldProbe when) {
  return assess(
      store, tx, machine, record, ctx.here(),
      [&ctx](int pid, std::optional<std::uint64_t> start) { return ctx.probe.check(pid, start); },
      when);
}

/// A transaction for a view (list, info): on stores that offer one (PostgreSQL: begin_read), a
/// snapshot that locks nothing, so looking at the lab never blocks a claim; else begin().
template <class Store>
typename Store::transaction begin_view(Store& store) {
  if constexpr (requires { store.begin_read(); })
    return store.begin_read();
  else
    return store.begin();
}

/// assess_machine on the mama.xml store of the context.
inline StoreAssessment<XmlStateStore> assess_machine(Context& ctx, XmlStateStore::transaction& tx, std::string_view machine,
                    const JobRecord& record, HoldProbe when) {
  return assess_machine(ctx, ctx.store(), tx, machine, record, when);
}

/// Throws mama::error(unknown_machine) for `arg`, naming the state.
[[noreturn]] void throw_unknown_machine(Context& ctx, std::string_view arg);

/// The name of the machine called `arg` (its name, or its MAC as the PHP tool accepts) in `tx`.
/// Throws mama::error(unknown_machine) naming the file or database.
template <class Transaction>
std::string resolve_machine(Context& ctx, const Transaction& tx, std::string_view arg) {
  if (auto name = find_machine(tx, arg)) return *name;
  throw_unknown_machine(ctx, arg);
}

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
