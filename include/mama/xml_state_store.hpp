// mama/xml_state_store.hpp — the StateStore on mama.xml, beside the PHP mama tool.
//
// The only header that includes pugixml. It composes the store from parts that each stand
// alone (and are tested alone) under include/mama/detail/xml/, none of which includes pugixml:
//   state_file.hpp  what a transaction knows of the opened file; reading it; standalone save
//   journal.hpp     the save journal: format, journaled in-place save, replay/discard recovery
//                   (tests/journal_test.cpp)
//   splice.hpp      element extents in the bytes, and applying byte edits (the splicer)
//   scan.hpp        a machine's fields read from its bytes (text as pugixml decodes it)
//   lock_files.hpp  the runtime directory `<file>.d/`, per-machine lock files, who holds one
//   inotify.hpp     the pool of inotify descriptors for waiters
//   check_record.hpp `<file>.d/checked`: the bytes the last process checked, for a new process
//                   (tests/check_record_test.cpp)
// This header keeps what needs pugixml: open/lock, checking the file (whole, or by what
// changed), planning a save's edits on one machine's element and checking them, and the public
// types.
//
// Contract (SPEC §2, invariants I3 and I5):
// - Locking: an exclusive flock(2) on mama.xml itself, the lock the PHP tool takes.
// - Lossless: every machine, field, unknown element, comment and their order are kept. A save
//   splices only the changed job field elements into the bytes that were read, so everything
//   else (other machines, `<x/>` versus `<x></x>`, entity spellings, CRLF, indentation) stays
//   byte for byte; a missing job field is added after the other job fields, indented like its
//   neighbours. The edited content is parsed and checked before it is saved.
// - Checked once, then by what changed: a begin() refuses a file that pugixml does not parse
//   whole (naming the file and the line), that has no single <settings> root, or no
//   </settings>, or that is not in UTF-8 (an XML declaration of ISO-8859-1 is accepted while
//   the file holds only ASCII, and then every change is checked whole and job text must be
//   ASCII), and leaves it untouched. A store (and its copies) remembers the last bytes it
//   checked or saved, with where each machine element lies and a name -> machine table.
//   Another begin() then costs what changed, not what the file holds:
//   - the same bytes (one memcmp): nothing to check again;
//   - bytes that the check record `<file>.d/checked` describes (their size and the checksum
//     of each 64 KiB block): the record's machine extents and names, nothing parsed. The last
//     mama process that checked or saved the file wrote it, so a new process (`mama run`,
//     `mama list`) starts from there (detail/xml/check_record.hpp; XmlStoreOptions::
//     check_record);
//   - bytes that differ from them only inside a run of whole machine elements (the common
//     prefix and suffix are compared): that run of the new bytes must parse by itself, as a
//     fragment, into machine elements with only blanks and comments between. The bytes around
//     it are those of a file that parsed, and the run sits where one content of <settings>
//     ended and the next began, so the whole file parses as before with just those machines
//     changed (a change that breaks out of its machine, e.g. `</machine></settings>`, does not
//     parse by itself and falls back; so does a run holding a NUL byte, where pugixml would
//     stop reading the fragment early); the machines after it move by the size change, and the
//     name table is rebuilt only when a name, or the number of machines, changed;
//   - anything else (first begin() of a store, a change between machines or outside
//     <settings>): the whole file is checked in pieces, without a document of all of it (a
//     large lab's DOM took 8 times the file's size): <settings> with each machine element
//     (found by scanning the bytes) replaced by `<machine/>` must parse with those
//     placeholders as its machines, and the machine elements must parse by themselves (runs
//     of them as fragments, as above), which proves the whole file (detail::check_in_pieces).
//     When that cannot tell (a DOCTYPE, a NUL byte, not UTF-8, anything that does not parse)
//     the whole file is parsed, which also names the line of an error.
//   A commit's own save is remembered too: its edited machines were parsed back by themselves.
//   A state checked here, and each commit's, is written as the new check record.
//   So a machine is found through the table built from what pugixml read (a machine in a
//   comment or CDATA section is never one; a name written with entities or CDATA is found by
//   its text), and its fields are read by scanning its element's bytes (detail/xml/scan.hpp;
//   tests/scan_test.cpp holds it against pugixml's reading). A claim or release on a large lab
//   costs the read, a memcmp, one machine's parse, and the rewrite from its first changed byte.
// - Crash-safe in place: mama.xml's inode is never replaced (PHP processes may hold or wait for
//   its lock). A save first writes what it will rewrite, the new content from the first changed
//   byte on, to a journal (`<file>.d/journal`, written to a temporary name with
//   O_EXCL|O_NOFOLLOW and renamed), then truncates mama.xml at that byte and writes the rest,
//   then removes the journal. A process killed in between leaves a journal that the next access
//   of this library replays when mama.xml is an interrupted rewrite of that save and discards
//   otherwise (mama.xml is the old content, or newer content that PHP wrote since; see
//   journal.hpp). A truncated mama.xml is what the PHP tool refuses, so it never silently reads
//   a half-written file.
// - Holds: per machine a lock file `<file>.d/machine.<name>.lock`; a claim keeps its flock for
//   the job's whole life, and the job's child processes inherit it. The kernel drops it when
//   the last of them dies, so liveness is exact and waiters wake at once (inotify).
// - Standalone mode (opt-in, no PHP tool on the file): the lock is `<file>.d/state.lock` and a
//   save writes a temporary file and renames it over mama.xml (atomic, new inode).
// - One file, one runtime directory: `<file>` above is the file's canonical path, read from the
//   descriptor each begin() opens (every symbolic link of the file and of its directories
//   resolved; `./x`, `dir/../x` and relative names alike), so every name of one mama.xml
//   reaches the same lock files and journal. A hard link or a removed `<file>.d/` cannot be
//   seen from a path: staleness.hpp has the second check (the recorded process) for those.
//   XmlStoreOptions::runtime_dir, when set, is used as given.
// - Shared by several Unix users: `<file>.d/` gets mama.xml's group and the setgid bit, its
//   mode follows the file's (group-writable when mama.xml is), and lock files and the journal
//   get the file's group, so every user who may write mama.xml may use what another created.
// - Threads: a store and its copies may be used from several threads at once; they share only
//   caches guarded by a mutex, and what a begin() learns about the file stays in its
//   transaction. One transaction, hold or watcher object is not shared between threads without
//   external synchronisation. Each begin() and each try_hold() opens its own descriptor, and a
//   flock(2) belongs to the open file description, so two threads' transactions (and holds)
//   exclude each other exactly as two processes' do.
#pragma once

#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <pugixml.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mama/detail/posix.hpp"
#include "mama/detail/text.hpp"
#include "mama/detail/xml/check_record.hpp"
#include "mama/detail/xml/inotify.hpp"
#include "mama/detail/xml/journal.hpp"
#include "mama/detail/xml/lock_files.hpp"
#include "mama/detail/xml/scan.hpp"
#include "mama/detail/xml/splice.hpp"
#include "mama/detail/xml/state_file.hpp"
#include "mama/error.hpp"
#include "mama/process_probe.hpp"
#include "mama/record.hpp"
#include "mama/state_store.hpp"

