// mama/detail/xml/scan.hpp — reading a machine's fields from the bytes of mama.xml, without a
// DOM. No pugixml here; tests/scan_test.cpp holds it against pugixml's reading.
//
// Everything here works on bytes that pugixml has already accepted (a whole file, or a machine
// element checked by itself), so it can be lenient about what well-formed XML rules out; the
// one exception, scan::root_machine_children, only proposes where machines lie, which the
// store then proves by parsing (XmlStateStore's check_in_pieces). What
// it returns must equal what the store's pugixml reading gives (parse flags
// detail::xml_parse_flags in xml_state_store.hpp: no end-of-line normalisation, whitespace text
// kept, entities decoded):
// - an element's text is that of its first text or CDATA child (pugixml's `text().get()`):
//   text up to the next markup, entities (&lt; &gt; &amp; &apos; &quot;, &#N; &#xN;) decoded
//   as pugixml decodes them (an unknown or unfinished reference stays as written; a numeric
//   one is written as UTF-8 of its value modulo 2^32; a decoded NUL ends the text), CDATA as
//   written; comments, processing instructions and nested elements are skipped, so the text of
//   `<a><b>x</b>y</a>` is "y";
// - a child's name is its tag name as written.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mama::detail {

/// Where one machine element lies in the file's bytes: [begin, end).
struct machine_extent {
  std::size_t begin = 0, end = 0;
};

/// `out` = `raw` with pugixml's entity decoding (see the top of this header). Reuses out's
/// storage.
inline void decode_xml_text(std::string& out, std::string_view raw) {
  out.clear();
  std::size_t at = 0;
  while (at < raw.size()) {
    const std::size_t amp = raw.find('&', at);
    if (amp == std::string_view::npos) {
      out.append(raw.substr(at));
      break;
    }
    out.append(raw.substr(at, amp - at));
    const std::string_view rest = raw.substr(amp + 1);
    const auto named = [&](std::string_view name, char c) {
      if (!rest.starts_with(name)) return false;
      out += c;
      at = amp + 1 + name.size();
      return true;
    };
    if (named("amp;", '&') || named("lt;", '<') || named("gt;", '>') || named("quot;", '"') ||
        named("apos;", '\''))
      continue;
    bool decoded = false;
    if (rest.starts_with('#')) {
      const bool hex = rest.size() > 1 && rest[1] == 'x';
      std::size_t i = hex ? 2 : 1;
      std::uint32_t code = 0;
      const std::size_t digits_from = i;
      for (; i < rest.size(); ++i) {
        const char c = rest[i];
        if (c >= '0' && c <= '9') {
          code = code * (hex ? 16 : 10) + static_cast<std::uint32_t>(c - '0');
        } else if (hex && (c | ' ') >= 'a' && (c | ' ') <= 'f') {
          code = code * 16 + static_cast<std::uint32_t>((c | ' ') - 'a' + 10);
        } else {
          break;
        }
      }
      if (i > digits_from && i < rest.size() && rest[i] == ';') {
        // UTF-8 as pugixml writes it (no range check: above U+10FFFF the lead byte wraps).
        if (code < 0x80) {
          out += static_cast<char>(code);
        } else if (code < 0x800) {
          out += static_cast<char>(0xC0 | (code >> 6));
          out += static_cast<char>(0x80 | (code & 0x3F));
        } else if (code < 0x10000) {
          out += static_cast<char>(0xE0 | (code >> 12));
          out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
          out += static_cast<char>(0x80 | (code & 0x3F));
        } else {
          out += static_cast<char>(static_cast<std::uint8_t>(0xF0 | (code >> 18)));
          out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
          out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
          out += static_cast<char>(0x80 | (code & 0x3F));
        }
        at = amp + 1 + i + 1;
        decoded = true;
      }
    }
    if (!decoded) {
      out += '&';  // not a reference pugixml decodes: kept as written
      at = amp + 1;
    }
  }
  // pugixml hands text out as a C string: a decoded NUL ends it.
  if (const auto nul = out.find('\0'); nul != std::string::npos) out.resize(nul);
}

/// The first text node of an element's content: its raw bytes, and whether it is CDATA.
struct text_ref {
  std::string_view raw;
  bool cdata = false;
  bool found = false;
};

/// `out` = the text `t` stands for (empty when there is none).
inline void assign_text(std::string& out, const text_ref& t) {
  if (!t.found) {
    out.clear();
  } else if (t.cdata) {
    out.assign(t.raw);
    if (const auto nul = out.find('\0'); nul != std::string::npos) out.resize(nul);
  } else {
    decode_xml_text(out, t.raw);
  }
}

