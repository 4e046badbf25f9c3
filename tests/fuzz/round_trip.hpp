// tests/fuzz/round_trip.hpp — the property the fuzzer checks, shared by the libFuzzer target
// (clang, ASan + UBSan) and the corpus replay test (any compiler, runs in CI).
//
// For any bytes taken as mama.xml:
// - XmlStateStore either refuses the file with mama::error and leaves it byte for byte as it
//   was, or reads it: every machine find() knows reads back what machines() lists;
// - a claim record written to the first named machine and committed reads back exactly, while
//   every machine's other fields, and the other machines' job fields, stay as they were (I3);
// - the saved file still has </settings> (what the PHP tool insists on);
// - writing the old job fields back restores every machine as it was first read;
// - after each save, a new store reading through the check record and one checking the whole
//   file read the same machines as the store that saved;
// - when detail::check_in_pieces (the first check of a whole file) accepts the bytes, pugixml's
//   parse of the whole document accepts them too, with the same machine extents and names.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <mama/xml_state_store.hpp>
#include <optional>
#include <pugixml.hpp>
#include <string>
#include <string_view>

namespace mama::fuzz {

inline std::string slurp(const std::filesystem::path& p) {
  std::string out;
  detail::unique_fd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd || !detail::pread_all(fd.get(), out, std::size_t(1) << 30)) return "<unreadable>";
  return out;
}

inline void spill(const std::filesystem::path& p, std::string_view data) {
  detail::unique_fd fd(::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd) (void)detail::pwrite_all(fd.get(), data, 0);
}

/// What the store's check of a whole file reads with pugixml's document of all of it: every
/// <machine> child of the single <settings> root, where it lies and its name; nullopt when it
/// refuses the file (not XML, not one <settings> root, not UTF-8 or ASCII ISO-8859-1).
inline std::optional<detail::settings_machines> whole_document_machines(std::string_view content) {
  pugi::xml_document doc;
  const auto result = doc.load_buffer(content.data(), content.size(), detail::xml_parse_flags);
  if (!result) return std::nullopt;
  int roots = 0;
  for (pugi::xml_node n : doc.children())
    if (n.type() == pugi::node_element) ++roots;
  if (roots != 1 || std::string_view(doc.document_element().name()) != "settings")
    return std::nullopt;
  if (result.encoding != pugi::encoding_utf8 &&
      (result.encoding != pugi::encoding_latin1 ||
       !std::all_of(content.begin(), content.end(),
                    [](char c) { return c != 0 && static_cast<unsigned char>(c) < 0x80; })))
    return std::nullopt;
  detail::settings_machines out;
  for (pugi::xml_node m : doc.document_element().children("machine")) {
    const auto x = detail::locate_element(content, m);
    if (!x) return std::nullopt;
    out.extents.push_back({x->begin, x->end});
    out.names.emplace_back(m.child("name").text().get());
  }
  return out;
}

/// The first check of a whole file, in pieces, against the whole document: when
/// check_in_pieces accepts `content`, the whole parse must accept it with the same machines at
/// the same places with the same names. Returns an empty string when that holds (or the pieces
/// check declined), else what broke.
inline std::string pieces_agree(std::string_view content) {
  const auto pieces = detail::check_in_pieces(content);
  if (!pieces) return {};
  const auto whole = whole_document_machines(content);
  if (!whole) return "check_in_pieces accepts a file that the whole document parse refuses";
  if (pieces->extents.size() != whole->extents.size() ||
      pieces->names.size() != pieces->extents.size())
    return "check_in_pieces finds " + std::to_string(pieces->extents.size()) +
           " machines, the whole document " + std::to_string(whole->extents.size());
  for (std::size_t i = 0; i < whole->extents.size(); ++i) {
    const auto &p = pieces->extents[i], &w = whole->extents[i];
    if (p.begin != w.begin || p.end != w.end)
      return "machine " + std::to_string(i) + " lies at [" + std::to_string(p.begin) + ", " +
             std::to_string(p.end) + ") for check_in_pieces, at [" + std::to_string(w.begin) +
             ", " + std::to_string(w.end) + ") in the whole document";
    if (pieces->names[i] != whole->names[i])
      return "machine " + std::to_string(i) + " is named '" + pieces->names[i] +
             "' by check_in_pieces, '" + whole->names[i] + "' by the whole document";
  }
  return {};
}

