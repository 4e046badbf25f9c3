// examples/cli/reporter.cpp — see reporter.hpp.
#include "reporter.hpp"

#include <iostream>

#include "cli.hpp"

namespace mama::cli {

namespace {

// "job 'X' (PID 123, running), started 5 min ago": what holds a machine.
std::string holder_text(const Event& e) {
  std::string text = "job '" + esc(e.record.job) + "' (PID ";
  text += e.record.pid.empty() ? std::string("none") : esc(e.record.pid);
  if (!e.reason.empty()) {
    text += ", ";
    text += esc(e.reason);
  }
  text += ")";
  if (const auto stamp = detail::parse_decimal<std::int64_t>(e.record.timestamp)) {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    if (now >= *stamp)
      text += ", started " + human_duration(std::chrono::seconds(now - *stamp)) + " ago";
  }
  return text;
}

}  // namespace

void Reporter::end_line() {
  if (!line_open_) return;
  std::cerr << '\n' << std::flush;
  line_open_ = false;
  line_width_ = 0;
}

void Reporter::show_waiting(const Event& e) {
  const std::string holder = holder_text(e);
  if (tty_) {
    // One status line, rewritten in place; padded so a shorter line hides a longer one.
    std::string line =
        "Waiting for " + esc(e.machine) + ": " + holder + "; waited " + human_duration(e.waited);
    const std::size_t width = line.size();
    if (width < line_width_) line.append(line_width_ - width, ' ');
    std::cerr << '\r' << line << std::flush;
    line_open_ = true;
    line_width_ = width;
    return;
  }
  // Not a terminal (a log): a line when the holder changes, and one a minute while it does not.
  using namespace std::chrono_literals;
  if (holder == last_holder_ && last_plain_ >= 0ns && e.waited - last_plain_ < 60s) return;
  std::cerr << "mama: waiting for machine '" << esc(e.machine) << "': " << holder;
  if (e.waited >= 1s) std::cerr << "; waited " << human_duration(e.waited);
  std::cerr << '\n' << std::flush;
  last_holder_ = holder;
  last_plain_ = e.waited;
}

void Reporter::report(const Event& e) {
  switch (e.kind) {
    case event_kind::waiting:
      show_waiting(e);
      break;
    case event_kind::stale_detected:
    case event_kind::successor_found:
    case event_kind::release_failed:
      end_line();
      default_event_handler(e, std::cerr);
      break;
    case event_kind::claimed:
    case event_kind::nested:
      end_line();
      break;
    default:
      // On release, processes of the job still hold the machine: say who, and that it stays busy.
      if (to_string(e.kind) == "leftover_holders") {
        end_line();
        default_event_handler(e, std::cerr);
      }
      break;
  }
  for (const auto& listener : listeners_) {
    try {
      listener(e);
    } catch (...) {
      // A failing listener must not break a claim, a release or a clearing.
    }
  }
}

}  // namespace mama::cli