namespace mama {

/// How the mama.xml store locks and saves.
struct XmlStoreOptions {
  enum class LockMode {
    /// flock on mama.xml, rewrite in place with a journal: safe beside the PHP tool (default).
    shared_with_php,
    /// flock on `<file>.d/state.lock`, write a temporary file and rename it over mama.xml.
    /// Only where no PHP mama process ever touches the file: PHP locks the file's inode, which
    /// a rename replaces.
    standalone,
  };
  LockMode mode = LockMode::shared_with_php;
  /// fsync the journal, mama.xml and the directory on each save: survives power loss, not only
  /// a crash of the process. Off: a killed process still never leaves a truncated file.
  bool sync = true;
  /// Where lock files and the journal live; empty: `<file>.d` beside the state file.
  std::filesystem::path runtime_dir;
  /// Refuse state files larger than this (a lab of 10,000 machines is about 8 MiB).
  std::size_t max_file_size = 64u << 20;
  /// Keep `<file>.d/checked`, the check record (detail/xml/check_record.hpp): a new process
  /// then checks a file that the last mama process checked or saved by checksums instead of
  /// parsing it whole. Off: each new store parses the file whole once (benchmarks compare).
  bool check_record = true;
  /// Test-only: called at each step of a save (a crash test kills the process there).
  std::function<void(SaveStep)> crash_hook;
};

namespace detail {

inline constexpr unsigned xml_parse_flags =
    (pugi::parse_cdata | pugi::parse_escapes | pugi::parse_declaration | pugi::parse_doctype |
     pugi::parse_comments | pugi::parse_pi | pugi::parse_ws_pcdata);

/// Where element `e` of a document parsed from `text` lies in `text`; nullopt when its bytes
/// are not where pugixml says.
inline std::optional<element_extent> locate_element(std::string_view text, pugi::xml_node e) {
  const std::ptrdiff_t name_at = e.offset_debug();
  if (name_at <= 0) return std::nullopt;
  if (!text.substr(static_cast<std::size_t>(name_at)).starts_with(std::string_view(e.name())))
    return std::nullopt;
  return find_element_extent(text, static_cast<std::size_t>(name_at) - 1);
}

/// Every <machine> child of a state file's <settings> root: where each lies, and its name.
struct settings_machines {
  std::vector<machine_extent> extents;
  std::vector<std::string> names;  // child("name").text(), "" when it has none
};

/// `content` checked in pieces, without a document of the whole file (see "Checked once" at
/// the top of this header): the <settings> element with each machine element replaced by
/// `<machine/>` (the skeleton), and each machine element by itself. What pugixml reads from
/// the whole file is then the skeleton with each `<machine/>` replaced by its machine's
/// element, so the file is valid UTF-8 XML with one <settings> root and exactly these
/// machines. nullopt when that cannot be told (the whole file must be parsed then): a NUL
/// byte, a file that scan::root_machine_children cannot split, a skeleton or a machine that
/// does not parse (or not as expected), an encoding other than UTF-8.
inline std::optional<settings_machines> check_in_pieces(std::string_view content) {
  // pugixml stops reading at a NUL byte, so bytes after one would go unchecked.
  if (content.find('\0') != std::string_view::npos) return std::nullopt;
  auto found = scan::root_machine_children(content);
  if (!found || found->empty()) return std::nullopt;
  constexpr std::string_view placeholder = "<machine/>";
  std::string skeleton;
  std::vector<std::size_t> placed;  // where each placeholder is in the skeleton
  placed.reserve(found->size());
  std::size_t from = 0;
  for (const machine_extent& x : *found) {
    skeleton.append(content.substr(from, x.begin - from));
    placed.push_back(skeleton.size());
    skeleton.append(placeholder);
    from = x.end;
  }
  skeleton.append(content.substr(from));
  {
    // The skeleton and the file share their bytes up to the first machine, where pugixml's
    // encoding guess (byte order mark, XML declaration) reads, so they are read alike.
    pugi::xml_document doc;
    const auto result = doc.load_buffer(skeleton.data(), skeleton.size(), xml_parse_flags);
    if (!result || result.encoding != pugi::encoding_utf8) return std::nullopt;
    int roots = 0;
    for (pugi::xml_node n : doc.children())
      if (n.type() == pugi::node_element) ++roots;
    const pugi::xml_node root = doc.document_element();
    if (roots != 1 || std::string_view(root.name()) != "settings") return std::nullopt;
    // The root's machines must be the placeholders, each where it was put: not one of them
    // inside a comment, CDATA section or attribute, and no machine the scan did not see.
    std::size_t k = 0;
    for (pugi::xml_node m : root.children("machine")) {
      if (k == placed.size() || m.offset_debug() != static_cast<std::ptrdiff_t>(placed[k] + 1) ||
          m.first_child() || m.first_attribute())
        return std::nullopt;
      ++k;
    }
    if (k != placed.size()) return std::nullopt;
  }
  // The machines, a run at a time: machines with only blanks between them (as a lab is
  // written), up to about 64 KiB, parsed together as a fragment whose elements must be exactly
  // those machines, each where the scan put it. A machine ends in '>' and only blank text may
  // follow it in the fragment, so pugixml's element ends where the scan's extent does, and its
  // bytes parse in the file as they parse here.
  constexpr std::size_t run_bytes = 64 << 10;
  const std::vector<machine_extent>& xs = *found;
  settings_machines out;
  out.names.reserve(xs.size());
  pugi::xml_document doc;
  for (std::size_t i = 0; i < xs.size();) {
    std::size_t j = i + 1;
    while (j < xs.size() && xs[j].end - xs[i].begin <= run_bytes &&
           is_blank(content.substr(xs[j - 1].end, xs[j].begin - xs[j - 1].end)))
      ++j;
    const std::size_t from = xs[i].begin;
    const std::string_view run = content.substr(from, xs[j - 1].end - from);
    const auto result =
        doc.load_buffer(run.data(), run.size(), xml_parse_flags | pugi::parse_fragment);
    if (!result || result.encoding != pugi::encoding_utf8) return std::nullopt;
    std::size_t k = i;
    for (pugi::xml_node n : doc.children()) {
      if (n.type() == pugi::node_pcdata && is_blank(n.value())) continue;
      if (n.type() != pugi::node_element || k == j || std::string_view(n.name()) != "machine" ||
          content[xs[k].end - 1] != '>')
        return std::nullopt;
      const auto e = locate_element(run, n);
      if (!e || from + e->begin != xs[k].begin || from + e->end != xs[k].end) return std::nullopt;
      out.names.emplace_back(n.child("name").text().get());
      ++k;
    }
    if (k != j) return std::nullopt;
    i = j;
  }
  out.extents = std::move(*found);
  return out;
}

}  // namespace detail

/// The mama.xml store (see the top of this header). Copies share caches and options.
class XmlStateStore {
  struct Shared;
  // The machines of one checked content by name, shared by the states derived from it while no
  // machine is renamed, added or removed.
  struct name_table {
    std::vector<std::string> names;  // every machine's, in file order ("" when it has none)
    std::unordered_map<std::string_view, std::size_t> ordinal;  // views into names
  };
  static constexpr std::size_t duplicate_name = static_cast<std::size_t>(-1);
  // Bytes that passed begin()'s checks (or that a commit saved), and where their machines are.
  struct checked_state {
    std::shared_ptr<const std::string> content;
    std::vector<detail::machine_extent> extents;  // every <machine> child of <settings>
    std::shared_ptr<const name_table> names;
    // Whether pugixml read the whole document as UTF-8. When not (an ASCII file declared
    // ISO-8859-1), a machine parsed by itself would be read differently, so every change is
    // checked whole, and job text must be ASCII.
    bool utf8 = true;
    // detail::block_sums of content, for the check record.
    std::vector<std::uint64_t> sums;
  };
  // A machine a commit edits: where it was and where it is in the new content.
  struct edited_machine {
    std::string name;
    std::size_t ordinal = 0;
    detail::machine_extent was, now;
  };

