// examples/cli/main.cpp — `mama`: list, inspect, clear, wait for and run jobs on lab machines.
//
// Parses the command line with CLI11, runs the selected command and maps every error to a
// stable exit status (cli.hpp, exit_status). Commands register themselves through the
// functions in `registrars`; a new command is one more file and one more line there.
#include <iostream>
#include <mama/version.hpp>

#include "cli.hpp"

namespace {

using namespace mama::cli;

constexpr CommandRegistrar registrars[] = {
    add_list_command, add_info_command,   add_clear_command,  add_run_command,
    add_wait_command, add_import_command, add_export_command, add_stats_command,
};

// what() of a std::system_error ends with ": <code's message>"; the library's messages are
// complete sentences already, so that tail is dropped for mama::errc codes.
std::string message_of(const mama::error& e) {
  std::string text = e.what();
  if (e.code().category() != mama::error_category()) return text;
  const std::string tail = ": " + e.code().message();
  if (text.size() > tail.size() && text.ends_with(tail)) text.resize(text.size() - tail.size());
  return text;
}

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
    std::cerr << "mama: " << e.what() << "\nRun '" << where << " --help' for the usage.\n";
    return exit_status::usage;
  }

  try {
    ctx.audit.attach(ctx);
    const int status = selected(ctx);
    ctx.reporter.end_line();
    return status;
  } catch (const mama::error& e) {
    ctx.reporter.end_line();
    std::cerr << "mama: " << message_of(e) << '\n';
    return exit_status_for(e.code());
  } catch (const std::exception& e) {
    ctx.reporter.end_line();
    std::cerr << "mama: " << e.what() << '\n';
    return exit_status::failure;
  }
}
