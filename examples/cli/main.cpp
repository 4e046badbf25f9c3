// examples/cli/main.cpp — `mama`: list, inspect, clear, wait for and run jobs on lab machines.
//
// Parses the command line with CLI11, runs the selected command and maps every error to a
// stable exit status (cli.hpp, exit_status). Commands register themselves through the
// functions in `registrars`; a new command is one more file and one more line there.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mama/version.hpp>
#include <string>
#include <system_error>

#if defined(MAMA_CLI_PG_HELPER)
#include <unistd.h>
#endif

#include "cli.hpp"

namespace {

using namespace mama::cli;

constexpr CommandRegistrar registrars[] = {
    add_list_command, add_info_command,   add_clear_command,  add_run_command,
    add_wait_command, add_import_command, add_export_command, add_stats_command,
};

int exit_status_for(const std::error_code& code) {
  if (code.category() != mama::error_category()) return exit_status::failure;
  switch (static_cast<mama::errc>(code.value())) {
    case mama::errc::unknown_machine:
      return exit_status::unknown_machine;
    case mama::errc::timeout:
      return exit_status::timed_out;
    case mama::errc::busy:
      return exit_status::busy;
    case mama::errc::bad_state_file:
    case mama::errc::bad_record:
      return exit_status::bad_state;
    case mama::errc::invalid_argument:
      return exit_status::usage;
    case mama::errc::io_error:
      return exit_status::failure;
  }
  return exit_status::failure;
}

// The command word of a command line that CLI11 refused without selecting a command: the first
// argument that is neither an option nor an option's value (empty when there is none).
std::string command_word(const CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") return {};
    if (!arg.starts_with("-")) return std::string(arg);
    if (arg.find('=') != std::string_view::npos) continue;
    const CLI::Option* opt = app.get_option_no_throw(std::string(arg));
    if (opt && opt->get_items_expected_max() > 0) ++i;  // skip its value
  }
  return {};
}

bool is_command(const CLI::App& app, const std::string& word) {
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    if (sub->get_name() == word) return true;
  return false;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// "unknown command 'lst' (did you mean 'list'?); the commands are: list, info, ..."
std::string unknown_command(const CLI::App& app, const std::string& word) {
  std::string names, closest;
  std::size_t best = 3;  // suggest only names at most two edits away
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    const std::string& name = sub->get_name();
    names += (names.empty() ? "" : ", ") + name;
    if (const std::size_t d = edit_distance(word, name); d < best) {
      best = d;
      closest = name;
    }
  }
  std::string text = "unknown command '" + esc(word) + "'";
  if (!closest.empty()) text += " (did you mean '" + closest + "'?)";
  return text + "; the commands are: " + names;
}

// Whether everything written to stdout reached it (a full disk, a closed pipe): reported, as a
// command whose output is lost has not done its job.
bool output_written() {
  const int before = errno;  // a failed write of the command's own output set it
  std::cout.flush();
  if (std::cout.good() && std::fflush(stdout) == 0) return true;
  int e = errno ? errno : before;
  if (e != ENOSPC && e != EIO && e != EPIPE && e != EBADF && e != EFBIG && e != EDQUOT) e = 0;
  std::cerr << "mama: cannot write to standard output"
            << (e ? std::string(" (") + std::strerror(e) + ")" : std::string())
            << "; the output is incomplete\n";
  return false;
}