namespace scan {

inline std::size_t skip_past(std::string_view s, std::size_t from, std::string_view mark) {
  const auto at = s.find(mark, from);
  return at == std::string_view::npos ? s.size() : at + mark.size();
}

enum class markup { start_tag, end_tag, comment, cdata, pi, declaration };

// What the markup at `lt` (a '<') is, from the bytes after it.
inline markup markup_at(std::string_view s, std::size_t lt) noexcept {
  const char next = lt + 1 < s.size() ? s[lt + 1] : '\0';
  if (next == '/') return markup::end_tag;
  if (next == '?') return markup::pi;
  if (next != '!') return markup::start_tag;
  if (s.size() - lt >= 4 && s[lt + 2] == '-' && s[lt + 3] == '-') return markup::comment;
  if (s.size() - lt >= 9 && s.compare(lt + 2, 7, "[CDATA[") == 0) return markup::cdata;
  return markup::declaration;
}

// The index one past the '>' of the tag that starts at `lt` (quoted attribute values may hold
// '>'), and whether it ends with "/>".
inline std::size_t tag_end(std::string_view s, std::size_t lt, bool& empty) {
  char quote = 0;
  for (std::size_t j = lt + 1; j < s.size(); ++j) {
    const char c = s[j];
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '>') {
      empty = s[j - 1] == '/';
      return j + 1;
    }
  }
  empty = true;
  return s.size();
}

inline std::string_view tag_name(std::string_view s, std::size_t lt) {
  std::size_t j = lt + 1;
  while (j < s.size() && s[j] != ' ' && s[j] != '\t' && s[j] != '\n' && s[j] != '\r' &&
         s[j] != '/' && s[j] != '>')
    ++j;
  return s.substr(lt + 1, j - lt - 1);
}

// Skips the content of an element opened just before `at` and its end tag; returns the index
// one past that end tag. When `text` is given, it gets the element's first text node.
inline std::size_t element_content(std::string_view s, std::size_t at, text_ref* text) {
  int depth = 1;
  while (at < s.size()) {
    if (s[at] != '<') {
      const std::size_t lt = s.find('<', at);
      const std::size_t end = lt == std::string_view::npos ? s.size() : lt;
      if (text && depth == 1 && !text->found) *text = {s.substr(at, end - at), false, true};
      at = end;
      continue;
    }
    const markup m = markup_at(s, at);
    if (m == markup::comment) {
      at = skip_past(s, at + 4, "-->");
    } else if (m == markup::cdata) {
      const std::size_t close = s.find("]]>", at + 9);
      const std::size_t stop = close == std::string_view::npos ? s.size() : close;
      if (text && depth == 1 && !text->found) *text = {s.substr(at + 9, stop - at - 9), true, true};
      at = close == std::string_view::npos ? s.size() : close + 3;
    } else if (m == markup::pi) {
      at = skip_past(s, at + 2, "?>");
    } else if (m == markup::declaration) {
      at = skip_past(s, at + 2, ">");
    } else if (m == markup::end_tag) {
      at = skip_past(s, at + 2, ">");
      if (--depth == 0) return at;
    } else {
      bool empty = false;
      at = tag_end(s, at, empty);
      if (!empty) ++depth;
    }
  }
  return s.size();
}