 public:
  /// A claim's kernel lock on one machine's lock file. Not close-on-exec: the job's child
  /// processes inherit it and keep the machine busy while they run.
  class hold {
   public:
    hold(hold&&) noexcept = default;
    hold& operator=(hold&&) noexcept = default;
    /// The lock file descriptor (-1 when nothing needed locking: a read-only probe of a machine
    /// that never had a lock file).
    int fd() const noexcept { return fd_.get(); }

   private:
    friend class XmlStateStore;
    explicit hold(detail::unique_fd fd) : fd_(std::move(fd)) {}
    detail::unique_fd fd_;
  };

  /// An inotify descriptor that becomes readable when mama.xml is modified or a machine's lock
  /// file is closed (a holder released or died).
  ///
  /// Closing an inotify descriptor makes the kernel wait for a grace period (5-15 ms measured
  /// here), which a waiter would pay right after getting the machine. So a watcher hands its
  /// descriptor back to the store (its watches removed) for the next watch(), and the store
  /// closes the descriptors when its last copy goes.
  class watcher {
   public:
    watcher(watcher&& o) noexcept
        : shared_(std::move(o.shared_)), fd_(std::exchange(o.fd_, -1)), wds_(std::move(o.wds_)) {}
    watcher& operator=(watcher&&) = delete;
    ~watcher() {
      if (shared_ && fd_ >= 0) shared_->inotify.retire(fd_, wds_);
    }
    int fd() const noexcept { return fd_; }
    void drain() noexcept { detail::drain_fd(fd_); }

   private:
    friend class XmlStateStore;
    watcher(std::shared_ptr<Shared> shared, int fd) : shared_(std::move(shared)), fd_(fd) {}
    std::shared_ptr<Shared> shared_;
    int fd_ = -1;
    std::vector<int> wds_;
  };

  /// One critical section on mama.xml.
  ///
  /// Reads scan the bytes of the machine's element (detail/xml/scan.hpp); writes are staged per
  /// machine and saved by splicing only the changed job field elements into the bytes that were
  /// read, so everything else in the file (other machines, other fields, comments, `<x/>`
  /// versus `<x></x>`, entity spellings, line ends, whitespace) stays byte for byte as it was.
  class transaction {
   public:
    transaction(transaction&&) noexcept = default;
    transaction& operator=(transaction&&) noexcept = default;
    ~transaction() = default;  // closing lock_fd_ releases the flock

    std::optional<JobRecord> find(std::string_view m) const {
      if (const auto it = staged_.find(m); it != staged_.end()) return it->second;
      const auto k = machine_ordinal(m);
      if (!k) return std::nullopt;
      JobRecord r;
      read_job(element(*k), r);
      return r;
    }

    /// Calls fn(const MachineInfo&) once per machine, in file order, with one MachineInfo that
    /// is reused from machine to machine (copy what you keep): a sweep of any lab allocates
    /// about one machine's worth. Fields are read from the bytes; staged records replace the
    /// file's job fields, as machines() shows them.
    template <class Fn>
    void for_each_machine(Fn&& fn) const {
      MachineInfo info;
      const std::string_view content = *state_->content;
      for (const detail::machine_extent& x : state_->extents) {
        const std::string_view el = content.substr(x.begin, x.end - x.begin);
        std::size_t used = 0;
        unsigned seen = 0;
        bool named = false;
        for (std::string JobRecord::*member : job_field_members) (info.job.*member).clear();
        detail::for_each_child_element(el, [&](std::string_view key, const detail::text_ref& t) {
          if (key == "name") {
            if (!named) detail::assign_text(info.name, t);
            named = true;
            return;
          }
          if (const int i = job_field_index(key); i >= 0) {
            if (!(seen & (1u << i))) detail::assign_text(info.job.*job_field_members[i], t);
            seen |= 1u << i;
            return;
          }
          if (used == info.fields.size()) info.fields.emplace_back();
          info.fields[used].first.assign(key);
          detail::assign_text(info.fields[used].second, t);
          ++used;
        });
        if (!named) info.name.clear();
        info.fields.resize(used);
        if (!staged_.empty())
          if (const auto staged = staged_.find(info.name); staged != staged_.end())
            info.job = staged->second;
        fn(std::as_const(info));
      }
    }

    std::vector<MachineInfo> machines() const {
      std::vector<MachineInfo> out;
      out.reserve(state_->extents.size());
      for_each_machine([&](const MachineInfo& info) { out.push_back(info); });
      return out;
    }

    /// Stages `r` as the job fields of `m`: fields with text are set (a missing field is added
    /// after the other job fields, with its neighbours' indentation), empty fields are emptied
    /// (and not added when missing). Throws mama::error: unknown_machine, or invalid_argument
    /// for text that XML cannot hold (control characters; not UTF-8; U+FFFE, U+FFFF).
    void write(std::string_view m, const JobRecord& r) {
      if (!machine_ordinal(m))
        throw error(errc::unknown_machine, "machine '" + detail::escape_control(m) +
                                               "' not found in " + shared_->path.string());
      for (std::size_t i = 0; i < job_field_names.size(); ++i) {
        const std::string& text = r.*job_field_members[i];
        if (!detail::valid_xml_text(text))
          throw error(errc::invalid_argument,
                      std::string(job_field_names[i]) + " for machine '" +
                          detail::escape_control(m) + "' contains control characters that " +
                          shared_->path.string() + " cannot hold; remove them");
        if (!detail::valid_utf8(text))
          throw error(
              errc::invalid_argument,
              std::string(job_field_names[i]) + " for machine '" + detail::escape_control(m) +
                  "' is not valid UTF-8 (or holds U+FFFE or U+FFFF), which " +
                  shared_->path.string() + " cannot hold for the PHP tool; give the text in UTF-8");
        if (!state_->utf8 && std::any_of(text.begin(), text.end(), [](char c) {
              return static_cast<unsigned char>(c) >= 0x80;
            }))
          throw error(errc::invalid_argument,
                      std::string(job_field_names[i]) + " for machine '" +
                          detail::escape_control(m) + "' is not ASCII, and " +
                          shared_->path.string() +
                          " is not in UTF-8 (its XML declaration names another encoding), "
                          "which mama writes only; use ASCII text or convert the file to UTF-8");
      }
      staged_.insert_or_assign(std::string(m), r);
    }

