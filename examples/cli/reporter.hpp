// examples/cli/reporter.hpp — the one place where the CLI turns events into output.
//
// Guards (`run`) and the commands themselves (`wait`, `clear`) report every step as a
// mama::Event to Reporter::report. It prints what a user must see on stderr: the SPEC's
// "Detected stale job: ..." line, release problems, and what a wait waits for (updated in place
// with \r on a terminal, plain lines otherwise). Listeners added with `listen` (an audit log, a
// hook) see every event too.
#pragma once

#include <chrono>
#include <functional>
#include <mama/events.hpp>
#include <string>
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

 private:
  void show_waiting(const Event& e);

  bool tty_ = false;
  bool color_ = false;
  bool line_open_ = false;
  std::size_t line_width_ = 0;
  std::string last_holder_;                  // what the last plain line said was holding
  std::chrono::nanoseconds last_plain_{-1};  // waited time at the last plain line
  std::vector<std::function<void(const Event&)>> listeners_;
};

}  // namespace mama::cli
