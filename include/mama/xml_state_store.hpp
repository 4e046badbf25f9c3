// mama/xml_state_store.hpp — the StateStore on mama.xml, beside the PHP mama tool.
//
// The only header that includes pugixml. It composes the store from parts that each stand
// alone (and are tested alone) under include/mama/detail/xml/, none of which includes pugixml:
//   state_file.hpp  what a transaction knows of the opened file; reading it; standalone save
//   journal.hpp     the save journal: format, journaled in-place save, replay/discard recovery
//                   (tests/journal_test.cpp)
//   splice.hpp      element extents in the bytes, and applying byte edits (the splicer)
//   lock_files.hpp  the runtime directory `<file>.d/`, per-machine lock files, who holds one
//   inotify.hpp     the pool of inotify descriptors for waiters
// This header keeps what needs the parsed document: open/lock, parse and validate, find/
// machines/write, planning a save's edits and checking them, and the public types.
//
// Contract (SPEC §2, invariants I3 and I5):
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

#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
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
#include "mama/detail/xml/inotify.hpp"
#include "mama/detail/xml/journal.hpp"
#include "mama/detail/xml/lock_files.hpp"
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
  /// Test-only: called at each step of a save (a crash test kills the process there).
  std::function<void(SaveStep)> crash_hook;
};

namespace detail {

inline constexpr unsigned xml_parse_flags =
    (pugi::parse_cdata | pugi::parse_escapes | pugi::parse_declaration | pugi::parse_doctype |
     pugi::parse_comments | pugi::parse_pi | pugi::parse_ws_pcdata);

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
      return detail::lock_file_holder(file_.runtime, m);
    }

    /// Saves what was staged (nothing when nothing changed). Throws mama::error; on failure the
    /// state file is left as it was, or is restored by the next access.
    void commit() {
      if (staged_.empty()) return;
      refresh();
      std::vector<detail::element_span> edited;
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
      for (const detail::element_span& e : edited) {
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
    detail::inotify_pool inotify;  // descriptors of finished watchers, for reuse
    detail::lock_files locks;      // machines' lock files (the busy ones kept open)
    std::mutex mutex;              // guards known_*
    dev_t known_dev = 0;           // the inode whose canonical path locate() found last
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
                                 const detail::opened_file& f, bool create_only = false) {
      auto fd = locks.try_lock(machine, read_only, f, create_only, options.runtime_dir.empty(),
                               file_name);
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
      detail::read_state_bytes(fd, content, io());
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
    // job field (or the machine's last element), indented like that element. The edits are
    // planned here from the document and applied to the bytes by detail/xml/splice.hpp.
    // Also fills `edited` with the new extent of every machine element that changed.
    std::string splice(const std::string& content,
                       const std::unordered_map<std::string, pugi::xml_node>& index,
                       const std::map<std::string, JobRecord, std::less<>>& staged,
                       std::vector<detail::element_span>& edited) const {
      std::vector<detail::byte_edit> edits;
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
      std::vector<detail::element_span> old_extents;
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
      return detail::apply_edits(content, edits, old_extents, edited);
    }

    // A save: the journaled rewrite in place (detail/xml/journal.hpp), or in standalone mode a
    // rename over the file.
    void save(int lock_fd, const std::string& old_content, const std::string& content,
              const detail::opened_file& f) {
      if (standalone()) return detail::save_by_rename(content, f, io());
      auto dir = runtime_dir_fd(f, true);
      if (!dir) throw_errno("cannot open " + f.runtime.string());
      detail::journaled_save(dir.get(), lock_fd, old_content, content, f, io());
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
