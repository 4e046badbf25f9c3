// examples/cli/cmd_export.cpp — `mama export [--force] FILE`: writes the lab in the PostgreSQL
// database given by --state or MAMA_STATE to FILE as a mama.xml (for the PHP tool and for
// backups). The file is written beside and renamed into place; an existing FILE is replaced only
// with --force, and a refused or failed export leaves it as it was.
#include <iostream>

#include "cli.hpp"

#if MAMA_CLI_WITH_PG
#include <mama/pg_import_export.hpp>
#endif

namespace mama::cli {

namespace {

struct ExportArgs {
  std::string file;
  bool force = false;
};

int run_export(Context& ctx, const ExportArgs& args) {
  if (!ctx.state_is_database())
    throw error(errc::invalid_argument,
                "mama export writes a PostgreSQL database to a mama.xml, and the state is the "
                "file " +
                    esc(ctx.state_path().native()) +
                    "; name the database with --state postgresql://USER@HOST/DB or MAMA_STATE");
#if MAMA_CLI_WITH_PG
  auto& pg = std::get<PgStateStore>(ctx.any_store());
  const std::size_t count = pg.begin_read().machines().size();
  if (count == 0)
    throw error(errc::bad_state_file, pg.describe() + " holds no machines; nothing exported (" +
                                          esc(args.file) +
                                          " left as it was). Import a lab first: mama import FILE");
  export_xml(pg, args.file, args.force);
  std::cout << "Exported " << count << (count == 1 ? " machine" : " machines") << " from "
            << pg.describe() << " to " << esc(args.file) << '\n';
  return exit_status::ok;
#else
  (void)args;
  ctx.any_store();  // throws: built without PostgreSQL support
  return exit_status::failure;
#endif
}

}  // namespace

void add_export_command(CLI::App& app, Context& ctx, Action& selected) {
  auto args = std::make_shared<ExportArgs>();
  auto* cmd = app.add_subcommand("export",
                                 "Write the lab in the PostgreSQL database given by --state or "
                                 "MAMA_STATE to a mama.xml (for the PHP tool, for backups)");
  cmd->add_option("file", args->file, "The mama.xml to write (a new file unless --force)")
      ->required()
      ->type_name("FILE");
  cmd->add_flag("--force", args->force, "Replace FILE if it exists");
  (void)ctx;
  cmd->callback(
      [&selected, args] { selected = [args](Context& c) { return run_export(c, *args); }; });
}

}  // namespace mama::cli
