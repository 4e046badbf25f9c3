// tests/torture/torture_log.hpp — reading a torture worker's log into lines for the checker.
//
// A worker writes each line with one write(2) on an O_APPEND file, but a SIGKILL can still cut
// a write short: the kernel looks for a fatal signal before each page it copies, so a line that
// crosses a page boundary of the file may end half written, without its '\n'. Such a torn last
// line of a killed worker's log is no evidence of anything and is set aside; every other line,
// and a last line without '\n' from a worker that was not killed, is judged as written.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mama::torture {

struct LogLines {
  std::vector<std::string> lines;   ///< the lines to judge, without their '\n'
  std::optional<std::string> torn;  ///< the set-aside incomplete last line, if any
};

/// Splits a worker's log into lines; `killed`: the worker died by SIGKILL (see the top).
inline LogLines split_log(std::string_view content, bool killed) {
  LogLines out;
  while (!content.empty()) {
    const auto nl = content.find('\n');
    if (nl == std::string_view::npos) {
      if (killed)
        out.torn = std::string(content);
      else
        out.lines.emplace_back(content);
      break;
    }
    out.lines.emplace_back(content.substr(0, nl));
    content.remove_prefix(nl + 1);
  }
  return out;
}

}  // namespace mama::torture