    std::optional<hold> try_hold(std::string_view m) {
      // The runtime directory is opened once per transaction: a sweep tries many holds.
      if (!runtime_dir_) runtime_dir_ = shared_->runtime_dir_fd(file_, !read_only_);
      return shared_->try_hold(m, read_only_, file_, false, runtime_dir_.get());
    }

    /// Who still holds `m`'s hold: a live process other than this one with a descriptor on the
    /// machine's lock file that carries its lock (a job's processes that inherited it). Of
    /// several, the one that started first (ties: the lowest PID), which is the job's own
    /// process rather than one of its children. nullopt when none is found; another user's
    /// processes are seen only by root (/proc/PID/fd is readable by its owner and root).
    std::optional<ProcessIdentity> hold_owner(std::string_view m) const {
      return detail::lock_file_holder(file_.runtime, m);
    }

    /// Saves what was staged (nothing when nothing changed). Throws mama::error; on failure the
    /// state file is left as it was, or is restored by the next access.
    void commit() {
      if (staged_.empty()) return;
      std::vector<edited_machine> edited;
      std::string next = shared_->splice(*state_, staged_, edited);
      if (edited.empty()) {
        staged_.clear();
        return;
      }
      if (read_only_)
        throw error(std::error_code(EACCES, std::system_category()),
                    "cannot save " + shared_->path.string() +
                        ": no write permission; run as a user who may change the lab state (" +
                        shared_->path.string() + " was not changed)");
      // Check the new content reads back as staged before it goes anywhere near the file. Only
      // the edited machine elements changed, each in place of a whole element, so each one
      // parsing by itself to the staged record proves the whole file (parsing all of it again
      // cost as much as the rest of a save on a large lab).
      for (const edited_machine& e : edited) {
        pugi::xml_document piece;
        const bool parsed = piece.load_buffer(next.data() + e.now.begin, e.now.end - e.now.begin,
                                              detail::xml_parse_flags);
        const pugi::xml_node m = piece.document_element();
        if (!parsed || std::string_view(m.name()) != "machine" ||
            e.name != m.child("name").text().get() || dom_job(m) != staged_.at(e.name))
          throw error(errc::io_error, "internal error: the edited " + shared_->path.string() +
                                          " does not read back as written; it was not changed");
      }
      // The PHP tool refuses a file without the text `</settings>` (strpos), as begin() does. A
      // root closed as `</settings >` whose only `</settings>` text sits in a job field would
      // lose it when that field is rewritten, locking the PHP tool out: refuse the save.
      if (next.rfind("</settings>") == std::string::npos)
        throw error(errc::bad_state_file,
                    shared_->path.string() +
                        " would no longer contain the text </settings> after this save: its "
                        "only copy is inside a job field and the root element is closed "
                        "differently (e.g. </settings >). The PHP tool refuses such a file; "
                        "write the closing tag as </settings> (mama left the file unchanged)");
      auto saved = Shared::after_edits(*state_, std::move(next), edited);
      // The bytes before the first edited machine are the same in both.
      std::size_t same_before = state_->content->size();
      for (const edited_machine& e : edited) same_before = std::min(same_before, e.was.begin);
      shared_->save(lock_fd_.get(), *state_->content, *saved->content, same_before, file_);
      state_ = std::move(saved);
      shared_->remember(state_);  // the next begin() that reads these bytes checks nothing
      shared_->record(*state_, file_, read_only_);  // nor does a new process's
      staged_.clear();
    }

   private:
    friend class XmlStateStore;
    transaction() = default;

    std::string_view element(std::size_t k) const {
      const detail::machine_extent& x = state_->extents[k];
      return std::string_view(*state_->content).substr(x.begin, x.end - x.begin);
    }
    // The machine's position in file order; nullopt when no machine has that name. Throws
    // bad_state_file for a name that two machines share.
    std::optional<std::size_t> machine_ordinal(std::string_view m) const {
      const auto& by_name = state_->names->ordinal;
      const auto it = by_name.find(m);
      if (it == by_name.end()) return std::nullopt;
      if (it->second == duplicate_name)
        throw error(errc::bad_state_file, shared_->path.string() + " names machine '" +
                                              detail::escape_control(m) +
                                              "' twice; machine names must be unique: rename or "
                                              "remove one (mama left the file unchanged)");
      return it->second;
    }
    static int job_field_index(std::string_view key) noexcept {
      if (key.size() < 3 || key[0] != 'j' || key[1] != 'o' || key[2] != 'b') return -1;
      for (std::size_t i = 0; i < job_field_names.size(); ++i)
        if (job_field_names[i] == key) return static_cast<int>(i);
      return -1;
    }
    // The job fields of a machine element's bytes: the first element of each job field name
    // wins, as pugixml's child(name) finds it.
    static void read_job(std::string_view el, JobRecord& r) {
      unsigned seen = 0;
      detail::for_each_child_element(el, [&](std::string_view key, const detail::text_ref& t) {
        const int i = job_field_index(key);
        if (i < 0) return;
        if (!(seen & (1u << i))) detail::assign_text(r.*job_field_members[i], t);
        seen |= 1u << i;
      });
    }
    // The same from pugixml's document: what a save's read-back check compares with.
    static JobRecord dom_job(pugi::xml_node m) {
      JobRecord r;
      unsigned seen = 0;
      for (pugi::xml_node f = m.first_child(); f; f = f.next_sibling()) {
        if (f.type() != pugi::node_element) continue;
        const int i = job_field_index(f.name());
        if (i < 0) continue;
        if (!(seen & (1u << i))) r.*job_field_members[i] = f.text().get();
        seen |= 1u << i;
      }
      return r;
    }

    std::shared_ptr<Shared> shared_;
    detail::unique_fd lock_fd_;                   // holds the state lock
    std::shared_ptr<const checked_state> state_;  // the file as read (or last saved), checked
    std::map<std::string, JobRecord, std::less<>> staged_;
    bool read_only_ = false;
    detail::opened_file file_;       // what begin() found: this transaction's own, never shared
    detail::unique_fd runtime_dir_;  // opened by the first try_hold
  };

  /// A store on the state file at `path`. Nothing is opened until begin().
  explicit XmlStateStore(std::filesystem::path path, XmlStoreOptions options = {})
      : shared_(std::make_shared<Shared>(std::move(path), std::move(options))) {}

  /// Locks mama.xml (waiting for other holders of the lock, PHP included), finishes an
  /// interrupted save, reads and checks the file. Throws mama::error naming the file.
  transaction begin() {
    transaction t;
    t.shared_ = shared_;
    shared_->open_locked(t.lock_fd_, t.read_only_, t.file_);
    shared_->recover(t.lock_fd_.get(), t.read_only_, t.file_);
    t.state_ = shared_->read_checked(t.lock_fd_.get(), t.read_only_, t.file_);
    return t;
  }