// Where the <machine> children of a document's root element lie (tag name exactly `machine`),
// found from the bytes alone, for a file that nothing has checked yet: the caller proves them
// by parsing (XmlStateStore's check_whole). Before the root only blanks, a byte order mark,
// processing instructions and comments may stand; nullopt for anything else (a DOCTYPE, text,
// CDATA), for a root that is empty or never closed, and for an end tag at its level that is not
// the root's. What follows the root's end tag is not looked at.
// With `known` (the extents a check record gives, in order), the machines are not scanned but
// jumped over: each <machine> start tag at the root's level must be where the next known extent
// begins, and scanning goes on at its end; nullopt unless every known extent is met so. That
// scans only the bytes between machines, and a known extent inside a comment, a CDATA section,
// another element or another machine is never met.
inline std::optional<std::vector<machine_extent>> root_machine_children(
    std::string_view s, const std::vector<machine_extent>* known = nullptr) {
  std::size_t at = s.starts_with("\xEF\xBB\xBF") ? 3 : 0;
  for (;;) {  // the prolog
    while (at < s.size() && (s[at] == ' ' || s[at] == '\t' || s[at] == '\n' || s[at] == '\r')) ++at;
    if (at == s.size() || s[at] != '<') return std::nullopt;
    const markup m = markup_at(s, at);
    if (m == markup::start_tag) break;
    if (m == markup::pi) {
      at = skip_past(s, at + 2, "?>");
    } else if (m == markup::comment) {
      at = skip_past(s, at + 4, "-->");
    } else {
      return std::nullopt;
    }
  }
  const std::string_view root = tag_name(s, at);
  bool empty = false;
  std::size_t next = tag_end(s, at, empty);
  if (empty) return std::nullopt;
  std::vector<machine_extent> machines;
  std::size_t k = 0;  // the next known extent
  at = next;
  while (at < s.size()) {
    if (s[at] != '<') {
      at = s.find('<', at);
      if (at == std::string_view::npos) return std::nullopt;
      continue;
    }
    const markup m = markup_at(s, at);
    if (m == markup::comment) {
      at = skip_past(s, at + 4, "-->");
    } else if (m == markup::cdata) {
      at = skip_past(s, at + 9, "]]>");
    } else if (m == markup::pi) {
      at = skip_past(s, at + 2, "?>");
    } else if (m == markup::declaration) {
      return std::nullopt;
    } else if (m == markup::end_tag) {
      if (tag_name(s, at + 1) != root) return std::nullopt;  // not the root's own end tag
      if (known && k != known->size()) return std::nullopt;
      return known ? *known : machines;
    } else {
      const bool machine = tag_name(s, at) == "machine";
      if (machine && known) {
        if (k == known->size() || (*known)[k].begin != at || (*known)[k].end <= at ||
            (*known)[k].end > s.size())
          return std::nullopt;
        at = (*known)[k++].end;
        continue;
      }
      next = tag_end(s, at, empty);
      if (next == s.size()) return std::nullopt;
      if (!empty) next = element_content(s, next, nullptr);
      if (machine) machines.push_back({at, next});
      at = next;
    }
  }
  return std::nullopt;
}

}  // namespace scan

/// Calls fn(name, text_ref) for each child element of the element `element` (its bytes, from
/// its '<' to one past its end), in order.
template <class Fn>
void for_each_child_element(std::string_view element, Fn&& fn) {
  if (element.empty() || element[0] != '<') return;
  bool empty = false;
  std::size_t at = scan::tag_end(element, 0, empty);
  if (empty) return;
  while (at < element.size()) {
    if (element[at] != '<') {
      at = element.find('<', at);
      if (at == std::string_view::npos) return;
      continue;
    }
    const scan::markup m = scan::markup_at(element, at);
    if (m == scan::markup::comment) {
      at = scan::skip_past(element, at + 4, "-->");
    } else if (m == scan::markup::cdata) {
      at = scan::skip_past(element, at + 9, "]]>");
    } else if (m == scan::markup::pi) {
      at = scan::skip_past(element, at + 2, "?>");
    } else if (m == scan::markup::declaration) {
      at = scan::skip_past(element, at + 2, ">");
    } else if (m == scan::markup::end_tag) {
      return;  // the element's own end tag
    } else {
      const std::string_view name = scan::tag_name(element, at);
      bool child_empty = false;
      at = scan::tag_end(element, at, child_empty);
      text_ref text;
      if (!child_empty) at = scan::element_content(element, at, &text);
      fn(name, text);
    }
  }
}

/// The text of the first child element named `name` of `element` (as pugixml's
/// child(name).text().get()), into `out`. False when there is no such child.
inline bool child_text(std::string_view element, std::string_view name, std::string& out) {
  bool found = false;
  out.clear();
  for_each_child_element(element, [&](std::string_view n, const text_ref& t) {
    if (found || n != name) return;
    found = true;
    assign_text(out, t);
  });
  return found;
}

}  // namespace mama::detail

namespace mama::detail {

/// How many bytes `a` and `b` share at their start.
inline std::size_t common_prefix(std::string_view a, std::string_view b) noexcept {
  const std::size_t limit = std::min(a.size(), b.size());
  constexpr std::size_t block = 4096;
  std::size_t n = 0;
  while (n + block <= limit && std::memcmp(a.data() + n, b.data() + n, block) == 0) n += block;
  while (n < limit && a[n] == b[n]) ++n;
  return n;
}

/// How many bytes `a` and `b` share at their end, at most `limit`.
inline std::size_t common_suffix(std::string_view a, std::string_view b,
                                 std::size_t limit) noexcept {
  limit = std::min({limit, a.size(), b.size()});
  constexpr std::size_t block = 4096;
  std::size_t n = 0;
  while (n + block <= limit &&
         std::memcmp(a.data() + a.size() - n - block, b.data() + b.size() - n - block, block) == 0)
    n += block;
  while (n < limit && a[a.size() - n - 1] == b[b.size() - n - 1]) ++n;
  return n;
}

}  // namespace mama::detail
