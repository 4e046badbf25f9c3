// mama/detail/xml/splice.hpp — the byte splicer of the mama.xml store: where an element lies in
// the file's bytes, and applying edits to those bytes so that everything not edited stays byte
// for byte. Which edits a save makes is decided in xml_state_store.hpp (from the parsed
// document); this part works on bytes only. No pugixml here.
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mama::detail {

inline bool is_blank(std::string_view s) noexcept {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

/// Where one element sits in the file's bytes: [begin, end) is the whole element, the start tag
/// ends at start_tag_end (one past its '>').
struct element_extent {
  std::size_t begin = 0;
  std::size_t start_tag_end = 0;
  std::size_t end = 0;
  bool self_closing = false;
};

/// Finds the extent of the element whose '<' is at `begin` in `text`, a document an XML parser
/// has already accepted (so the markup is well formed). nullopt when the bytes do not look like
/// it.
inline std::optional<element_extent> find_element_extent(std::string_view text, std::size_t begin) {
  if (begin >= text.size() || text[begin] != '<') return std::nullopt;
  element_extent x;
  x.begin = begin;
  int depth = 0;
  std::size_t i = begin;
  const auto skip_past = [&](std::size_t from, std::string_view end_mark) {
    const auto at = text.find(end_mark, from);
    return at == std::string_view::npos ? at : at + end_mark.size();
  };
  while (i != std::string_view::npos && i < text.size()) {
    i = text.find('<', i);
    if (i == std::string_view::npos) break;
    const std::string_view rest = text.substr(i);
    if (rest.starts_with("<!--")) {
      i = skip_past(i + 4, "-->");
    } else if (rest.starts_with("<![CDATA[")) {
      i = skip_past(i + 9, "]]>");
    } else if (rest.starts_with("<?")) {
      i = skip_past(i + 2, "?>");
    } else if (rest.starts_with("<!")) {
      i = skip_past(i + 2, ">");
    } else if (rest.starts_with("</")) {
      i = skip_past(i + 2, ">");
      if (--depth <= 0) {
        if (i == std::string_view::npos) return std::nullopt;
        x.end = i;
        return x;
      }
    } else {
      // A start tag: find its '>' outside quoted attribute values.
      std::size_t j = i + 1;
      char quote = 0;
      for (; j < text.size(); ++j) {
        const char c = text[j];
        if (quote) {
          if (c == quote) quote = 0;
        } else if (c == '"' || c == '\'') {
          quote = c;
        } else if (c == '>') {
          break;
        }
      }
      if (j >= text.size()) return std::nullopt;
      const bool empty = text[j - 1] == '/';
      if (i == begin) {
        x.start_tag_end = j + 1;
        x.self_closing = empty;
        if (empty) {
          x.end = j + 1;
          return x;
        }
      }
      if (!empty) ++depth;
      i = j + 1;
    }
  }
  return std::nullopt;
}

/// True when `text` holds only characters that XML 1.0 allows in element content (no NUL and
/// no C0 controls other than tab, newline and carriage return).
inline bool valid_xml_text(std::string_view text) noexcept {
  return std::none_of(text.begin(), text.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c < 0x20 && c != '\t' && c != '\n' && c != '\r';
  });
}

/// Escapes element text: & < > as entities, and CR as &#13; so that XML readers, which turn a
/// raw CR into LF, read it back unchanged.
inline std::string escape_xml_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '\r':
        out += "&#13;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

/// One replacement of the bytes [begin, end) by `text` (begin == end: an insertion).
struct byte_edit {
  std::size_t begin, end;
  std::string text;
};

/// Where a named machine element lies, in the old or the new bytes.
struct element_span {
  std::string machine;
  std::size_t begin, end;
};

/// `content` with `edits` applied (sorted here by position; they must not overlap), and in
/// `edited` where each of `old_spans` lies in the result. Every edit must lie inside one of
/// `old_spans` or outside all of them, never across a span's edge, so an old offset moves by
/// the size change of the edits that end at or before it.
inline std::string apply_edits(std::string_view content, std::vector<byte_edit>& edits,
                               const std::vector<element_span>& old_spans,
                               std::vector<element_span>& edited) {
  std::stable_sort(edits.begin(), edits.end(), [](const byte_edit& a, const byte_edit& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const auto moved = [&](std::size_t at) {
    std::ptrdiff_t delta = 0;
    for (const auto& e : edits)
      if (e.end <= at)
        delta += static_cast<std::ptrdiff_t>(e.text.size()) -
                 static_cast<std::ptrdiff_t>(e.end - e.begin);
    return static_cast<std::size_t>(static_cast<std::ptrdiff_t>(at) + delta);
  };
  for (const element_span& x : old_spans)
    edited.push_back({x.machine, moved(x.begin), moved(x.end)});
  std::string out;
  out.reserve(content.size() + 1024);
  std::size_t at = 0;
  for (const auto& e : edits) {
    out.append(content, at, e.begin - at);
    out += e.text;
    at = e.end;
  }
  out.append(content, at, std::string::npos);
  return out;
}

}  // namespace mama::detail