  std::string describe() const { return shared_->path.string(); }
  bool exact_liveness() const noexcept { return true; }
  const std::filesystem::path& path() const noexcept { return shared_->path; }
  /// Where the lock files and the journal are: the explicit XmlStoreOptions::runtime_dir, else
  /// `<canonical path of the file>.d` as the file is named now.
  std::filesystem::path runtime_dir() const { return shared_->peek().runtime; }
  const XmlStoreOptions& options() const noexcept { return shared_->options; }

  /// A wake source for waiters on `machine`: mama.xml modified, or the machine's lock file
  /// closed by its last holder.
  watcher watch(std::string_view machine) {
    watcher w(shared_, shared_->inotify.take(shared_->file()));
    const auto add = [&](const std::filesystem::path& p, std::uint32_t mask) {
      const int wd = ::inotify_add_watch(w.fd_, p.c_str(), mask);
      if (wd >= 0) w.wds_.push_back(wd);
    };
    const detail::opened_file f = shared_->peek();
    if (shared_->options.mode == XmlStoreOptions::LockMode::standalone) {
      add(f.canonical.parent_path(), IN_MOVED_TO | IN_CLOSE_WRITE);
    } else {
      add(shared_->path, IN_MODIFY);
    }
    // Make sure the lock file exists so it can be watched; a read-only user may not create it.
    // (A user who may not create it still wakes on mama.xml changes.)
    try {
      if (f.st.st_ino != 0)
        shared_->try_hold(machine, /*read_only=*/false, f, /*create_only=*/true);
    } catch (const error&) {
    }
    add(f.runtime / detail::lock_file_name(machine), IN_CLOSE_WRITE | IN_CLOSE_NOWRITE);
    return w;
  }

 private:
  // What the store and its copies share: the options, the caches (each part guards its own)
  // and the steps of begin() and commit() that need the parsed document.
  struct Shared {
    Shared(std::filesystem::path p, XmlStoreOptions o) : path(std::move(p)), options(std::move(o)) {
#ifdef MAMA_TEST_CRASH_HOOKS
      if (!options.crash_hook) {
        if (const char* at = std::getenv("MAMA_CRASH_AT")) {
          std::string step = at;
          options.crash_hook = [step](SaveStep s) {
            if (to_string(s) == step) ::kill(::getpid(), SIGKILL);
          };
        }
      }
#endif
    }

    std::filesystem::path path;             // as given
    std::string file_name = path.string();  // for messages
    XmlStoreOptions options;
    detail::inotify_pool inotify;                  // descriptors of finished watchers, for reuse
    detail::lock_files locks;                      // machines' lock files (the busy ones kept open)
    std::mutex mutex;                              // guards known_* and checked
    std::shared_ptr<const checked_state> checked;  // the bytes last checked or saved
    dev_t known_dev = 0;  // the inode whose canonical path locate() found last
    ino_t known_ino = 0;
    std::filesystem::path known_canonical;

    bool standalone() const noexcept {
      return options.mode == XmlStoreOptions::LockMode::standalone;
    }
    std::string file() const { return path.string(); }
    detail::save_io io() const {
      return {file_name, options.sync, options.max_file_size, &options.crash_hook};
    }

    detail::unique_fd runtime_dir_fd(const detail::opened_file& f, bool create) const {
      return detail::open_runtime_dir(f, create, options.runtime_dir.empty(), file_name);
    }

    std::optional<hold> try_hold(std::string_view machine, bool read_only,
                                 const detail::opened_file& f, bool create_only = false,
                                 int dir = -1) {
      auto fd = locks.try_lock(machine, read_only, f, create_only, options.runtime_dir.empty(),
                               file_name, dir);
      if (!fd) return std::nullopt;
      return hold(std::move(*fd));
    }

    // Where the lock files and the journal of the file open on `fd` live (see the top comment).
    // The canonical path found last is reused while it still names the opened inode (one
    // stat instead of reading /proc/self/fd and a stat: a third of a small begin()).
    void locate(int fd, detail::opened_file& f) {
      std::optional<std::filesystem::path> canonical;
      {
        std::lock_guard lock(mutex);
        if (!known_canonical.empty() && known_ino == f.st.st_ino && known_dev == f.st.st_dev)
          canonical = known_canonical;
      }
      struct stat st {};
      if (canonical && (::stat(canonical->c_str(), &st) != 0 || st.st_dev != f.st.st_dev ||
                        st.st_ino != f.st.st_ino))
        canonical.reset();
      if (!canonical) {
        canonical = detail::canonical_path_of(fd, path.string(), f.st);
        if (canonical) {
          std::lock_guard lock(mutex);
          known_dev = f.st.st_dev;
          known_ino = f.st.st_ino;
          known_canonical = *canonical;
        }
      }
      f.canonical = canonical ? *canonical : std::filesystem::absolute(path).lexically_normal();
      f.runtime = options.runtime_dir.empty() ? std::filesystem::path(f.canonical.string() + ".d")
                                              : options.runtime_dir;
    }

    void open_locked(detail::unique_fd& lock_fd, bool& read_only, detail::opened_file& f) {
      if (standalone()) {
        // The state file must exist and be readable; the lock is a separate file.
        {
          detail::unique_fd file_fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
          if (!file_fd || ::fstat(file_fd.get(), &f.st) != 0) throw_missing();
          locate(file_fd.get(), f);
        }
        auto dir = runtime_dir_fd(f, true);
        if (!dir) throw_errno("cannot open " + f.runtime.string());
        lock_fd.reset(::openat(dir.get(), "state.lock", O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
                               f.st.st_mode & 0666));
        if (!lock_fd)
          throw_errno("cannot open the lock file " + (f.runtime / "state.lock").string());
        read_only = ::access(path.c_str(), W_OK) != 0;
      } else {
        lock_fd.reset(::open(path.c_str(), O_RDWR | O_CLOEXEC));
        if (!lock_fd && (errno == EACCES || errno == EROFS || errno == EPERM)) {
          lock_fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
          read_only = true;
        }
        if (!lock_fd) {
          if (errno == ENOENT) throw_missing();
          if (errno == EISDIR)
            throw error(errc::bad_state_file,
                        file() + " is a directory; point --state at the lab's mama.xml");
          throw_errno("cannot open " + file() + "; check its permissions");
        }
      }
      if (detail::flock_retry(lock_fd.get(), LOCK_EX) != 0) throw_errno("cannot lock " + file());
      if (standalone()) return;
      if (::fstat(lock_fd.get(), &f.st) != 0) throw_errno("cannot stat " + file());
      if (!S_ISREG(f.st.st_mode))
        throw error(errc::bad_state_file,
                    file() + " is not a regular file; point --state at the lab's mama.xml");
      locate(lock_fd.get(), f);
    }