#if defined(MAMA_CLI_PG_HELPER)
// `mama` does not link libpq (most of what a start would load); a postgresql:// state is served by
// `mama-pg`, the same program built with libpq, installed beside this one. It replaces this
// process (same PID, arguments, environment, descriptors), so exit statuses and signals are the
// ones it gives. Returns only when it cannot be executed.
int exec_pg_helper(char** argv) {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::filesystem::path helper =
      (ec ? std::filesystem::path("/usr/bin") : self.parent_path()) / MAMA_CLI_PG_HELPER;
  ::execv(helper.c_str(), argv);
  const int e = errno;
  std::cerr << "mama: the state is a PostgreSQL URL, which mama serves with " << helper.string()
            << ", and that cannot be executed (" << std::strerror(e)
            << "); install it beside mama (it is built with mama when libpq is found), or use a "
               "mama.xml file (--state FILE)\n";
  return exit_status::failure;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  Context ctx;
  CLI::App app{
      "mama: keeps lab test machines from getting stuck behind crashed jobs.\n"
      "Lists machines and their jobs, clears stale jobs, waits for and runs jobs on a machine.",
      "mama"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the command: `mama list --state F`
  app.set_version_flag("--version", std::string("mama ") + mama::version);
  app.add_option("--state", ctx.state_option,
                 "The lab state: a mama.xml file or a postgresql:// URL (default: $MAMA_STATE, "
                 "else $MAMA_PATH/mama.xml, MAMA_PATH defaulting to /usr/share/mama)")
      ->type_name("FILE|URL");
  add_stale_after_option(app, ctx);
  ctx.audit.add_options(app);
  app.footer(
      "Exit status: 0 ok, 1 error, 2 usage, 3 timeout, 4 busy (refused), 5 unknown machine,\n"
      "6 bad state file or record; `run` exits with the command's status (127: not executable;\n"
      "7: the hold was lost and the job ended).");

  Action selected;
  for (auto add : registrars) add(app, ctx, selected);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // "mama: <what>", then where to look: the help of the command that was being parsed.
    std::string where = "mama";
    for (const auto* sub : app.get_subcommands()) where += " " + sub->get_name();
    std::string what = e.what();
    if (app.get_subcommands().empty()) {
      // CLI11 says "A subcommand is required" for `mama lst`: name the word it did not know.
      const std::string word = command_word(app, argc, argv);
      if (!word.empty() && !is_command(app, word)) what = unknown_command(app, word);
    }
    std::cerr << "mama: " << what << "\nRun '" << where << " --help' for the usage.\n";
    return exit_status::usage;
  }

  // Checks CLI11 cannot express: an empty --state (it would fall back to the default file) and
  // an empty command after `run ... --` (it would be taken for an empty job text).
  const auto usage_error = [&](const std::string& what, const std::string& where) {
    std::cerr << "mama: " << what << "\nRun '" << where << " --help' for the usage.\n";
    return exit_status::usage;
  };
  if (app.get_option("--state")->count() > 0 && ctx.state_option.empty())
    return usage_error(
        "--state was given an empty value; give the lab's mama.xml (or a postgresql:// URL), or "
        "leave --state out to use $MAMA_STATE or $MAMA_PATH/mama.xml",
        "mama");
  const CLI::App* command = app.get_subcommands().empty() ? nullptr : app.get_subcommands()[0];
  const std::string name = command ? command->get_name() : std::string();
  if (name == "run") {
    const CLI::Option* cmd = command->get_option_no_throw("command");
    if (cmd && !cmd->results().empty() && cmd->results().front().empty())
      return usage_error(
          "the command after `--` is empty (\"\"); give the program to run, e.g. `mama run "
          "alpha -- make test`",
          "mama run");
  }

#if defined(MAMA_CLI_PG_HELPER)
  // Parsed and checked alike by both programs: from here on the database is mama-pg's.
  if (ctx.state_is_database()) return exec_pg_helper(argv);
#endif

  try {
    // run, wait and clear may have to change the state (claim, clear a stale job): a user who
    // cannot is told so before anything is detected, cleared or waited for.
    if (name == "run" || name == "wait" || name == "clear") ctx.require_writable();
    ctx.audit.attach(ctx);
    const int status = selected(ctx);
    ctx.reporter.end_line();
    if (!output_written()) return status == exit_status::ok ? exit_status::failure : status;
    return status;
  } catch (const mama::error& e) {
    ctx.reporter.end_line();
    std::cerr << "mama: " << e.what() << '\n';
    return exit_status_for(e.code());
  } catch (const std::exception& e) {
    ctx.reporter.end_line();
    std::cerr << "mama: " << e.what() << '\n';
    return exit_status::failure;
  }
}
