// mama/xml_state_store.hpp — the StateStore on mama.xml, beside the PHP mama tool.
//
// The only header that includes pugixml. Contract (SPEC §2, invariants I3 and I5):
// - Locking: an exclusive flock(2) on mama.xml itself, the lock the PHP tool takes.
// - Lossless: every machine, field, unknown element, comment and their order are kept. A save
//   splices only the changed job field elements into the bytes that were read, so everything
//   else (other machines, `<x/>` versus `<x></x>`, entity spellings, CRLF, indentation) stays
//   byte for byte; a missing job field is added after the other job fields, indented like its
//   neighbours. The edited content is parsed and checked before it is saved.
// - Crash-safe in place: mama.xml's inode is never replaced (PHP processes may hold or wait for
//   its lock). A save first writes the whole new content to a journal (`<file>.d/journal`,
//   written to a temporary name with O_EXCL|O_NOFOLLOW and renamed), then truncates and
//   rewrites mama.xml, then removes the journal. A process killed in between leaves a journal
//   that the next access of this library replays when mama.xml is a prefix of the new content
//   (the interrupted rewrite) and discards otherwise (mama.xml is the old content, or newer
//   content that PHP wrote since). A truncated mama.xml is what the PHP tool refuses, so it
//   never silently reads a half-written file.
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

#include <dirent.h>
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
#include "mama/error.hpp"
#include "mama/process_probe.hpp"
#include "mama/record.hpp"
#include "mama/state_store.hpp"

