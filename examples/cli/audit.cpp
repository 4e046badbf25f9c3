// examples/cli/audit.cpp — see audit.hpp.
#include "audit.hpp"

#include <iostream>

#include "cli.hpp"
#include "hook.hpp"

namespace mama::cli {

AuditSettings::AuditSettings() = default;
AuditSettings::~AuditSettings() = default;

void AuditSettings::attach(Context& ctx) {
  const AuditConfig config = options_.resolve(ctx);
  if (config.log)
    log_.emplace(*config.log, config.max_size, generations, CreateMode::like(ctx.state_path()));
  if (!config.hook.empty()) hooks_ = std::make_unique<HookRunner>(config.hook, config.hook_timeout);
  if (!log_ && !hooks_) return;
  origin_ = Origin::here(ctx.probe.host_name());
  ctx.reporter.listen([this, &ctx](const Event& e) { on_event(ctx, e); });
}

void AuditSettings::report_failure(Context& ctx, const std::string& what) {
  if (failure_reported_) return;
  failure_reported_ = true;
  ctx.reporter.end_line();
  std::cerr << "mama: " << what
            << "; going on without it (choose another file with --audit-log FILE, or turn it "
               "off with --no-audit-log)\n"
            << std::flush;
}

void AuditSettings::on_event(Context& ctx, const Event& e) {
  const auto waited_ms = throttle_.waited_ms(e, std::chrono::steady_clock::now());
  if (!waited_ms) return;
  const auto j = audit_json(e, *waited_ms, origin_, std::chrono::system_clock::now());
  const std::string line = audit_line(j);
  if (log_) {
    try {
      log_->append(line);
    } catch (const std::exception& ex) {
      report_failure(ctx, ex.what());
    }
  }
  if (hooks_ && runs_hook(e.kind)) {
    ctx.reporter.end_line();
    hooks_->start(line + "\n", hook_environment(e, origin_, j["time"].get<std::string>()));
  }
}

}  // namespace mama::cli
