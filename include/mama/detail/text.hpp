// mama/detail/text.hpp — text rules shared by the guard, the stores and the CLI.
//
// Two questions, each answered in one place:
// - May this text be written into mama.xml? (job_text_problem: valid UTF-8, no control
//   characters, nothing XML 1.0 cannot hold; the PHP tool refuses a file that is not UTF-8.)
// - How is text from a state file shown on a terminal? (escape_control: the one escaping path.
//   Every byte of a record that reaches a terminal, a log line or an error message goes
//   through it, so a file can never move the cursor, retitle a terminal, reorder a line with
//   bidi controls or print bytes that are not text.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mama::detail {

/// Decodes one UTF-8 character at `text[i]`. Returns its length (1-4) and sets `cp`, or 0 when
/// the bytes there are not a valid, shortest-form UTF-8 character (stray continuation byte,
/// overlong form, surrogate, beyond U+10FFFF, truncated sequence).
inline std::size_t utf8_decode(std::string_view text, std::size_t i, char32_t& cp) noexcept {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const unsigned char c = b(0);
  std::size_t len;
  char32_t min;
  if (c < 0x80) {
    cp = c;
    return 1;
  } else if (c >= 0xc2 && c <= 0xdf) {
    len = 2, cp = c & 0x1f, min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3, cp = c & 0x0f, min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > text.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    if ((b(k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b(k) & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

/// Characters that reorder or hide text on a terminal: the bidi embeddings, overrides,
/// isolates and marks, and the Unicode line and paragraph separators.
constexpr bool is_bidi_or_separator(char32_t cp) noexcept {
  return cp == 0x061c || cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
         (cp >= 0x2066 && cp <= 0x2069);
}

/// Returns `text` safe for a terminal: C0 controls, DEL and the C1 controls (as UTF-8 U+0080..
/// U+009F) as escapes (\n, \t, \r, \e, \xHH, \u0085), bidi controls and line separators as
/// \u202e (the non-characters U+FFFE/U+FFFF too), every byte that is not valid UTF-8 as \xHH (so 8-bit C1 bytes such as 0x9b, the
/// one-byte CSI, are harmless too), and backslashes doubled so the output is unambiguous.
/// Printable UTF-8 passes unchanged. The output is printable ASCII plus printable UTF-8.
inline std::string escape_control(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  const auto byte_escape = [&](unsigned char c) {
    out += "\\x";
    out += hex[c >> 4];
    out += hex[c & 15];
  };
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c == '\\')
        out += "\\\\";
      else if (c == '\n')
        out += "\\n";
      else if (c == '\t')
        out += "\\t";
      else if (c == '\r')
        out += "\\r";
      else if (c == 0x1b)
        out += "\\e";
      else if (c < 0x20 || c == 0x7f)
        byte_escape(c);
      else
        out += static_cast<char>(c);
      ++i;
      continue;
    }
    char32_t cp = 0;
    const std::size_t len = utf8_decode(text, i, cp);
    if (len == 0) {
      byte_escape(c);
      ++i;
    } else if (cp <= 0x9f || is_bidi_or_separator(cp) || cp == 0xfffe || cp == 0xffff) {
      out += "\\u";
      for (int shift = 12; shift >= 0; shift -= 4) out += hex[(cp >> shift) & 15];
      i += len;
    } else {
      out.append(text.substr(i, len));
      i += len;
    }
  }
  return out;
}

/// Why `text` may not be written as a field of mama.xml, or nullopt when it may: it must be
/// valid UTF-8 (the PHP tool fails on every command otherwise), without control characters
/// (C0 including tab and newline, DEL, C1) and without U+FFFE/U+FFFF (not XML characters).
/// The reason names the first offending byte offset and shows the text escaped.
inline std::optional<std::string> job_text_problem(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    char32_t cp = 0;
    const std::size_t len = utf8_decode(text, i, cp);
    std::string what;
    if (len == 0)
      what = "is not valid UTF-8";
    else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
      what = "is a control character";
    else if (cp == 0xfffe || cp == 0xffff)
      what = "is not a character XML can hold";
    if (!what.empty())
      return "byte " + std::to_string(i) + " of '" + escape_control(text) + "' " + what;
    i += len;
  }
  return std::nullopt;
}

/// `text` made writable: what job_text_problem refuses is written as visible escapes
/// (escape_control), and the result is cut to at most `max_bytes` bytes on a character
/// boundary, ending in "..." when it was cut.
inline std::string printable_job_text(std::string_view text, std::size_t max_bytes = 200) {
  std::string out = job_text_problem(text) ? escape_control(text) : std::string(text);
  if (out.size() <= max_bytes) return out;
  std::size_t cut = max_bytes >= 3 ? max_bytes - 3 : 0;
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xc0) == 0x80) --cut;
  out.resize(cut);
  return out + "...";
}

/// True when `text` is well-formed UTF-8 (no overlong forms, no surrogates, nothing past
/// U+10FFFF, no truncated sequence) and has no U+FFFE or U+FFFF, which XML 1.0 does not allow:
/// text that the PHP tool's XML reader can load.
inline bool valid_utf8(std::string_view text) noexcept {
  for (std::size_t i = 0; i < text.size();) {
    char32_t cp = 0;
    const std::size_t len = utf8_decode(text, i, cp);
    if (len == 0 || cp == 0xfffe || cp == 0xffff) return false;
    i += len;
  }
  return true;
}

}  // namespace mama::detail