namespace mama {

/// The steps of a save, in order, for the test-only crash hook.
enum class save_step {
  journal_written,    ///< the journal's temporary file is written (not yet renamed)
  journal_renamed,    ///< the journal is in place
  file_truncated,     ///< mama.xml is empty
  file_half_written,  ///< half of the new content is in mama.xml
  file_written,       ///< mama.xml holds the new content; the journal is still there
  journal_removed,    ///< done
};

/// The name of a save step ("journal_written", ...), as MAMA_CRASH_AT takes it.
constexpr std::string_view to_string(save_step s) noexcept {
  switch (s) {
    case save_step::journal_written:
      return "journal_written";
    case save_step::journal_renamed:
      return "journal_renamed";
    case save_step::file_truncated:
      return "file_truncated";
    case save_step::file_half_written:
      return "file_half_written";
    case save_step::file_written:
      return "file_written";
    case save_step::journal_removed:
      return "journal_removed";
  }
  return "?";
}

/// How the mama.xml store locks and saves.
struct XmlStoreOptions {
  enum class lock_mode {
    /// flock on mama.xml, rewrite in place with a journal: safe beside the PHP tool (default).
    shared_with_php,
    /// flock on `<file>.d/state.lock`, write a temporary file and rename it over mama.xml.
    /// Only where no PHP mama process ever touches the file: PHP locks the file's inode, which
    /// a rename replaces.
    standalone,
  };
  lock_mode mode = lock_mode::shared_with_php;
  /// fsync the journal, mama.xml and the directory on each save: survives power loss, not only
  /// a crash of the process. Off: a killed process still never leaves a truncated file.
  bool sync = true;
  /// Where lock files and the journal live; empty: `<file>.d` beside the state file.
  std::filesystem::path runtime_dir;
  /// Refuse state files larger than this (a lab of 10,000 machines is about 8 MiB).
  std::size_t max_file_size = 64u << 20;
  /// Test-only: called at each step of a save (a crash test kills the process there).
  std::function<void(save_step)> crash_hook;
};

namespace detail {

inline constexpr unsigned xml_parse_flags =
    (pugi::parse_cdata | pugi::parse_escapes | pugi::parse_declaration | pugi::parse_doctype |
     pugi::parse_comments | pugi::parse_pi | pugi::parse_ws_pcdata);

/// The lock file name of a machine: bytes outside [A-Za-z0-9_.-] (and a leading '.') are
/// written %XX, so any name maps to one safe file name.
inline std::string lock_file_name(std::string_view machine) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out = "machine.";
  for (std::size_t i = 0; i < machine.size(); ++i) {
    const auto c = static_cast<unsigned char>(machine[i]);
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '_' || c == '-' || (c == '.' && i > 0);
    if (plain) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (out.size() > 200) {  // keep within NAME_MAX; the hash keeps long names apart
    out.resize(180);
    char tail[24];
    std::snprintf(tail, sizeof tail, "~%016llx", static_cast<unsigned long long>(fnv1a(machine)));
    out += tail;
  }
  return out + ".lock";
}

inline bool is_blank(std::string_view s) noexcept {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

inline constexpr std::string_view journal_magic = "MAMA-JOURNAL 2 ";

/// What one begin() found out about mama.xml: its stat (mode and group for what the store
/// creates beside it) and its runtime directory. Each transaction keeps its own, so threads
/// using copies of one store share nothing mutable but the store's mutex-guarded caches.
struct opened_file {
  struct stat st {};
  std::filesystem::path canonical;  ///< the file's path with every symbolic link resolved
  std::filesystem::path runtime;
};

/// The path of the file open on `fd`, with every symbolic link (of the file and of its
/// directories) resolved: /proc/self/fd/N names what was really opened, so no rename between
/// resolving and opening can mislead it. Falls back to realpath(`name`) without /proc; either
/// must name the same inode as `st`. nullopt when neither does (the file was removed).
inline std::optional<std::filesystem::path> canonical_path_of(int fd, const std::string& name,
                                                              const struct stat& st) {
  const auto same = [&](const std::string& p) {
    struct stat other {};
    return !p.empty() && p.front() == '/' && ::stat(p.c_str(), &other) == 0 &&
           other.st_dev == st.st_dev && other.st_ino == st.st_ino;
  };
  if (fd >= 0) {
    char link[40];
    std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    std::string target(4096, '\0');
    const ssize_t n = ::readlink(link, target.data(), target.size());
    if (n > 0 && static_cast<std::size_t>(n) < target.size()) {
      target.resize(static_cast<std::size_t>(n));
      if (same(target)) return target;
    }
  }
  if (char* resolved = ::realpath(name.c_str(), nullptr)) {
    std::string r(resolved);
    std::free(resolved);
    if (same(r)) return r;
  }
  return std::nullopt;
}

/// Where one element sits in the file's bytes: [begin, end) is the whole element, the start tag
/// ends at start_tag_end (one past its '>').
struct element_extent {
  std::size_t begin = 0;
  std::size_t start_tag_end = 0;
  std::size_t end = 0;
  bool self_closing = false;
};

/// Finds the extent of the element whose '<' is at `begin` in `text`, a document pugixml has
/// already accepted (so the markup is well formed). nullopt when the bytes do not look like it.
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

/// The live process other than `except` that holds the flock of the file `dev`/`ino` through an
/// open descriptor: /proc/PID/fd/N names the file, and /proc/PID/fdinfo/N lists the flock on
/// the descriptor's open file description (a descriptor opened by a waiter, without the lock,
/// lists none). Of several, the one that started first (ties: the lowest PID). Processes whose
/// /proc entries may not be read, and zombies, are skipped.
inline std::optional<ProcessIdentity> find_flock_holder(dev_t dev, ino_t ino, int except) {
  using dir_ptr = std::unique_ptr<DIR, int (*)(DIR*)>;
  const dir_ptr proc(::opendir("/proc"), ::closedir);
  if (!proc) return std::nullopt;
  std::optional<ProcessIdentity> best;
  std::string fdinfo;
  while (const dirent* p = ::readdir(proc.get())) {
    const auto pid = parse_decimal<int>(p->d_name);
    if (!pid || *pid == except) continue;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/fd", *pid);
    const dir_ptr fds(::opendir(path), ::closedir);
    if (!fds) continue;  // another user's, or gone
    bool holds = false;
    while (!holds) {
      const dirent* d = ::readdir(fds.get());
      if (!d) break;
      const auto fd = parse_decimal<int>(d->d_name);
      if (!fd) continue;
      std::snprintf(path, sizeof path, "/proc/%d/fd/%d", *pid, *fd);
      struct stat st {};
      if (::stat(path, &st) != 0 || st.st_dev != dev || st.st_ino != ino) continue;
      std::snprintf(path, sizeof path, "/proc/%d/fdinfo/%d", *pid, *fd);
      holds = read_small_file(path, fdinfo) && fdinfo.find("FLOCK") != std::string::npos;
    }
    if (!holds) continue;
    const auto stat = read_proc_stat(*pid);
    if (!stat || stat->state == 'Z' || stat->state == 'X') continue;
    const ProcessIdentity who{*pid, stat->start};
    if (!best || who.start < best->start || (who.start == best->start && who.pid < best->pid))
      best = who;
  }
  return best;
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

}  // namespace detail

/// The mama.xml store (see the top of this header). Copies share caches and options.
class XmlStateStore {
  struct Shared;

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
      if (shared_ && fd_ >= 0) shared_->retire_inotify(fd_, wds_);
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
  /// Reads go through pugixml; writes are staged per machine and saved by splicing only the
  /// changed job field elements into the bytes that were read, so everything else in the file
  /// (other machines, other fields, comments, `<x/>` versus `<x></x>`, entity spellings, line
  /// ends, whitespace) stays byte for byte as it was.
  class transaction {
   public:
    transaction(transaction&&) noexcept = default;
    transaction& operator=(transaction&&) noexcept = default;
    ~transaction() = default;  // closing lock_fd_ releases the flock

    std::optional<JobRecord> find(std::string_view m) const {
      if (const auto it = staged_.find(m); it != staged_.end()) return it->second;
      refresh();
      const auto node = machine_node(m);
      if (!node) return std::nullopt;
      return read_job(node);
    }

    std::vector<MachineInfo> machines() const {
      refresh();
      std::vector<MachineInfo> out;
      out.reserve(index_.size());
      for (pugi::xml_node m : root().children("machine")) {
        MachineInfo info;
        info.name = m.child("name").text().get();
        info.fields.reserve(24);  // the PHP tool's 21 fields, and a few more
        for (pugi::xml_node f : m.children()) {
          if (f.type() != pugi::node_element) continue;
          const std::string_view key = f.name();
          if (key == "name" || (key.starts_with("job") && job_field(key))) continue;
          info.fields.emplace_back(key, f.text().get());
        }
        const auto staged = staged_.find(info.name);
        info.job = staged != staged_.end() ? staged->second : read_job(m);
        out.push_back(std::move(info));
      }
      return out;
    }

    /// Stages `r` as the job fields of `m`: fields with text are set (a missing field is added
    /// after the other job fields, with its neighbours' indentation), empty fields are emptied
    /// (and not added when missing). Throws mama::error: unknown_machine, or invalid_argument
    /// for text that XML cannot hold (control characters; not UTF-8; U+FFFE, U+FFFF).
    void write(std::string_view m, const JobRecord& r) {
      refresh();
      if (!machine_node(m))
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
      }
      staged_.insert_or_assign(std::string(m), r);
    }

    std::optional<hold> try_hold(std::string_view m) {
      return shared_->try_hold(m, read_only_, file_);
    }

    /// Who still holds `m`'s hold: a live process other than this one with a descriptor on the
    /// machine's lock file that carries its lock (a job's processes that inherited it). Of
    /// several, the one that started first (ties: the lowest PID), which is the job's own
    /// process rather than one of its children. nullopt when none is found; another user's
    /// processes are seen only by root (/proc/PID/fd is readable by its owner and root).
    std::optional<ProcessIdentity> hold_owner(std::string_view m) const {
      struct stat lock {};
      const auto lock_path = file_.runtime / detail::lock_file_name(m);
      if (::lstat(lock_path.c_str(), &lock) != 0 || !S_ISREG(lock.st_mode)) return std::nullopt;
      return detail::find_flock_holder(lock.st_dev, lock.st_ino, static_cast<int>(::getpid()));
    }

    /// Saves what was staged (nothing when nothing changed). Throws mama::error; on failure the
    /// state file is left as it was, or is restored by the next access.
    void commit() {
      if (staged_.empty()) return;
      refresh();
      std::vector<Shared::span> edited;
      std::string next = shared_->splice(content_, index_, staged_, edited);
      if (next == content_) {
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
      for (const Shared::span& e : edited) {
        pugi::xml_document piece;
        const bool parsed =
            piece.load_buffer(next.data() + e.begin, e.end - e.begin, detail::xml_parse_flags);
        const pugi::xml_node m = piece.document_element();
        if (!parsed || std::string_view(m.name()) != "machine" ||
            e.machine != m.child("name").text().get() || read_job(m) != staged_.at(e.machine))
          throw error(errc::io_error, "internal error: the edited " + shared_->path.string() +
                                          " does not read back as written; it was not changed");
      }
      shared_->save(lock_fd_.get(), content_, next, file_);
      content_ = std::move(next);
      stale_ = true;  // offsets follow the old bytes: parse again if this transaction goes on
      staged_.clear();
    }

   private:
    friend class XmlStateStore;
    transaction() = default;

    pugi::xml_node root() const { return doc_->document_element(); }
    // After a commit the document is parsed again only when it is used again.
    void refresh() const {
      if (!stale_) return;
      shared_->parse(content_, *doc_, index_);
      stale_ = false;
    }
    pugi::xml_node machine_node(std::string_view m) const {
      const auto it = index_.find(std::string(m));
      if (it != index_.end() && !it->second)
        throw error(errc::bad_state_file, shared_->path.string() + " names machine '" +
                                              detail::escape_control(m) +
                                              "' twice; machine names must be unique: rename or "
                                              "remove one (mama left the file unchanged)");
      return it == index_.end() ? pugi::xml_node() : it->second;
    }
    // One pass over the machine's children (a sweep reads every machine): the first element
    // of each job field name wins, as pugixml's child(name) would find it.
    static JobRecord read_job(pugi::xml_node m) {
      JobRecord r;
      unsigned seen = 0;
      for (pugi::xml_node f = m.first_child(); f; f = f.next_sibling()) {
        const char* name = f.name();
        if (f.type() != pugi::node_element || name[0] != 'j' || name[1] != 'o' || name[2] != 'b')
          continue;
        for (std::size_t i = 0; i < job_field_names.size(); ++i) {
          if (job_field_names[i] != name) continue;
          if (!(seen & (1u << i))) r.*job_field_members[i] = f.text().get();
          seen |= 1u << i;
          break;
        }
      }
      return r;
    }

    std::shared_ptr<Shared> shared_;
    detail::unique_fd lock_fd_;  // holds the state lock
    std::string content_;        // the file as read (or last saved)
    std::unique_ptr<pugi::xml_document> doc_ = std::make_unique<pugi::xml_document>();
    mutable std::unordered_map<std::string, pugi::xml_node> index_;
    mutable bool stale_ = false;
    std::map<std::string, JobRecord, std::less<>> staged_;
    bool read_only_ = false;
    detail::opened_file file_;  // what begin() found: this transaction's own, never shared
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
    shared_->read(t.lock_fd_.get(), t.content_, t.file_);
    shared_->parse(t.content_, *t.doc_, t.index_);
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
    watcher w(shared_, shared_->take_inotify());
    const auto add = [&](const std::filesystem::path& p, std::uint32_t mask) {
      const int wd = ::inotify_add_watch(w.fd_, p.c_str(), mask);
      if (wd >= 0) w.wds_.push_back(wd);
    };
    const detail::opened_file f = shared_->peek();
    if (shared_->options.mode == XmlStoreOptions::lock_mode::standalone) {
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
  struct Shared {
    Shared(std::filesystem::path p, XmlStoreOptions o) : path(std::move(p)), options(std::move(o)) {
#ifdef MAMA_TEST_CRASH_HOOKS
      if (!options.crash_hook) {
        if (const char* at = std::getenv("MAMA_CRASH_AT")) {
          std::string step = at;
          options.crash_hook = [step](save_step s) {
            if (to_string(s) == step) ::kill(::getpid(), SIGKILL);
          };
        }
      }
#endif
    }
    ~Shared() {
      for (auto& [name, fd] : probe_fds) ::close(fd);
      for (int fd : idle_inotify) ::close(fd);
    }

    std::vector<int> idle_inotify;  // inotify descriptors of finished watchers, for reuse

    int take_inotify() {
      {
        std::lock_guard lock(mutex);
        if (!idle_inotify.empty()) {
          const int fd = idle_inotify.back();
          idle_inotify.pop_back();
          detail::drain_fd(fd);  // IN_IGNORED of the removed watches, stale wake-ups
          return fd;
        }
      }
      const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
      if (fd < 0) throw_errno("cannot watch " + path.string() + " (inotify_init1)");
      return fd;
    }

    void retire_inotify(int fd, const std::vector<int>& wds) noexcept {
      for (int wd : wds) ::inotify_rm_watch(fd, wd);  // unlike close(), does not wait
      std::lock_guard lock(mutex);
      try {
        idle_inotify.push_back(fd);
      } catch (...) {
        ::close(fd);
      }
    }

    std::filesystem::path path;  // as given
    XmlStoreOptions options;
    std::mutex mutex;     // guards probe_fds, idle_inotify, known_*
    dev_t known_dev = 0;  // the inode whose canonical path locate() found last
    ino_t known_ino = 0;
    std::filesystem::path known_canonical;
    std::map<std::string, int, std::less<>> probe_fds;  // lock files that were busy: reused, so
                                                        // a waiter's own probes do not wake it

    bool standalone() const noexcept {
      return options.mode == XmlStoreOptions::lock_mode::standalone;
    }
    std::string file() const { return path.string(); }

    void step(save_step s) const {
      if (options.crash_hook) options.crash_hook(s);
    }

    // Opens and, for standalone mode, creates the runtime directory; returns an O_PATH-like fd.
    detail::unique_fd runtime_dir_fd(const detail::opened_file& f, bool create) {
      detail::unique_fd dir(
          ::open(f.runtime.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (dir || !create || errno != ENOENT) {
        if (!dir && errno == ELOOP)
          throw error(errc::io_error, f.runtime.string() +
                                          " is a symbolic link; mama refuses to use it. "
                                          "Remove it (mama creates the directory itself)");
        if (dir && create && options.runtime_dir.empty()) adopt_group(dir.get(), f, 0);
        return dir;
      }
      // Directory mode follows the state file: its read bits become search bits.
      mode_t mode = f.st.st_mode & 0777;
      mode |= (mode & 0444) >> 2;
      if (::mkdir(f.runtime.c_str(), mode) != 0 && errno != EEXIST)
        throw_errno("cannot create " + f.runtime.string() +
                    " (lock files and the save journal of " + file() +
                    "); make its directory writable or set a runtime directory");
      detail::unique_fd made(
          ::open(f.runtime.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!made) throw_errno("cannot open " + f.runtime.string());
      ::fchmod(made.get(), mode);  // past the umask
      adopt_group(made.get(), f, mode);
      return made;
    }

    // The runtime directory takes the state file's group and the setgid bit, so that what
    // anyone creates in it (lock files, the journal, the CLI's audit log) gets that group, and
    // every user who may write mama.xml may use it. Also mends, where this user owns it, a
    // default `<file>.d` made before (by an older mama) without them (an explicit runtime_dir
    // that exists is left as its owner set it). `mode`: the permission bits it must have
    // besides (0: keep its own).
    void adopt_group(int dir, const detail::opened_file& f, mode_t mode) const {
      struct stat st {};
      if (::fstat(dir, &st) != 0 || st.st_uid != ::geteuid()) return;
      if (!mode && st.st_gid == f.st.st_gid && (st.st_mode & S_ISGID)) return;  // the usual case
      if (st.st_gid != f.st.st_gid && ::fchown(dir, -1, f.st.st_gid) != 0)
        return;  // not in the file's group: keep ours
      ::fchmod(dir, ((mode ? mode : st.st_mode) & 0777) | S_ISGID);
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

    void read(int lock_fd, std::string& content, detail::opened_file& f) {
      if (standalone()) {
        detail::unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!fd) {
          if (errno == ENOENT) throw_missing();
          throw_errno("cannot open " + file() + "; check its permissions");
        }
        if (::fstat(fd.get(), &f.st) != 0) throw_errno("cannot stat " + file());
        read_fd(fd.get(), content);
      } else {
        read_fd(lock_fd, content);
      }
    }

    void read_fd(int fd, std::string& content) const {
      if (!detail::pread_all(fd, content, options.max_file_size)) {
        if (errno == EFBIG)
          throw error(
              errc::bad_state_file,
              file() + " is larger than " + std::to_string(options.max_file_size >> 20) +
                  " MiB, far beyond any lab; it is not a mama state file, or raise max_file_size");
        throw_errno("cannot read " + file());
      }
    }

    void parse(const std::string& content, pugi::xml_document& doc,
               std::unordered_map<std::string, pugi::xml_node>& index) const {
      if (detail::is_blank(content))
        throw error(errc::bad_state_file,
                    file() + " is empty; restore it from a backup (mama left it unchanged)");
      if (content.rfind("</settings>") == std::string::npos)
        throw error(errc::bad_state_file,
                    file() +
                        " has no </settings>: it is truncated or not a mama state "
                        "file; restore it from a backup (mama left it unchanged)");
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
      index.clear();
      for (pugi::xml_node m : doc.document_element().children("machine")) {
        std::string name = m.child("name").text().get();
        if (name.empty()) continue;
        // A name used twice maps to no node: machines() shows both, find/write refuse it.
        if (const auto [it, added] = index.emplace(name, m); !added) it->second = pugi::xml_node();
      }
    }

    // The new file content: `content` with the job fields of each staged machine replaced.
    // Only the changed elements' bytes change; a missing field is inserted after the previous
    // job field (or the machine's last element), indented like that element.
    // Where an edited machine element lies in the new content.
    struct span {
      std::string machine;
      std::size_t begin, end;
    };

    // Also fills `edited` with the new extent of every machine element that changed.
    std::string splice(const std::string& content,
                       const std::unordered_map<std::string, pugi::xml_node>& index,
                       const std::map<std::string, JobRecord, std::less<>>& staged,
                       std::vector<span>& edited) const {
      struct edit {
        std::size_t begin, end;
        std::string text;
      };
      std::vector<edit> edits;
      const auto extent_of = [&](pugi::xml_node e) {
        const std::ptrdiff_t name_at = e.offset_debug();
        std::optional<detail::element_extent> x;
        if (name_at > 0) {
          const std::string_view name = e.name();
          if (std::string_view(content).substr(static_cast<std::size_t>(name_at)).starts_with(name))
            x = detail::find_element_extent(content, static_cast<std::size_t>(name_at) - 1);
        }
        if (!x)
          throw error(errc::io_error, "cannot locate <" + std::string(e.name()) + "> in " + file() +
                                          " to edit it; it was not changed (please report this)");
        return *x;
      };
      std::vector<span> old_extents;
      for (const auto& [machine, record] : staged) {
        const auto found = index.find(machine);
        if (found == index.end()) continue;
        const pugi::xml_node node = found->second;
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
              insert_at = extent_of(after).end;
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
          std::string_view start_tag =
              std::string_view(content).substr(x.begin, x.start_tag_end - x.begin);
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
          edits.push_back({x.begin, x.end, std::move(text)});
        }
        flush();
        if (edits.size() != edits_before) {
          const auto x = extent_of(node);
          old_extents.push_back({machine, x.begin, x.end});
        }
      }
      std::stable_sort(edits.begin(), edits.end(), [](const edit& a, const edit& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
      });
      // Every edit lies inside its machine element, so an old offset moves by the size change
      // of the edits that end at or before it.
      const auto moved = [&](std::size_t at) {
        std::ptrdiff_t delta = 0;
        for (const auto& e : edits)
          if (e.end <= at)
            delta += static_cast<std::ptrdiff_t>(e.text.size()) -
                     static_cast<std::ptrdiff_t>(e.end - e.begin);
        return static_cast<std::size_t>(static_cast<std::ptrdiff_t>(at) + delta);
      };
      for (const span& x : old_extents) edited.push_back({x.machine, moved(x.begin), moved(x.end)});
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

    // The journal: "MAMA-JOURNAL 2 <size> <checksum64 hex>\n" then the new content.
    void save(int lock_fd, const std::string& old_content, const std::string& content,
              const detail::opened_file& f) {
      if (standalone()) return save_by_rename(content, f);
      auto dir = runtime_dir_fd(f, true);
      if (!dir) throw_errno("cannot open " + f.runtime.string());
      char header[80];
      std::snprintf(header, sizeof header, "%.*s%zu %016llx\n",
                    static_cast<int>(detail::journal_magic.size()), detail::journal_magic.data(),
                    content.size(), static_cast<unsigned long long>(detail::checksum64(content)));
      ::unlinkat(dir.get(), "journal.tmp", 0);  // left by a crash; we hold the state lock
      {
        detail::unique_fd j(::openat(dir.get(), "journal.tmp",
                                     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                     f.st.st_mode & 0666));
        if (!j)
          throw_errno("cannot create the save journal in " + f.runtime.string() + "; " + file() +
                      " was not changed");
        // The journal holds the state: readable by exactly those who may read mama.xml.
        if (::fchown(j.get(), -1, f.st.st_gid) != 0) {
          // Not in the file's group: keep our group, still no wider than the file.
        }
        ::fchmod(j.get(), f.st.st_mode & 0666);
        if (!detail::pwrite_all(j.get(), header, 0) ||
            !detail::pwrite_all(j.get(), content, static_cast<off_t>(std::strlen(header))) ||
            (options.sync && ::fsync(j.get()) != 0)) {
          const int saved = errno;
          ::unlinkat(dir.get(), "journal.tmp", 0);
          errno = saved;
          throw_errno("cannot write the save journal in " + f.runtime.string() + "; " + file() +
                      " was not changed");
        }
      }
      step(save_step::journal_written);
      if (::renameat(dir.get(), "journal.tmp", dir.get(), "journal") != 0)
        throw_errno("cannot put the save journal in place in " + f.runtime.string() + "; " +
                    file() + " was not changed");
      if (options.sync) ::fsync(dir.get());
      step(save_step::journal_renamed);
      if (!rewrite(lock_fd, old_content, content)) {
        const int saved = errno;
        // Put the old content back: the file still starts with the bytes old and new share, so
        // rewriting "from new to old" rewrites just the rest. If even that fails, the journal
        // restores the new content on the next access.
        if (rewrite(lock_fd, content, old_content)) ::unlinkat(dir.get(), "journal", 0);
        errno = saved;
        throw_errno("cannot write " + file());
      }
      step(save_step::file_written);
      ::unlinkat(dir.get(), "journal", 0);
      step(save_step::journal_removed);
    }

    // Cut the file after the bytes it shares with the new content, then write the rest. The cut
    // always falls before the closing </settings> (job fields live inside it), so a reader that
    // sees an unfinished rewrite sees a prefix of the new content without </settings>, which PHP
    // and we refuse rather than misread, and which recover() completes. Never cutting to zero
    // also keeps ext4 from forcing a flush of the whole file on close (its auto_da_alloc rule
    // for files truncated to zero), which made every save wait for the disk.
    bool rewrite(int fd, std::string_view current, std::string_view content) const {
      std::size_t keep = 0;
      const std::size_t limit = std::min(current.size(), content.size());
      while (keep < limit && current[keep] == content[keep]) ++keep;
      if (keep == content.size() && keep == current.size()) return true;
      const auto close_tag = std::min(current.rfind("</settings>"), content.rfind("</settings>"));
      if (close_tag != std::string_view::npos) keep = std::min(keep, close_tag);
      if (::ftruncate(fd, static_cast<off_t>(keep)) != 0) return false;
      step(save_step::file_truncated);
      std::string_view rest = content.substr(keep);
      if (options.crash_hook && rest.size() > 1) {
        const auto half = rest.size() / 2;
        if (!detail::pwrite_all(fd, rest.substr(0, half), static_cast<off_t>(keep))) return false;
        step(save_step::file_half_written);
        if (!detail::pwrite_all(fd, rest.substr(half), static_cast<off_t>(keep + half)))
          return false;
      } else if (!detail::pwrite_all(fd, rest, static_cast<off_t>(keep))) {
        return false;
      }
      return !options.sync || ::fdatasync(fd) == 0;
    }

    void save_by_rename(const std::string& content, const detail::opened_file& f) {
      // Beside the real file: a symbolic link named as the state file stays a link to it.
      const auto dir_path = f.canonical.parent_path();
      detail::unique_fd dir(::open(dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!dir) throw_errno("cannot open the directory of " + file());
      // One fixed name: we hold the state lock, so a leftover is from a killed saver and goes.
      const std::string tmp = "." + f.canonical.filename().string() + ".mama-tmp";
      ::unlinkat(dir.get(), tmp.c_str(), 0);
      detail::unique_fd t(::openat(dir.get(), tmp.c_str(),
                                   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (!t)
        throw_errno("cannot create a temporary file beside " + file() + "; it was not changed");
      bool ok = ::fchmod(t.get(), f.st.st_mode & 07777) == 0;
      if (::fchown(t.get(), f.st.st_uid, f.st.st_gid) != 0)
        ok = ::fchown(t.get(), -1, f.st.st_gid) == 0 || true;  // not root: keep what we can
      ok =
          ok && detail::pwrite_all(t.get(), content, 0) && (!options.sync || ::fsync(t.get()) == 0);
      if (ok) step(save_step::file_written);
      if (!ok ||
          ::renameat(dir.get(), tmp.c_str(), dir.get(), f.canonical.filename().c_str()) != 0) {
        const int saved = errno;
        ::unlinkat(dir.get(), tmp.c_str(), 0);
        errno = saved;
        throw_errno("cannot save " + file() + "; it was not changed");
      }
      if (options.sync) ::fsync(dir.get());
      step(save_step::journal_removed);
    }

    // Finishes or discards a save that a killed process left half done (see the top comment).
    void recover(int lock_fd, bool read_only, const detail::opened_file& f) {
      if (standalone()) return;
      auto dir = runtime_dir_fd(f, false);
      if (!dir) return;
      detail::unique_fd j(::openat(dir.get(), "journal", O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      if (!j) return;
      std::string journal;
      const bool readable = detail::pread_all(j.get(), journal, options.max_file_size + 100);
      const auto nl = journal.find('\n');
      std::string_view content;
      bool valid = false;
      if (readable && nl != std::string::npos && journal.starts_with(detail::journal_magic)) {
        unsigned long long size = 0, hash = 0;
        if (std::sscanf(journal.c_str() + detail::journal_magic.size(), "%llu %llx", &size,
                        &hash) == 2) {
          content = std::string_view(journal).substr(nl + 1);
          valid = content.size() == size && detail::checksum64(content) == hash;
        }
      }
      if (!valid) {
        if (!read_only) ::unlinkat(dir.get(), "journal", 0);  // never reached mama.xml
        return;
      }
      std::string current;
      read_fd(lock_fd, current);
      if (current != content && std::string_view(content).starts_with(current)) {
        if (read_only)
          throw error(errc::bad_state_file,
                      file() +
                          " was left half-written by a killed process; run any mama command as "
                          "a user who may write it to restore it from " +
                          (f.runtime / "journal").string());
        if (!rewrite(lock_fd, current, content))
          throw_errno("cannot restore " + file() + " from its journal");
      }
      if (!read_only) ::unlinkat(dir.get(), "journal", 0);
    }

    // Takes machine's lock file without blocking. A read-only caller that cannot create the
    // file gets an empty hold: no lock file means no holder ever took it.
    std::optional<hold> try_hold(std::string_view machine, bool read_only,
                                 const detail::opened_file& f, bool create_only = false) {
      const std::string name = detail::lock_file_name(machine);
      const std::string key = (f.runtime / name).string();  // for probe_fds
      int fd = -1;
      if (!create_only) {
        std::lock_guard lock(mutex);
        if (const auto it = probe_fds.find(key); it != probe_fds.end()) {
          fd = it->second;
          probe_fds.erase(it);
        }
      }
      if (fd < 0) {
        auto dir = runtime_dir_fd(f, !read_only);
        if (!dir) {
          if (read_only || create_only) return hold(detail::unique_fd());
          throw_errno("cannot open " + f.runtime.string());
        }
        // Open an existing lock file, else create it (O_EXCL: never through a planted link).
        fd = ::openat(dir.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && !read_only) {
          fd = ::openat(dir.get(), name.c_str(),
                        O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, f.st.st_mode & 0444);
          if (fd >= 0) {
            // Lock files are only ever opened for reading: read bits of mama.xml, no umask.
            if (::fchown(fd, -1, f.st.st_gid) != 0) {
            }
            ::fchmod(fd, f.st.st_mode & 0444);
          } else if (errno == EEXIST) {
            fd = ::openat(dir.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
          }
        }
        if (fd < 0) {
          if (errno == ENOENT && (read_only || create_only)) return hold(detail::unique_fd());
          if (errno == ELOOP)
            throw error(errc::io_error,
                        "the lock file " + (f.runtime / name).string() +
                            " is a symbolic link; mama refuses to follow it. Remove it");
          throw_errno("cannot open the lock file " + (f.runtime / name).string() +
                      "; check the permissions of " + f.runtime.string());
        }
        struct stat st {};
        if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
          ::close(fd);
          throw error(errc::io_error, "the lock file " + (f.runtime / name).string() +
                                          " is not a regular file; remove it");
        }
      }
      if (create_only) {
        ::close(fd);
        return std::nullopt;
      }
      if (detail::flock_retry(fd, LOCK_EX | LOCK_NB) == 0) {
        // Ours: let the job's child processes inherit it.
        ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) & ~FD_CLOEXEC);
        return hold(detail::unique_fd(fd));
      }
      const int saved = errno;
      if (saved != EWOULDBLOCK) {
        ::close(fd);
        errno = saved;
        throw_errno("cannot lock " + (f.runtime / name).string());
      }
      std::lock_guard lock(mutex);
      if (probe_fds.size() < 64 && probe_fds.emplace(key, fd).second) return std::nullopt;
      ::close(fd);
      return std::nullopt;
    }
  };

  std::shared_ptr<Shared> shared_;
};
static_assert(state_store<XmlStateStore>);

}  // namespace mama