/// Runs the round trip on `input` as `dir`/mama.xml. Returns an empty string when the property
/// holds, else what broke.
inline std::string round_trip(std::string_view input, const std::filesystem::path& dir) {
  if (auto failure = pieces_agree(input); !failure.empty()) return failure;
  const auto path = dir / "mama.xml";
  std::error_code ec;
  std::filesystem::remove(dir / "mama.xml.d" / "journal", ec);
  spill(path, input);

  XmlStoreOptions options;
  options.sync = false;
  options.max_file_size = 1 << 20;
  XmlStateStore store(path, options);

  // The job text comes from the input too, so odd bytes travel both ways (NUL cannot be
  // stored in XML text: it becomes '?').
  std::string job = "fuzz ";
  for (std::size_t i = 0; i < input.size() && i < 12; ++i) job += input[i] == '\0' ? '?' : input[i];
  const JobRecord claim{job,
                        "4242",
                        "1763047845",
                        "fuzz-host",
                        "0b0a-boot",
                        "991",
                        "00112233445566778899aabbccddeeff"};

  std::vector<MachineInfo> before;
  std::size_t target = 0;
  try {
    auto tx = store.begin();
    before = tx.machines();
    for (const auto& m : before) {
      if (m.name.empty()) continue;
      const auto found = tx.find(m.name);
      if (!found) return "machine '" + m.name + "' listed but not found";
      // Machines sharing a name are refused, so find() names the same element.
      if (!(*found == m.job)) return "find('" + m.name + "') disagrees with machines()";
    }
    while (target < before.size() && before[target].name.empty()) ++target;
    if (target == before.size()) return {};
    tx.write(before[target].name, claim);
    tx.commit();
  } catch (const error& e) {
    const std::string now = slurp(path);
    if (now != input) return std::string("the file changed although it was refused: ") + e.what();
    return {};
  }

  const std::string saved = slurp(path);
  if (saved.find("</settings>") == std::string::npos) return "saved file has no </settings>";
  auto compare = [&](bool claimed) -> std::string {
    std::vector<MachineInfo> after, recorded, whole;
    try {
      after = store.begin().machines();
      // A new process reads the saved bytes through the check record the commit wrote, and
      // one without it checks them whole: both must read what the store remembered.
      recorded = XmlStateStore(path, options).begin().machines();
      XmlStoreOptions unrecorded = options;
      unrecorded.check_record = false;
      whole = XmlStateStore(path, unrecorded).begin().machines();
    } catch (const error& e) {
      return std::string("the saved file cannot be read back: ") + e.what();
    }
    const auto same = [](const std::vector<MachineInfo>& a, const std::vector<MachineInfo>& b) {
      return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                        [](const MachineInfo& x, const MachineInfo& y) {
                          return x.name == y.name && x.fields == y.fields && x.job == y.job;
                        });
    };
    if (!same(after, recorded)) return "a new store reading through the check record disagrees";
    if (!same(after, whole)) return "a new store checking the whole file disagrees";
    if (after.size() != before.size()) return "machine count changed";
    for (std::size_t i = 0; i < before.size(); ++i) {
      if (after[i].name != before[i].name) return "machine " + std::to_string(i) + " renamed";
      if (after[i].fields != before[i].fields)
        return "other fields of machine '" + before[i].name + "' changed";
      const JobRecord& want = (claimed && i == target) ? claim : before[i].job;
      if (!(after[i].job == want))
        return "job fields of machine '" + before[i].name + "' read back wrong (" +
               (claimed && i == target ? "claimed: job '" + after[i].job.job + "'" : "untouched") +
               ")";
    }
    return {};
  };
  if (auto failure = compare(true); !failure.empty()) return failure;
  try {
    auto tx = store.begin();
    tx.write(before[target].name, before[target].job);
    tx.commit();
  } catch (const error& e) {
    // The store refuses to write text XML cannot hold (control characters), which a file may
    // still contain when it was read; the refusal must leave the file as it was.
    if (e.code() != make_error_code(errc::invalid_argument))
      return std::string("restoring the old job fields failed: ") + e.what();
    if (slurp(path) != saved) return std::string("a refused write changed the file: ") + e.what();
    return {};
  }
  if (auto failure = compare(false); !failure.empty()) return "after restoring: " + failure;
  return {};
}

}  // namespace mama::fuzz
