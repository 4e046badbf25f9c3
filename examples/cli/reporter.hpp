// examples/cli/reporter.hpp — the one place where the CLI turns events into output.
//
// Guards (`run`) and the commands themselves (`wait`, `clear`) report every step as a
// mama::Event to Reporter::report. It prints what a user must see on stderr: the SPEC's
// "Detected stale job: ..." line, release problems, and what a wait waits for. On a terminal
// that is one status line rewritten in place, cut to the window's width (TIOCGWINSZ, read
// again for every line) on a character boundary so it never wraps. Into a pipe or a log it is a
// plain line when the holder changes (the machine, the job record or the reason, not the text
// with its growing "started N s ago") and otherwise one a minute. Listeners added with `listen`
// (an audit log, a hook) see every event too.
#pragma once

#include <chrono>
#include <functional>
#include <mama/events.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace mama::cli {

class Reporter {
 public:
  /// `tty`: stderr is a terminal (in-place status line); `color`: it may be coloured.
  void configure(bool tty, bool color) {
    tty_ = tty;
    color_ = color;
  }

  /// Handles one event: prints what the user must see, then calls every listener.
  void report(const Event& e);

  /// Adds a listener that sees every event after it is printed.
  void listen(std::function<void(const Event&)> listener) {
    listeners_.push_back(std::move(listener));
  }

  /// Ends an in-place status line (call before printing anything else to stderr).
  void end_line();

  /// `line` cut to at most `columns` terminal columns, never inside a UTF-8 character (East
  /// Asian wide characters count two columns).
  static std::string fit(std::string_view line, std::size_t columns);

 private:
  void show_waiting(const Event& e);

  bool tty_ = false;
  bool color_ = false;
  bool line_open_ = false;
  std::string last_holder_;                  // who held the machine at the last plain line
  std::chrono::nanoseconds last_plain_{-1};  // waited time at the last plain line
  std::vector<std::function<void(const Event&)>> listeners_;
};

}  // namespace mama::cli