    // What begin() would find, without opening or locking: for watch(). st stays zero when
    // mama.xml cannot be found.
    detail::opened_file peek() {
      detail::opened_file f;
      if (::stat(path.c_str(), &f.st) != 0) f.st = {};
      locate(-1, f);
      return f;
    }

    [[noreturn]] void throw_missing() const {
      throw error(errc::bad_state_file, "state file " + file() +
                                            " does not exist; point --state or MAMA_STATE at the "
                                            "lab's mama.xml, or create one with a <settings> root");
    }

    // Reads the file and checks it (see check()); the remembered state when the file still
    // holds its bytes.
    std::shared_ptr<const checked_state> read_checked(int lock_fd, bool read_only,
                                                      detail::opened_file& f) {
      detail::unique_fd own;
      int fd = lock_fd;
      if (standalone()) {
        own.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!own) {
          if (errno == ENOENT) throw_missing();
          throw_errno("cannot open " + file() + "; check its permissions");
        }
        if (::fstat(own.get(), &f.st) != 0) throw_errno("cannot stat " + file());
        fd = own.get();
      }
      if (auto same = unchanged(fd)) return same;
      std::string content;
      read_fd(fd, content);
      return check(std::move(content), f, read_only);
    }

    // The remembered state when the file open on `fd` holds exactly its bytes, compared as they
    // are read through a small buffer: the usual case (nobody else wrote since this store's
    // last transaction) neither allocates the file's size nor faults in a copy of it.
    std::shared_ptr<const checked_state> unchanged(int fd) {
      std::shared_ptr<const checked_state> last;
      {
        std::lock_guard lock(mutex);
        last = checked;
      }
      struct stat st {};
      if (!last || ::fstat(fd, &st) != 0 ||
          static_cast<std::uint64_t>(st.st_size) != last->content->size())
        return nullptr;
      constexpr std::size_t chunk = 128u << 10;
      thread_local const std::unique_ptr<char[]> buffer(new char[chunk]);
      const std::string& want = *last->content;
      std::size_t at = 0;
      while (at < want.size()) {
        const ssize_t n =
            ::pread(fd, buffer.get(), std::min(chunk, want.size() - at), static_cast<off_t>(at));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || std::memcmp(buffer.get(), want.data() + at, static_cast<std::size_t>(n)) != 0)
          return nullptr;
        at += static_cast<std::size_t>(n);
      }
      char more;
      if (::pread(fd, &more, 1, static_cast<off_t>(at)) != 0) return nullptr;  // it grew
      return last;
    }

    void read_fd(int fd, std::string& content) const {
      detail::read_state_bytes(fd, content, io());
    }

    // The checked state of `bytes` read from the file `f` (see "Checked once" at the top of
    // this header): the state remembered last when the bytes are the same; else the check
    // record's when it describes them; else, when they differ from the state remembered last
    // only inside machine elements, that state with just the changed machines checked; else the
    // whole file. A state checked here is written as the check record. Throws bad_state_file
    // naming the file.
    std::shared_ptr<const checked_state> check(std::string bytes, const detail::opened_file& f,
                                               bool read_only) {
      std::shared_ptr<const checked_state> last;
      {
        std::lock_guard lock(mutex);
        last = checked;
      }
      if (last && last->content->size() == bytes.size() &&
          std::memcmp(last->content->data(), bytes.data(), bytes.size()) == 0)
        return last;
      auto content = std::make_shared<const std::string>(std::move(bytes));
      std::shared_ptr<const checked_state> state = from_record(content, f);
      const bool recorded = state != nullptr;
      if (!state && last) state = check_changes(*last, content);
      if (!state) state = check_whole(content);
      remember(state);
      if (!recorded) record(*state, f, read_only);
      return state;
    }

    // The state of `content` that the check record describes, or null (no record, or not of
    // these bytes; see detail/xml/check_record.hpp).
    std::shared_ptr<const checked_state> from_record(
        const std::shared_ptr<const std::string>& content, const detail::opened_file& f) const {
      if (!options.check_record) return nullptr;
      try {
        const auto dir = runtime_dir_fd(f, false);
        if (!dir) return nullptr;
        auto r = detail::read_check_record(dir.get(), options.max_file_size, f);
        auto state = std::make_shared<checked_state>();
        if (!r || !detail::check_record_matches(*r, *content, state->sums)) return nullptr;
        state->content = content;
        state->utf8 = r->utf8;
        state->extents = std::move(r->extents);
        state->names = make_names(std::move(r->names));
        return state;
      } catch (const error&) {
        return nullptr;  // e.g. a runtime directory that is a symbolic link: begin() says so
      }
    }

    // Writes the check record of `state`, the content of the file `f` now. Best effort: a
    // record not written only costs the next new process a check.
    void record(const checked_state& state, const detail::opened_file& f, bool read_only) const {
      if (!options.check_record || read_only) return;
      try {
        // Not created for the record: a read command (`mama list` run as root, say) must not
        // make the directory that the lab's users' claims need to write in.
        const auto dir = runtime_dir_fd(f, false);
        if (!dir) return;
        detail::write_check_record(
            dir.get(), f,
            detail::encode_check_record(state.content->size(), state.utf8, state.sums,
                                        state.extents, state.names->names));
      } catch (const std::exception&) {
      }
    }

    void remember(std::shared_ptr<const checked_state> state) {
      std::lock_guard lock(mutex);
      checked = std::move(state);
    }

    static std::shared_ptr<const name_table> make_names(std::vector<std::string> names) {
      auto table = std::make_shared<name_table>();
      table->names = std::move(names);
      table->ordinal.reserve(table->names.size());
      for (std::size_t i = 0; i < table->names.size(); ++i) {
        const std::string_view name = table->names[i];
        if (name.empty()) continue;
        // A name used twice maps to no machine: machines() shows both, find/write refuse it.
        if (const auto [it, added] = table->ordinal.emplace(name, i); !added)
          it->second = duplicate_name;
      }
      return table;
    }

    // Where element `e` of a document parsed from `text` lies in `text`; nullopt when its
    // bytes are not where pugixml says.
    static std::optional<detail::element_extent> locate_element(std::string_view text,
                                                                pugi::xml_node e) {
      return detail::locate_element(text, e);
    }

