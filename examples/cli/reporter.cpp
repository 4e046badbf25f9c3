// examples/cli/reporter.cpp — see reporter.hpp.
#include "reporter.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

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

// Who holds the machine, without the elapsed time: a new plain line when this changes.
std::string holder_identity(const Event& e) {
  std::string id(e.machine);
  for (std::size_t i = 0; i < job_field_names.size(); ++i) {
    id += '\0';
    id += e.record.*job_field_members[i];
  }
  id += '\0';
  id += e.reason;
  return id;
}

// The terminal's width in columns (stderr's), 80 when it cannot be read.
std::size_t terminal_columns() {
  struct winsize ws {};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

bool wide(char32_t c) {
  return (c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf && c != 0x303f) ||
         (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) ||
         (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) ||
         (c >= 0xffe0 && c <= 0xffe6) || (c >= 0x1f300 && c <= 0x1f64f) ||
         (c >= 0x1f900 && c <= 0x1f9ff) || (c >= 0x20000 && c <= 0x3fffd);
}

}  // namespace

std::string Reporter::fit(std::string_view line, std::size_t columns) {
  std::size_t used = 0, i = 0;
  while (i < line.size()) {
    const auto lead = static_cast<unsigned char>(line[i]);
    std::size_t len = lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    if (i + len > line.size()) len = line.size() - i;
    char32_t c = len == 1 ? lead : lead & (0x7f >> len);
    for (std::size_t k = 1; k < len; ++k) c = (c << 6) | (line[i + k] & 0x3f);
    const std::size_t w = wide(c) ? 2 : 1;
    if (used + w > columns) break;
    used += w;
    i += len;
  }
  return std::string(line.substr(0, i));
}

void Reporter::end_line() {
  if (!line_open_) return;
  std::cerr << '\n' << std::flush;
  line_open_ = false;
}

void Reporter::show_waiting(const Event& e) {
  if (tty_) {
    // One status line, rewritten in place: one column short of the width, so the terminal
    // never wraps it (a wrapped line cannot be rewritten with \r), then cleared to its end.
    const std::string line = "Waiting for " + esc(e.machine) + ": " + holder_text(e) + "; waited " +
                             human_duration(e.waited);
    const std::size_t columns = terminal_columns();
    std::cerr << '\r' << fit(line, columns > 1 ? columns - 1 : 1) << "\x1b[K" << std::flush;
    line_open_ = true;
    return;
  }
  // Not a terminal (a log): a line when the holder changes, and one a minute while it does not.
  using namespace std::chrono_literals;
  const std::string holder = holder_identity(e);
  if (holder == last_holder_ && last_plain_ >= 0ns && e.waited - last_plain_ < 60s) return;
  std::cerr << "mama: waiting for machine '" << esc(e.machine) << "': " << holder_text(e);
  if (e.waited >= 1s) std::cerr << "; waited " << human_duration(e.waited);
  std::cerr << '\n' << std::flush;
  last_holder_ = holder;
  last_plain_ = e.waited;
}

void Reporter::report(const Event& e) {
  switch (e.kind) {
    case EventKind::waiting:
      show_waiting(e);
      break;
    case EventKind::stale_detected:
    case EventKind::successor_found:
    case EventKind::release_failed:
    case EventKind::leftover_holders:  // the machine stays busy until PID N ends
      end_line();
      default_event_handler(e, std::cerr);
      break;
    case EventKind::claimed:
    case EventKind::nested:
      end_line();
      break;
    default:
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
