// mama/error.hpp — the one exception type of the library and its error codes.
//
// Every error the library throws is a mama::error (a std::system_error). Its code is either a
// mama::errc (a problem of the lab state: unknown machine, malformed file, timeout, ...) or an
// operating-system error (std::system_category) for a failed system call. what() always names
// the file or machine concerned and says what to do next.
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <system_error>

namespace mama {

/// What went wrong. Values are stable: the CLI maps them to exit statuses.
enum class errc {
  unknown_machine = 1,  ///< no machine with that name (or MAC) in the state
  timeout,              ///< the machine stayed busy until the wait timeout
  busy,                 ///< the machine is held by a live job (non-waiting operations)
  bad_state_file,       ///< the state file is missing, empty, truncated or malformed
  bad_record,           ///< a machine record holds a value that cannot be interpreted
  io_error,             ///< reading, writing or locking a file failed
  invalid_argument,     ///< a caller passed a bad value (bad number, empty name, ...)
};

namespace detail {
class errc_category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "mama"; }
  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::unknown_machine:
        return "unknown machine";
      case errc::timeout:
        return "timed out waiting for the machine";
      case errc::busy:
        return "machine is busy";
      case errc::bad_state_file:
        return "bad state file";
      case errc::bad_record:
        return "bad machine record";
      case errc::io_error:
        return "input/output error";
      case errc::invalid_argument:
        return "invalid argument";
    }
    return "unknown mama error";
  }
};
}  // namespace detail

/// The category of mama::errc codes.
inline const std::error_category& error_category() noexcept {
  static const detail::errc_category category;
  return category;
}

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/// The exception thrown by the library. what() is a complete sentence for a human, as given
/// (std::system_error would append ": <code's message>"; mama::error does not, except that an
/// operating-system code's message, e.g. "Permission denied", is appended once, when the
/// error is made); code() is for programs.
class error : public std::system_error {
 public:
  error(errc code, const std::string& message)
      : std::system_error(make_error_code(code), message), message_(message) {}
  error(std::error_code code, const std::string& message)
      : std::system_error(code, message), message_(sentence(code, message)) {}

  const char* what() const noexcept override { return message_.c_str(); }

  /// The same error (same code) with `prefix` before its message, e.g. to say what the caller
  /// was doing; the code's message is not appended again.
  error with_prefix(std::string_view prefix) const {
    error e(*this);
    e.message_.insert(0, prefix);
    return e;
  }

 private:
  static std::string sentence(std::error_code code, const std::string& message) {
    if (code.category() == error_category()) return message;
    return message + ": " + code.message();
  }
  std::string message_;
};

/// Throws mama::error for the current errno, prefixed by `what` (which names the file).
[[noreturn]] inline void throw_errno(const std::string& what) {
  const int saved = errno;
  throw error(std::error_code(saved, std::system_category()), what);
}

}  // namespace mama

template <>
struct std::is_error_code_enum<mama::errc> : std::true_type {};