    std::shared_ptr<const checked_state> check_whole(
        const std::shared_ptr<const std::string>& bytes) const {
      const std::string& content = *bytes;
      if (detail::is_blank(content))
        throw error(errc::bad_state_file,
                    file() + " is empty; restore it from a backup (mama left it unchanged)");
      if (content.rfind("</settings>") == std::string::npos)
        throw error(errc::bad_state_file,
                    file() +
                        " has no </settings>: it is truncated or not a mama state "
                        "file; restore it from a backup (mama left it unchanged)");
      if (auto pieces = detail::check_in_pieces(content)) {
        auto state = std::make_shared<checked_state>();
        state->content = bytes;
        state->extents = std::move(pieces->extents);
        state->names = make_names(std::move(pieces->names));
        state->sums = detail::block_sums(content);
        return state;  // utf8: check_in_pieces accepts only UTF-8
      }
      pugi::xml_document doc;
      const auto result = doc.load_buffer(content.data(), content.size(), detail::xml_parse_flags);
      if (!result) {
        const auto offset = static_cast<std::size_t>(std::max<std::ptrdiff_t>(result.offset, 0));
        const auto line =
            1 + std::count(
                    content.begin(),
                    content.begin() + static_cast<std::ptrdiff_t>(std::min(offset, content.size())),
                    '\n');
        throw error(errc::bad_state_file,
                    file() + " is not valid XML (" + result.description() + " at line " +
                        std::to_string(line) +
                        "); fix it or restore it from a backup (mama left it unchanged)");
      }
      int roots = 0;
      for (pugi::xml_node n : doc.children())
        if (n.type() == pugi::node_element) ++roots;
      if (roots != 1 || std::string_view(doc.document_element().name()) != "settings")
        throw error(errc::bad_state_file,
                    file() +
                        " must have exactly one root element <settings>; "
                        "it is not a mama state file (mama left it unchanged)");
      if (result.encoding != pugi::encoding_utf8) {
        // mama finds machines by their bytes and writes UTF-8: a file pugixml converted can be
        // used only when the conversion changed nothing (ISO-8859-1 holding only ASCII).
        const bool ascii = std::all_of(content.begin(), content.end(), [](char c) {
          return c != 0 && static_cast<unsigned char>(c) < 0x80;
        });
        if (result.encoding != pugi::encoding_latin1 || !ascii)
          throw error(errc::bad_state_file,
                      file() + " is not in UTF-8 (it is in " +
                          (result.encoding == pugi::encoding_latin1 ? "ISO-8859-1"
                           : result.encoding == pugi::encoding_utf16_le ||
                                   result.encoding == pugi::encoding_utf16_be
                               ? "UTF-16"
                               : "UTF-32") +
                          "), which mama reads and writes only; convert it to UTF-8 (e.g. with "
                          "iconv) and change its XML declaration (mama left it unchanged)");
      }
      auto state = std::make_shared<checked_state>();
      state->content = bytes;
      state->utf8 = result.encoding == pugi::encoding_utf8;
      state->sums = detail::block_sums(content);
      std::vector<std::string> names;
      for (pugi::xml_node m : doc.document_element().children("machine")) {
        const auto x = locate_element(content, m);
        if (!x)
          throw error(errc::io_error, "cannot locate a <machine> of " + file() +
                                          " in its bytes (please report this); it was not changed");
        state->extents.push_back({x->begin, x->end});
        names.emplace_back(m.child("name").text().get());
      }
      state->names = make_names(std::move(names));
      return state;
    }

    // `bytes` checked by what changed since `old`, or null when that cannot tell (the whole
    // file is checked then). The bytes before and after the change are old's, which was
    // valid; when the change lies inside a run of whole machine elements and the new bytes of
    // that run parse by themselves as machine elements (with blanks and comments between),
    // the whole file parses as before with just those machines changed.
    std::shared_ptr<const checked_state> check_changes(
        const checked_state& old, const std::shared_ptr<const std::string>& bytes) const {
      if (!old.utf8) return nullptr;
      const std::string_view was = *old.content, now = *bytes;
      const std::size_t a = detail::common_prefix(was, now);
      const std::size_t b =
          was.size() - detail::common_suffix(was, now, std::min(was.size(), now.size()) - a);
      const auto& ex = old.extents;
      const auto first = std::partition_point(
          ex.begin(), ex.end(), [&](const detail::machine_extent& x) { return x.end <= a; });
      if (first == ex.end() || first->begin > a) return nullptr;
      auto last = std::partition_point(
          first, ex.end(), [&](const detail::machine_extent& x) { return x.begin < b; });
      if (last == first) return nullptr;
      --last;
      if (last->end < b) return nullptr;
      const std::size_t from = first->begin;
      const std::size_t to = last->end + now.size() - was.size();  // in the new bytes
      const std::string_view run = now.substr(from, to - from);
      // pugixml reads a buffer only up to a NUL byte (and takes `<` NUL... for UTF-16/32), so
      // a run with zeros in it (a block a crash left, or a hand edit) could parse as fewer
      // machines; the whole file, where <settings> is still open there, does not parse.
      if (run.find('\0') != std::string_view::npos) return nullptr;
      pugi::xml_document doc;
      if (!doc.load_buffer(run.data(), run.size(), detail::xml_parse_flags | pugi::parse_fragment))
        return nullptr;
      std::vector<detail::machine_extent> fresh;
      std::vector<std::string> fresh_names;
      for (pugi::xml_node n : doc.children()) {
        if (n.type() == pugi::node_element) {
          if (std::string_view(n.name()) != "machine") return nullptr;
          const auto x = locate_element(run, n);
          if (!x) return nullptr;
          fresh.push_back({from + x->begin, from + x->end});
          fresh_names.emplace_back(n.child("name").text().get());
        } else if (n.type() == pugi::node_pcdata) {
          if (!detail::is_blank(n.value())) return nullptr;
        } else if (n.type() != pugi::node_comment) {
          return nullptr;
        }
      }
      auto state = std::make_shared<checked_state>();
      state->content = bytes;
      state->sums = detail::block_sums(now, old.sums, a);
      const auto i = static_cast<std::size_t>(first - ex.begin());
      const auto j = static_cast<std::size_t>(last - ex.begin()) + 1;
      state->extents.reserve(ex.size() - (j - i) + fresh.size());
      state->extents.assign(ex.begin(), first);
      state->extents.insert(state->extents.end(), fresh.begin(), fresh.end());
      for (auto k = ex.begin() + static_cast<std::ptrdiff_t>(j); k != ex.end(); ++k)
        state->extents.push_back(
            {k->begin + now.size() - was.size(), k->end + now.size() - was.size()});
      const auto& old_names = old.names->names;
      if (fresh_names.size() == j - i &&
          std::equal(fresh_names.begin(), fresh_names.end(),
                     old_names.begin() + static_cast<std::ptrdiff_t>(i))) {
        state->names = old.names;
      } else {
        std::vector<std::string> names(old_names.begin(),
                                       old_names.begin() + static_cast<std::ptrdiff_t>(i));
        names.insert(names.end(), fresh_names.begin(), fresh_names.end());
        names.insert(names.end(), old_names.begin() + static_cast<std::ptrdiff_t>(j),
                     old_names.end());
        state->names = make_names(std::move(names));
      }
      return state;
    }

