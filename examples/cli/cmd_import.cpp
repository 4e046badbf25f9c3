// examples/cli/cmd_import.cpp — `mama import [--replace] FILE`: copies the lab in the mama.xml
// FILE into the PostgreSQL database given by --state or MAMA_STATE (one transaction, under the
// file's lock). A refused or failed import leaves the database as it was.
#include <iostream>

#include "cli.hpp"

#if MAMA_CLI_WITH_PG
#include <mama/pg_import_export.hpp>
#endif

namespace mama::cli {

namespace {

struct ImportArgs {
  std::string file;
  bool replace = false;
};

int run_import(Context& ctx, const ImportArgs& args) {
  if (!ctx.state_is_database())
    throw error(errc::invalid_argument,
                "mama import copies a mama.xml into a PostgreSQL database, and the state is the "
                "file " +
                    esc(ctx.state_path().native()) +
                    "; name the database with --state postgresql://USER@HOST/DB or MAMA_STATE");
#if MAMA_CLI_WITH_PG
  auto& pg = std::get<PgStateStore>(ctx.any_store());
  std::error_code ec;
  if (!std::filesystem::is_regular_file(args.file, ec))
    throw error(errc::bad_state_file, "cannot import " + esc(args.file) +
                                          ": no such file; give the path of the lab's mama.xml");
  XmlStateStore xml(args.file);
  const ImportResult r = import_xml(xml, pg, ImportOptions{.replace = args.replace});
  std::cout << "Imported " << r.machines << (r.machines == 1 ? " machine" : " machines");
  if (r.others) std::cout << " and " << r.others << " other element" << (r.others == 1 ? "" : "s");
  std::cout << " from " << esc(xml.describe()) << " into " << pg.describe() << '\n';
  if (r.busy)
    std::cout << r.busy << (r.busy == 1 ? " machine has" : " machines have")
              << " a job recorded; such a job holds no lock on the server, so the next `mama run` "
                 "or `mama wait` on that machine clears it as stale\n";
  return exit_status::ok;
#else
  (void)args;
  ctx.any_store();  // throws: built without PostgreSQL support
  return exit_status::failure;
#endif
}

}  // namespace

void add_import_command(CLI::App& app, Context& ctx, Action& selected) {
  auto args = std::make_shared<ImportArgs>();
  auto* cmd = app.add_subcommand(
      "import",
      "Copy the lab in a mama.xml into the PostgreSQL database given by --state or MAMA_STATE");
  cmd->add_option("file", args->file, "The mama.xml to copy from (it is only read)")
      ->required()
      ->type_name("FILE");
  cmd->add_flag("--replace", args->replace,
                "Replace the machines the database holds (default: refuse when it has any)");
  (void)ctx;
  cmd->callback(
      [&selected, args] { selected = [args](Context& c) { return run_import(c, *args); }; });
}

}  // namespace mama::cli