    // The state of `next`, the content a commit made from `old` by editing `edited` machines:
    // their new extents, the others moved by the edits before them; names unchanged.
    static std::shared_ptr<const checked_state> after_edits(const checked_state& old,
                                                            std::string next,
                                                            std::vector<edited_machine>& edited) {
      std::sort(edited.begin(), edited.end(), [](const edited_machine& x, const edited_machine& y) {
        return x.ordinal < y.ordinal;
      });
      auto state = std::make_shared<checked_state>();
      state->content = std::make_shared<const std::string>(std::move(next));
      state->names = old.names;
      state->utf8 = old.utf8;
      std::size_t same_before = state->content->size();  // the bytes before every edit
      for (const edited_machine& e : edited) same_before = std::min(same_before, e.was.begin);
      state->sums = detail::block_sums(*state->content, old.sums, same_before);
      state->extents = old.extents;
      std::size_t e = 0;
      std::ptrdiff_t delta = 0;
      for (std::size_t k = 0; k < state->extents.size(); ++k) {
        detail::machine_extent& x = state->extents[k];
        if (e < edited.size() && edited[e].ordinal == k) {
          x = edited[e].now;
          delta += static_cast<std::ptrdiff_t>(edited[e].now.end - edited[e].now.begin) -
                   static_cast<std::ptrdiff_t>(edited[e].was.end - edited[e].was.begin);
          ++e;
        } else {
          x.begin = static_cast<std::size_t>(static_cast<std::ptrdiff_t>(x.begin) + delta);
          x.end = static_cast<std::size_t>(static_cast<std::ptrdiff_t>(x.end) + delta);
        }
      }
      return state;
    }

    // The new file content: the checked content with the job fields of each staged machine
    // replaced. Only the changed elements' bytes change; a missing field is inserted after the
    // previous job field (or the machine's last element), indented like that element. The
    // edits are planned from the machine's element alone (parsed by itself, offsets relative
    // to its start) and applied to the bytes by detail/xml/splice.hpp. Fills `edited` with
    // every machine element that changed (empty: nothing changed).
    std::string splice(const checked_state& state,
                       const std::map<std::string, JobRecord, std::less<>>& staged,
                       std::vector<edited_machine>& edited) const {
      const std::string& content = *state.content;
      std::vector<detail::byte_edit> edits;
      std::vector<detail::element_span> old_spans;
      std::vector<std::size_t> ordinals;
      for (const auto& [machine, record] : staged) {
        const auto found = state.names->ordinal.find(machine);
        if (found == state.names->ordinal.end() || found->second == duplicate_name) continue;
        const std::size_t ordinal = found->second;
        const detail::machine_extent at = state.extents[ordinal];
        const std::string_view frag(content.data() + at.begin, at.end - at.begin);
        const auto extent_of = [&](pugi::xml_node e) {
          const auto x = locate_element(frag, e);
          if (!x)
            throw error(errc::io_error, "cannot locate <" + std::string(e.name()) + "> in " +
                                            file() +
                                            " to edit it; it was not changed (please report this)");
          return *x;
        };
        pugi::xml_document doc;
        if (!doc.load_buffer(frag.data(), frag.size(), detail::xml_parse_flags))
          throw error(errc::io_error, "cannot read machine '" + detail::escape_control(machine) +
                                          "' of " + file() +
                                          " by itself to edit it; it was not changed (please "
                                          "report this)");
        const pugi::xml_node node = doc.document_element();
        const std::size_t edits_before = edits.size();
        pugi::xml_node previous;  // the job field element before the current one
        std::string pending;      // new fields to insert after `previous`
        std::size_t insert_at = 0;
        std::string indent;
        const auto flush = [&] {
          if (!pending.empty()) edits.push_back({insert_at, insert_at, std::move(pending)});
          pending.clear();
        };
        for (std::size_t i = 0; i < job_field_names.size(); ++i) {
          const char* name = job_field_names[i].data();
          const std::string& value = record.*job_field_members[i];
          const pugi::xml_node field = node.child(name);
          if (!field) {
            if (value.empty()) continue;
            if (pending.empty()) {
              pugi::xml_node after = previous ? previous : node.last_child();
              while (after && after.type() != pugi::node_element) after = after.previous_sibling();
              if (!after)
                throw error(errc::io_error, "machine '" + detail::escape_control(machine) +
                                                "' in " + file() +
                                                " has no fields to add a job to");
              insert_at = at.begin + extent_of(after).end;
              indent.clear();
              const pugi::xml_node ws = after.previous_sibling();
              if (ws.type() == pugi::node_pcdata && detail::is_blank(ws.value())) {
                // Only the last line of the whitespace: the indentation, with its line end.
                const std::string_view blank = ws.value();
                const auto nl = blank.rfind('\n');
                indent = nl == std::string_view::npos ? std::string(blank)
                                                      : std::string(blank.substr(nl));
                if (nl != std::string_view::npos && nl > 0 && blank[nl - 1] == '\r')
                  indent.insert(0, "\r");
              }
            }
            pending +=
                indent + "<" + name + ">" + detail::escape_xml_text(value) + "</" + name + ">";
            continue;
          }
          flush();
          previous = field;
          if (std::string_view(field.text().get()) == value) continue;
          const auto x = extent_of(field);
          std::string_view start_tag = frag.substr(x.begin, x.start_tag_end - x.begin);
          start_tag.remove_suffix(x.self_closing ? 2 : 1);
          while (x.self_closing && !start_tag.empty() &&
                 detail::is_blank(start_tag.substr(start_tag.size() - 1)))
            start_tag.remove_suffix(1);
          std::string text(start_tag);
          if (value.empty()) {
            text += "/>";
          } else {
            text += ">" + detail::escape_xml_text(value) + "</" + field.name() + ">";
          }
          edits.push_back({at.begin + x.begin, at.begin + x.end, std::move(text)});
        }
        flush();
        if (edits.size() != edits_before) {
          old_spans.push_back({machine, at.begin, at.end});
          ordinals.push_back(ordinal);
        }
      }
      if (edits.empty()) return {};
      // Nothing changes when every edit puts back the bytes it replaces.
      if (std::all_of(edits.begin(), edits.end(), [&](const detail::byte_edit& e) {
            return std::string_view(content).substr(e.begin, e.end - e.begin) == e.text;
          }))
        return {};
      std::vector<detail::element_span> now;
      std::string next = detail::apply_edits(content, edits, old_spans, now);
      for (std::size_t i = 0; i < old_spans.size(); ++i)
        edited.push_back({old_spans[i].machine,
                          ordinals[i],
                          {old_spans[i].begin, old_spans[i].end},
                          {now[i].begin, now[i].end}});
      return next;
    }

    // A save: the journaled rewrite in place (detail/xml/journal.hpp), or in standalone mode a
    // rename over the file.
    void save(int lock_fd, const std::string& old_content, const std::string& content,
              std::size_t same_before, const detail::opened_file& f) {
      if (standalone()) return detail::save_by_rename(content, f, io());
      auto dir = runtime_dir_fd(f, true);
      if (!dir) throw_errno("cannot open " + f.runtime.string());
      detail::journaled_save(dir.get(), lock_fd, old_content, content, f, io(), same_before);
    }

    // Finishes or discards a save that a killed process left half done (see journal.hpp).
    void recover(int lock_fd, bool read_only, const detail::opened_file& f) {
      if (standalone()) return;
      auto dir = runtime_dir_fd(f, false);
      if (!dir) return;
      detail::recover_journal(dir.get(), lock_fd, read_only, f, io());
    }
  };

  std::shared_ptr<Shared> shared_;
};
static_assert(state_store<XmlStateStore>);

}  // namespace mama
