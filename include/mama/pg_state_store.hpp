// mama/pg_state_store.hpp — the StateStore policy on a PostgreSQL server (libpq).
//
// For labs driven from several controller hosts: machine records live in tables, claims and
// releases are transactions, and liveness needs no PIDs. Contract:
//
// - Records: one row per machine in `mama_machine` (name, position, the seven job fields as
//   columns) and the machine's other fields, in order, in `mama_field` (see import_xml in
//   <mama/pg_import_export.hpp> for moving a mama.xml there). `mama_hold` keeps, per claimed
//   machine, when its holder last confirmed its hold and the holder's deadline and kill grace.
// - Critical section: find(m) reads m's row with SELECT ... FOR UPDATE, so deciding and writing
//   happen under the row lock inside one transaction; commit() writes the staged rows, sends a
//   notification and commits; a transaction destroyed without commit() rolls back. machines()
//   locks every row (after a lab-wide advisory lock, so two whole-lab readers never deadlock).
//   begin_read() is for views: one REPEATABLE READ READ ONLY snapshot, no row locks, so looking
//   at the lab never blocks a claim.
// - Holds: try_hold(m) takes the session-level advisory lock (lock_space, machine id) on a
//   connection of its own, which the hold owns. The server drops the lock when that session
//   ends: the holder released, its process died (the kernel closes the socket), its host died
//   or its connection was cut (TCP keepalives on both ends notice within seconds). So the hold
//   says whether the holder lives on *any* host: exact_liveness() and holds_span_hosts() are
//   true. The hold's socket is inherited by the job's child processes (not close-on-exec), as
//   the mama.xml store's lock files are, so a machine stays busy while they run.
// - Wake-ups: watch(m) LISTENs on channel `mama_state`; its fd() is the socket of that session.
//   A dead holder sends nothing: waiters see it at their next poll (GuardOptions::poll_interval).
//
// Holders watch their holds (a lease, as in Chubby or etcd). A lock that the server dropped
// because the network was cut would otherwise pass to a waiter while the cut-off holder's job
// still runs. So, once a claim is committed, a thread of the hold confirms it every
// `heartbeat_period_ms`: one statement that, only while this session holds the advisory lock,
// sets `mama_hold.confirmed = clock_timestamp()` (the server's clock) and returns the record's
// token. The holder counts its deadline from the moment it *sent* its last confirmed heartbeat
// (its own monotonic clock), so its deadline ends no later than `confirmed + deadline` on the
// server's time line. A heartbeat without an answer within `confirm_timeout_ms` abandons that
// connection; the thread then reconnects with fresh connections, ends its own old server session
// if that still holds the lock, takes the lock again and checks that the record still carries its
// token. A holder that gets there before its deadline keeps the machine (a short blip or a server
// restart does not end the job). One that cannot, or finds the record cleared or claimed by
// someone else, has *lost* the claim: hold::on_lost callbacks (and PgStoreOptions::on_lost) run
// once, from the hold's thread; the owner ends the job within `kill_grace_ms`.
//
// The other side: a waiter that gets a free advisory lock on a machine whose record carries a
// token takes it only when the server's clock_timestamp() is past
//   confirmed + deadline + grace (both from mama_hold, i.e. the holder's own) + takeover_margin
// (the waiter's). Until then try_hold() says "held". So a holder that lost contact has given up
// (deadline) and ended its job (grace) before any other host can start one; only the server's
// clock is compared with itself, and the holder measures only durations. Defaults: heartbeat
// 1 s, deadline 10 s, grace 5 s, margin 2 s: a cut-off holder's job ends within 15 s of its last
// confirmation, another host starts no sooner than 17 s after it. Honest limits: a job process
// that cannot die (uninterruptible I/O, D state), one that left the process group its owner
// kills, or a holder process stopped with SIGSTOP (its thread cannot act) can outlive its
// deadline; the margin does not cover those. See tests/pg/README.md for the argument in full.
//
// Fork: a hold, a transaction, a watcher or a store used in a process other than the one that
// made it (a fork child, e.g. a death test) does nothing on destruction: it neither unlocks nor
// ends the parent's sessions (no libpq Terminate on the parent's sockets); the child leaks them.
//
//   mama::PgStateStore store("postgresql://mama@db.lab/mama");
//   mama::StaleJobGuard<mama::SystemClock, mama::ProcProbe, mama::PgStateStore> g(store, "m1");
//
// Copies share one connection pool. Thread-safe like the other stores: one transaction per
// thread. After fork(), a child must make its own store (libpq connections are not shared).
#pragma once

#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mama/detail/text.hpp"
#include "mama/error.hpp"
#include "mama/record.hpp"
#include "mama/state_store.hpp"

namespace mama {

/// How the PostgreSQL store connects, how holders watch their holds, and how fast a dead
/// holder's machine passes to a waiter (see the top of this header for the timing argument).
struct PgStoreOptions {
  /// TCP keepalives of hold connections, set on both ends (libpq on the client, the
  /// tcp_keepalives_* settings of the server session): a holder whose host died or whose
  /// network is gone loses its lock after about idle + interval * count seconds.
  int keepalive_idle_s = 3;
  int keepalive_interval_s = 1;
  int keepalive_count = 3;
  /// TCP_USER_TIMEOUT, both ends: unacknowledged data for this long drops the connection.
  int tcp_user_timeout_ms = 6000;
  /// libpq connect_timeout for every connection, seconds.
  int connect_timeout_s = 10;
  /// First key of the advisory locks (the second is the machine id). Change it only when another
  /// application uses the same two-key advisory locks in this database.
  std::int32_t lock_space = 0x6d616d61;  // "mama"
  /// Create the tables on first use when they are missing (and add mama_hold to older ones).
  bool create_schema = true;

  /// A holder confirms its hold this often.
  int heartbeat_period_ms = 1000;
  /// A holder without a confirmed heartbeat for this long has lost its claim (counted from the
  /// sending of the last confirmed one). Blips and server restarts shorter than this keep jobs.
  int hold_deadline_ms = 10000;
  /// The time the holder's owner needs to end its job after the loss (mama run: TERM, its
  /// grace, KILL). Travels with the claim; waiters add it to their wait.
  int kill_grace_ms = 5000;
  /// A waiter's own extra wait beyond the holder's deadline + grace (scheduling, clock rate).
  int takeover_margin_ms = 2000;
  /// One heartbeat or one step of a reconnection that takes longer than this gives up the
  /// connection it runs on (a new one is tried until the deadline).
  int confirm_timeout_ms = 2000;
  /// Called (from the hold's thread) when any hold of this store is lost: machine, reason.
  std::function<void(const std::string& machine, const std::string& reason)> on_lost;
};

/// `base` with the lease timings taken from the environment where set (whole milliseconds):
/// MAMA_PG_HEARTBEAT_MS, MAMA_PG_DEADLINE_MS, MAMA_PG_GRACE_MS, MAMA_PG_MARGIN_MS. Throws
/// mama::error (invalid_argument) naming the variable for a value that is not a positive number.
inline PgStoreOptions pg_options_from_env(PgStoreOptions base = {}) {
  const auto take = [](const char* name, int& into) {
    const char* v = std::getenv(name);
    if (!v || !*v) return;
    char* end = nullptr;
    errno = 0;
    const long n = std::strtol(v, &end, 10);
    if (errno || *end || n <= 0 || n > 3600 * 1000)
      throw error(errc::invalid_argument,
                  std::string(name) + "='" + detail::escape_control(v) +
                      "' is not a number of milliseconds (1 to 3600000); fix or unset it");
    into = static_cast<int>(n);
  };
  take("MAMA_PG_HEARTBEAT_MS", base.heartbeat_period_ms);
  take("MAMA_PG_DEADLINE_MS", base.hold_deadline_ms);
  take("MAMA_PG_GRACE_MS", base.kill_grace_ms);
  take("MAMA_PG_MARGIN_MS", base.takeover_margin_ms);
  return base;
}

namespace detail {

/// Ends a libpq connection, but only in the process that made it: a fork child that destroys an
/// inherited connection must not send the server a Terminate for its parent's session.
struct PgConnFree {
  pid_t owner = ::getpid();
  void operator()(PGconn* c) const noexcept {
    if (::getpid() == owner) ::PQfinish(c);
  }
};
struct PgResultFree {
  void operator()(PGresult* r) const noexcept { ::PQclear(r); }
};
using pg_conn = std::unique_ptr<PGconn, PgConnFree>;
using pg_result = std::unique_ptr<PGresult, PgResultFree>;

/// `postgresql://user@host:port/dbname` for messages: never the password.
inline std::string pg_describe(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = ::PQconninfoParse(conninfo.c_str(), &err);
  if (!opts) {
    if (err) ::PQfreemem(err);
    return "PostgreSQL database (unparsable connection string)";
  }
  std::string user, host, port, db;
  for (auto* o = opts; o->keyword; ++o) {
    if (!o->val) continue;
    const std::string_view k = o->keyword;
    if (k == "user")
      user = o->val;
    else if (k == "host" || (k == "hostaddr" && host.empty()))
      host = o->val;
    else if (k == "port")
      port = o->val;
    else if (k == "dbname")
      db = o->val;
  }
  ::PQconninfoFree(opts);
  std::string out = "postgresql://";
  if (!user.empty()) out += user + "@";
  out += host.empty() ? std::string("localhost") : host;
  if (!port.empty()) out += ":" + port;
  out += "/" + db;
  return out;
}

/// `text` as an SQL literal, quoted by libpq for the session `c` (PQescapeLiteral, so right for
/// any standard_conforming_strings). Text with NUL bytes cannot be stored in PostgreSQL and is
/// cut there. Throws mama::error when libpq refuses (e.g. bytes invalid in the encoding).
inline std::string pg_quote(PGconn* c, std::string_view text) {
  const std::size_t n = std::min(text.size(), text.find('\0'));
  char* q = ::PQescapeLiteral(c, text.data(), n);
  if (!q)
    throw error(errc::invalid_argument, "cannot quote '" + escape_control(text.substr(0, n)) +
                                            "' for PostgreSQL: " + ::PQerrorMessage(c));
  std::string out(q);
  ::PQfreemem(q);
  return out;
}

using pg_clock = std::chrono::steady_clock;

/// Waits until `fd` is ready for `events` or `wake` is readable or `until` passes. Returns
/// 1 ready, 0 timed out, -1 woken or failed.
inline int pg_wait_fd(int fd, short events, pg_clock::time_point until, int wake) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(until - pg_clock::now()).count();
    if (left <= 0) return 0;
    pollfd p[2] = {{fd, events, 0}, {wake, POLLIN, 0}};
    const int n = ::poll(p, wake >= 0 ? 2 : 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (wake >= 0 && p[1].revents) return -1;
    if (n > 0 && p[0].revents) return 1;
  }
}

/// Runs `sql` (one or more statements) on `c`, which must be in non-blocking mode, waiting for
/// its results no longer than `until`. The last result when every statement succeeded; null on
/// a failure, a broken connection or a timeout (the connection is then not usable further).
inline pg_result pg_exec_until(PGconn* c, const std::string& sql, pg_clock::time_point until,
                               int wake) {
  if (!::PQsendQuery(c, sql.c_str())) return {};
  for (;;) {
    const int f = ::PQflush(c);
    if (f == 0) break;
    if (f < 0) return {};
    if (pg_wait_fd(::PQsocket(c), POLLIN | POLLOUT, until, wake) != 1) return {};
    if (!::PQconsumeInput(c)) return {};
  }
  pg_result last;
  bool failed = false;
  for (;;) {
    if (!::PQconsumeInput(c)) return {};
    while (!::PQisBusy(c)) {
      PGresult* r = ::PQgetResult(c);
      if (!r) return failed ? pg_result() : std::move(last);
      const auto st = ::PQresultStatus(r);
      if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) failed = true;
      last.reset(r);
    }
    if (pg_wait_fd(::PQsocket(c), POLLIN, until, wake) != 1) return {};
  }
}

/// True when process `pid` is `ancestor` or one of its descendants (Linux /proc).
inline bool pg_descends_from(int pid, int ancestor) {
  for (int hops = 0; pid > 1 && hops < 64; ++hops) {
    if (pid == ancestor) return true;
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto close = stat.rfind(')');
    if (close == std::string::npos) return false;
    std::istringstream rest(stat.substr(close + 1));
    std::string state;
    int ppid = 0;
    if (!(rest >> state >> ppid)) return false;
    pid = ppid;
  }
  return pid == ancestor;
}

class PgSql;

}  // namespace detail

/// The PostgreSQL store (see the top of this header).
class PgStateStore {
  struct Shared;
  struct HoldState;
  friend class detail::PgSql;  // raw SQL, for import/export and tests

 public:
  /// A claim's session-level advisory lock on one machine, on a connection of its own. Destroying
  /// it unlocks (and wakes waiters); if the connection is gone the server has unlocked already.
  /// Once a claim through it is committed, its thread confirms it (see the top of this header).
  /// In a process other than the one that took it, destroying it does nothing.
  class hold {
   public:
    hold(hold&& o) noexcept = default;
    hold& operator=(hold&& o) noexcept {
      if (this != &o) {
        release();
        state_ = std::move(o.state_);
      }
      return *this;
    }
    ~hold() { release(); }

    /// The server process of the session that holds the lock (for tests and diagnostics).
    int backend_pid() const noexcept {
      if (!state_) return 0;
      std::lock_guard lock(state_->mutex);
      return state_->conn ? ::PQbackendPID(state_->conn.get()) : 0;
    }
    /// The socket of that session (-1 when released or lost).
    int fd() const noexcept {
      if (!state_) return -1;
      std::lock_guard lock(state_->mutex);
      return state_->conn ? ::PQsocket(state_->conn.get()) : -1;
    }
    /// Calls `fn(reason)` once, from the hold's thread, when the claim is lost (at once when it
    /// is lost already). Replaces an earlier callback.
    void on_lost(std::function<void(std::string reason)> fn) {
      if (!state_) return;
      std::string reason;
      {
        std::lock_guard lock(state_->mutex);
        if (!state_->lost) {
          state_->on_lost = std::move(fn);
          return;
        }
        reason = state_->lost_reason;
      }
      if (fn) fn(reason);
    }
    /// True once the hold could not be confirmed within its deadline (or the record was cleared
    /// or taken); the job must then end.
    bool lost() const noexcept {
      if (!state_) return false;
      std::lock_guard lock(state_->mutex);
      return state_->lost;
    }
    /// Why it was lost (empty while it is not).
    std::string lost_reason() const {
      if (!state_) return {};
      std::lock_guard lock(state_->mutex);
      return state_->lost_reason;
    }
    /// Time since the sending of the last confirmed heartbeat (or of the taking of the lock).
    std::chrono::milliseconds since_confirmed() const noexcept {
      if (!state_) return {};
      std::lock_guard lock(state_->mutex);
      return std::chrono::duration_cast<std::chrono::milliseconds>(detail::pg_clock::now() -
                                                                   state_->last_ok);
    }

   private:
    friend class PgStateStore;
    explicit hold(std::shared_ptr<HoldState> s) : state_(std::move(s)) {}
    void release() noexcept {
      if (!state_) return;
      if (::getpid() != state_->owner) {
        // A fork child: the lock, the session and the thread are the parent's. Leak our copy.
        new std::shared_ptr<HoldState>(std::move(state_));
        return;
      }
      state_->stop_thread();
      state_->shared->forget(state_->id, state_.get());
      std::lock_guard lock(state_->mutex);
      if (state_->conn) {
        const std::string space = std::to_string(state_->shared->options.lock_space);
        const std::string id = std::to_string(state_->id);
        // Released by its owner, not lost: the claim is over, so no waiter need wait out its
        // lease (and the guard's own look for leftover holders right after gets the lock).
        std::string sql = "DELETE FROM mama_hold WHERE machine_id = " + id +
                          "; SELECT pg_advisory_unlock(" + space + ", " + id + ")";
        try {
          sql += "; SELECT pg_notify('mama_state', " +
                 detail::pg_quote(state_->conn.get(), state_->machine) + ")";
        } catch (...) {
        }
        ::PQsetnonblocking(state_->conn.get(), 0);
        detail::pg_result r(::PQexec(state_->conn.get(), sql.c_str()));
        if (r && ::PQresultStatus(r.get()) == PGRES_TUPLES_OK && !state_->lost)
          state_->shared->give_back_hold(std::move(state_->conn));
        state_->conn.reset();
      }
      state_.reset();
    }
    std::shared_ptr<HoldState> state_;
  };

  /// A LISTEN session on channel mama_state: readable when a machine was claimed or released.
  class watcher {
   public:
    watcher(watcher&&) noexcept = default;
    watcher& operator=(watcher&&) noexcept = default;
    /// The session's socket; -1 once the session broke (the guard then polls).
    int fd() const noexcept { return conn_ && !broken_ ? ::PQsocket(conn_.get()) : -1; }
    void drain() noexcept {
      if (!conn_ || broken_) return;
      if (!::PQconsumeInput(conn_.get())) {
        broken_ = true;
        return;
      }
      while (PGnotify* n = ::PQnotifies(conn_.get())) ::PQfreemem(n);
    }

   private:
    friend class PgStateStore;
    explicit watcher(detail::pg_conn c) : conn_(std::move(c)) {}
    detail::pg_conn conn_;
    bool broken_ = false;
  };

  /// One transaction on the lab's tables.
  class transaction {
   public:
    transaction(transaction&&) noexcept = default;
    transaction& operator=(transaction&& o) noexcept {
      if (this != &o) {
        finish();
        shared_ = std::move(o.shared_);
        conn_ = std::move(o.conn_);
        open_ = std::exchange(o.open_, false);
        read_only_ = o.read_only_;
        ids_ = std::move(o.ids_);
        staged_ = std::move(o.staged_);
      }
      return *this;
    }
    ~transaction() { finish(); }

    /// m's job fields, read under m's row lock (in a read transaction: from its snapshot);
    /// nullopt when there is no machine m.
    std::optional<JobRecord> find(std::string_view m) const {
      auto r = query(std::string("SELECT id, job, job_pid, job_timestamp, job_host, job_boot_id, "
                                 "job_start, job_token FROM mama_machine WHERE name = $1") +
                         (read_only_ ? "" : " FOR UPDATE"),
                     {std::string(m)});
      if (::PQntuples(r.get()) == 0) return std::nullopt;
      ids_[std::string(m)] = std::stoll(::PQgetvalue(r.get(), 0, 0));
      JobRecord rec;
      for (std::size_t i = 0; i < job_field_members.size(); ++i)
        rec.*job_field_members[i] = ::PQgetvalue(r.get(), 0, static_cast<int>(i) + 1);
      return rec;
    }

    /// Every machine in lab order, each row locked until the transaction ends (in a read
    /// transaction: the snapshot, nothing locked).
    std::vector<MachineInfo> machines() const {
      if (!read_only_)
        query("SELECT pg_advisory_xact_lock(" + std::to_string(shared_->options.lock_space) +
                  "::bigint)",
              {});
      auto r =
          query(std::string("SELECT m.id, m.name, m.job, m.job_pid, m.job_timestamp, m.job_host, "
                            "m.job_boot_id, m.job_start, m.job_token, f.key, f.value FROM "
                            "mama_machine m LEFT JOIN mama_field f ON f.machine_id = m.id AND "
                            "f.value IS NOT NULL ORDER BY m.position, m.id, f.position") +
                    (read_only_ ? "" : " FOR UPDATE OF m"),
                {});
      std::vector<MachineInfo> out;
      std::int64_t last = -1;
      for (int row = 0; row < ::PQntuples(r.get()); ++row) {
        const std::int64_t id = std::stoll(::PQgetvalue(r.get(), row, 0));
        if (id != last) {
          last = id;
          MachineInfo info;
          info.name = ::PQgetvalue(r.get(), row, 1);
          for (std::size_t i = 0; i < job_field_members.size(); ++i)
            info.job.*job_field_members[i] = ::PQgetvalue(r.get(), row, static_cast<int>(i) + 2);
          ids_[info.name] = id;
          out.push_back(std::move(info));
        }
        if (!::PQgetisnull(r.get(), row, 9))
          out.back().fields.emplace_back(::PQgetvalue(r.get(), row, 9),
                                         ::PQgetvalue(r.get(), row, 10));
      }
      return out;
    }

    /// Stages `r` as m's job fields (saved by commit()). Throws unknown_machine, and
    /// invalid_argument in a read transaction.
    void write(std::string_view m, const JobRecord& r) {
      if (read_only_)
        throw error(errc::invalid_argument, "cannot write machine '" + detail::escape_control(m) +
                                                "' in " + shared_->describe +
                                                ": the transaction is read-only (begin_read)");
      id_of(m);
      for (auto& [name, rec] : staged_)
        if (name == m) {
          rec = r;
          return;
        }
      staged_.emplace_back(std::string(m), r);
    }

    /// m's advisory lock on a session of its own, if nobody holds it and no holder that lost
    /// contact may still be ending its job; nullopt when held.
    std::optional<hold> try_hold(std::string_view m) {
      const std::int64_t id = id_of(m, /*lock=*/false);
      return shared_->try_hold(shared_, id, std::string(m));
    }

    /// True in a transaction from begin_read().
    bool read_only() const noexcept { return read_only_; }

    /// Writes the staged records, notifies waiters and commits (nothing when nothing is staged).
    /// A claim of a machine whose hold this process took starts that hold's heartbeat. Throws
    /// mama::error; on failure nothing was saved.
    void commit() {
      if (staged_.empty()) return;
      ensure_open();
      PGconn* c = conn_.get();
      const auto& o = shared_->options;
      std::string sql;
      std::vector<std::pair<std::shared_ptr<HoldState>, const JobRecord*>> claims;
      for (const auto& [name, rec] : staged_) {
        const std::string id = std::to_string(ids_.at(name));
        sql += "UPDATE mama_machine SET ";
        for (std::size_t i = 0; i < job_field_names.size(); ++i) {
          if (i) sql += ", ";
          sql += job_field_names[i];
          sql += " = " + detail::pg_quote(c, rec.*job_field_members[i]);
        }
        sql += " WHERE id = " + id + ";\n";
        auto held = shared_->held(ids_.at(name));
        if (rec.token.empty()) {
          sql += "DELETE FROM mama_hold WHERE machine_id = " + id + ";\n";
        } else if (held) {
          sql += "INSERT INTO mama_hold (machine_id, confirmed, deadline_ms, grace_ms) VALUES (" +
                 id + ", clock_timestamp(), " + std::to_string(o.hold_deadline_ms) + ", " +
                 std::to_string(o.kill_grace_ms) +
                 ") ON CONFLICT (machine_id) DO UPDATE SET confirmed = EXCLUDED.confirmed, "
                 "deadline_ms = EXCLUDED.deadline_ms, grace_ms = EXCLUDED.grace_ms;\n";
        }
        if (held) claims.emplace_back(std::move(held), &rec);
        sql += "SELECT pg_notify('mama_state', " + detail::pg_quote(c, name) + ");\n";
      }
      sql += "COMMIT";
      detail::pg_result r(::PQexec(c, sql.c_str()));
      open_ = false;
      if (!r || ::PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
        const std::string msg = ::PQerrorMessage(c);
        conn_.reset();  // in an unknown state: never reused
        staged_.clear();
        throw shared_->fail("cannot save", msg);
      }
      for (auto& [state, rec] : claims) state->committed(*rec);
      staged_.clear();
    }

   private:
    friend class PgStateStore;
    transaction(std::shared_ptr<Shared> s, bool read_only)
        : shared_(std::move(s)), read_only_(read_only) {
      conn_ = shared_->take_conn();
      ensure_open();
    }

    void ensure_open() const {
      if (open_) return;
      if (!conn_) conn_ = shared_->take_conn();
      const char* begin = read_only_ ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN";
      detail::pg_result r(::PQexec(conn_.get(), begin));
      if ((!r || ::PQresultStatus(r.get()) != PGRES_COMMAND_OK) &&
          ::PQstatus(conn_.get()) != CONNECTION_OK) {
        // A pooled session may have been cut (server restart): once more on a fresh one.
        conn_ = shared_->connect(false);
        r.reset(::PQexec(conn_.get(), begin));
      }
      if (!r || ::PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
        const std::string msg = ::PQerrorMessage(conn_.get());
        conn_.reset();
        throw shared_->fail("cannot start a transaction on", msg);
      }
      open_ = true;
    }

    detail::pg_result query(const std::string& sql, const std::vector<std::string>& params) const {
      ensure_open();
      std::vector<const char*> values;
      for (const auto& p : params) values.push_back(p.c_str());
      detail::pg_result r(::PQexecParams(conn_.get(), sql.c_str(), static_cast<int>(values.size()),
                                         nullptr, values.data(), nullptr, nullptr, 0));
      const auto st = r ? ::PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
      if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        const std::string msg = ::PQerrorMessage(conn_.get());
        finish();
        throw shared_->fail("cannot read", msg);
      }
      return r;
    }

    // m's id; `lock`: also take m's row lock (a write without a find before it).
    std::int64_t id_of(std::string_view m, bool lock = true) const {
      if (const auto it = ids_.find(std::string(m)); it != ids_.end()) return it->second;
      auto r = query(lock && !read_only_ ? "SELECT id FROM mama_machine WHERE name = $1 FOR UPDATE"
                                         : "SELECT id FROM mama_machine WHERE name = $1",
                     {std::string(m)});
      if (::PQntuples(r.get()) == 0)
        throw error(errc::unknown_machine, "machine '" + detail::escape_control(m) +
                                               "' not found in " + shared_->describe +
                                               "; check the name with `mama list`");
      const std::int64_t id = std::stoll(::PQgetvalue(r.get(), 0, 0));
      ids_[std::string(m)] = id;
      return id;
    }

    // Rolls back what was not committed and returns the connection to the pool. In a fork
    // child the session is the parent's: left alone.
    void finish() const noexcept {
      if (!conn_) return;
      if (::getpid() != conn_.get_deleter().owner) {
        (void)conn_.release();
        return;
      }
      if (open_) {
        detail::pg_result r(::PQexec(conn_.get(), "ROLLBACK"));
        open_ = false;
      }
      if (::PQstatus(conn_.get()) == CONNECTION_OK &&
          ::PQtransactionStatus(conn_.get()) == PQTRANS_IDLE)
        shared_->give_back(std::move(conn_));
      conn_.reset();
    }

    std::shared_ptr<Shared> shared_;
    mutable detail::pg_conn conn_;
    mutable bool open_ = false;
    bool read_only_ = false;
    mutable std::unordered_map<std::string, std::int64_t> ids_;
    std::vector<std::pair<std::string, JobRecord>> staged_;
  };

  /// A store on the database named by `conninfo`: a libpq URL (`postgresql://user@host/db`) or
  /// key=value string. Nothing is connected until begin().
  explicit PgStateStore(std::string conninfo, PgStoreOptions options = {})
      : shared_(std::make_shared<Shared>(std::move(conninfo), std::move(options))) {}

  /// Starts a transaction (creating the tables on first use when allowed). Throws mama::error
  /// (io_error) naming the database when the server cannot be reached.
  transaction begin() { return transaction(shared_, false); }
  /// Starts a read-only transaction for views: one consistent snapshot (REPEATABLE READ), no
  /// row or lab locks, so it never blocks a claim; write() throws. Throws like begin().
  transaction begin_read() { return transaction(shared_, true); }
  /// The database as `postgresql://user@host:port/db`, without password.
  std::string describe() const { return shared_->describe; }
  /// Holds decide liveness for records that carry a token.
  bool exact_liveness() const noexcept { return true; }
  /// Holds are server locks: they decide for holders on every host, not only this one.
  bool holds_span_hosts() const noexcept { return true; }
  const std::string& conninfo() const noexcept { return shared_->conninfo; }
  const PgStoreOptions& options() const noexcept { return shared_->options; }

  /// A LISTEN session that wakes waiters on claims and releases. Throws mama::error.
  watcher watch(std::string_view) {
    auto c = shared_->connect(false);
    detail::pg_result r(::PQexec(c.get(), "LISTEN mama_state"));
    if (!r || ::PQresultStatus(r.get()) != PGRES_COMMAND_OK)
      throw shared_->fail("cannot listen on", ::PQerrorMessage(c.get()));
    ::PQsetnonblocking(c.get(), 1);
    return watcher(std::move(c));
  }

  /// One row of a result: each column's text, nullopt for SQL NULL.
  using row = std::vector<std::optional<std::string>>;

  /// The tables this store uses, created when missing. Safe to run concurrently.
  static constexpr const char* schema_sql =
      "BEGIN;\n"
      "SELECT pg_advisory_xact_lock(7164011239658693729);\n"
      "CREATE TABLE IF NOT EXISTS mama_machine (\n"
      "  id bigint GENERATED ALWAYS AS IDENTITY UNIQUE,\n"
      "  name text PRIMARY KEY,\n"
      "  position bigint NOT NULL DEFAULT 0,\n"
      "  job text NOT NULL DEFAULT '', job_pid text NOT NULL DEFAULT '',\n"
      "  job_timestamp text NOT NULL DEFAULT '', job_host text NOT NULL DEFAULT '',\n"
      "  job_boot_id text NOT NULL DEFAULT '', job_start text NOT NULL DEFAULT '',\n"
      "  job_token text NOT NULL DEFAULT '');\n"
      "COMMENT ON TABLE mama_machine IS 'mama lab machines; job_* as in mama.xml';\n"
      "CREATE TABLE IF NOT EXISTS mama_field (\n"
      "  machine_id bigint NOT NULL REFERENCES mama_machine(id) ON DELETE CASCADE,\n"
      "  position integer NOT NULL,\n"
      "  key text NOT NULL,\n"
      "  value text,\n"
      "  PRIMARY KEY (machine_id, position));\n"
      "COMMENT ON COLUMN mama_field.value IS "
      "'NULL: the place of name or a job field, whose value is in mama_machine';\n"
      "CREATE TABLE IF NOT EXISTS mama_extra (position bigint PRIMARY KEY, xml text NOT NULL);\n"
      "COMMENT ON TABLE mama_extra IS 'top-level elements of mama.xml other than machines';\n"
      "CREATE TABLE IF NOT EXISTS mama_hold (\n"
      "  machine_id bigint PRIMARY KEY REFERENCES mama_machine(id) ON DELETE CASCADE,\n"
      "  confirmed timestamptz NOT NULL,\n"
      "  deadline_ms integer NOT NULL,\n"
      "  grace_ms integer NOT NULL);\n"
      "COMMENT ON TABLE mama_hold IS 'per claimed machine: when its holder last confirmed its "
      "hold (server clock), its deadline and kill grace; waiters wait until confirmed + "
      "deadline + grace + their margin';\n"
      "COMMIT";

 private:
  // Raw SQL, for detail::PgSql (import/export, tests): not part of the store's interface.

  /// Runs `sql` (one or more statements, no parameters) in a session of the pool and returns
  /// the rows of the last result. Throws mama::error.
  std::vector<row> exec_rows(const std::string& sql) {
    auto c = shared_->take_conn();
    detail::pg_result r(::PQexec(c.get(), sql.c_str()));
    const auto st = r ? ::PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      std::string msg = ::PQerrorMessage(c.get());
      if (::PQtransactionStatus(c.get()) != PQTRANS_IDLE) {
        detail::pg_result rb(::PQexec(c.get(), "ROLLBACK"));
      }
      if (::PQstatus(c.get()) == CONNECTION_OK && ::PQtransactionStatus(c.get()) == PQTRANS_IDLE)
        shared_->give_back(std::move(c));
      throw shared_->fail("SQL failed on", std::move(msg));
    }
    std::vector<row> out;
    if (st == PGRES_TUPLES_OK) {
      const int rows = ::PQntuples(r.get()), cols = ::PQnfields(r.get());
      out.reserve(static_cast<std::size_t>(rows));
      for (int i = 0; i < rows; ++i) {
        row& line = out.emplace_back();
        for (int j = 0; j < cols; ++j) {
          if (::PQgetisnull(r.get(), i, j))
            line.emplace_back();
          else
            line.emplace_back(
                std::string(::PQgetvalue(r.get(), i, j), ::PQgetlength(r.get(), i, j)));
        }
      }
    }
    if (::PQtransactionStatus(c.get()) == PQTRANS_IDLE) shared_->give_back(std::move(c));
    return out;
  }

  /// The first column of exec_rows(sql), NULL as empty text.
  std::vector<std::string> exec(const std::string& sql) {
    std::vector<std::string> out;
    for (auto& line : exec_rows(sql))
      out.push_back(line.empty() || !line[0] ? std::string() : *line[0]);
    return out;
  }

  /// `text` as an SQL literal for this database (libpq's PQescapeLiteral on a pooled session),
  /// for building statements for exec(). Throws mama::error.
  std::string literal(std::string_view text) {
    auto c = shared_->take_conn();
    std::string out = detail::pg_quote(c.get(), text);
    shared_->give_back(std::move(c));
    return out;
  }

  // A hold's state, shared by the hold and its heartbeat thread.
  struct HoldState {
    std::shared_ptr<Shared> shared;
    std::int64_t id = 0;
    std::string machine;
    pid_t owner = ::getpid();
    detail::pg_clock::time_point taken;  // sending of the statement that took the lock

    mutable std::mutex mutex;         // guards what follows
    detail::pg_conn conn;             // the session holding the lock; null once lost
    std::vector<std::string> tokens;  // tokens this process wrote for the machine while holding
    std::string host, boot;           // of the claim record
    bool beating = false, quiet = false, lost = false;
    std::string lost_reason;
    std::function<void(std::string)> on_lost;
    detail::pg_clock::time_point last_ok;

    std::thread thread;
    int wake[2] = {-1, -1};

    HoldState(std::shared_ptr<Shared> s, detail::pg_conn c, std::int64_t i, std::string m,
              detail::pg_clock::time_point t)
        : shared(std::move(s)),
          id(i),
          machine(std::move(m)),
          taken(t),
          conn(std::move(c)),
          last_ok(t) {}
    ~HoldState() {
      stop_thread();
      for (int fd : wake)
        if (fd >= 0) ::close(fd);
    }

    // A record written by this process for the machine was committed.
    void committed(const JobRecord& rec) {
      std::lock_guard lock(mutex);
      if (rec.token.empty()) {
        quiet = true;  // released: no more checks, the hold goes away next
        if (wake[1] >= 0) (void)!::write(wake[1], "q", 1);
        return;
      }
      if (tokens.empty()) {
        host = rec.host;
        boot = rec.boot_id;
      }
      tokens.push_back(rec.token);
      quiet = false;
      if (beating || lost || !conn) return;
      if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) return;  // no heartbeat: as before
      ::PQsetnonblocking(conn.get(), 1);
      beating = true;
      thread = std::thread([this] { run(); });
    }

    void stop_thread() noexcept {
      if (!thread.joinable()) return;
      if (thread.get_id() == std::this_thread::get_id()) {
        thread.detach();  // destroyed from its own callback: the thread ends right after
        return;
      }
      {
        std::lock_guard lock(mutex);
        beating = false;
      }
      if (wake[1] >= 0) (void)!::write(wake[1], "s", 1);  // after: a woken thread sees the stop
      thread.join();
    }

    bool stopping() const {
      std::lock_guard lock(mutex);
      return !beating;
    }

    // Sleeps `d` unless woken; false when asked to stop.
    bool nap(std::chrono::milliseconds d) {
      pollfd p{wake[0], POLLIN, 0};
      const int n = ::poll(&p, 1, static_cast<int>(d.count()));
      if (n > 0) {
        char buf[16];
        while (::read(wake[0], buf, sizeof buf) > 0) {
        }
      }
      return !stopping();
    }

    // The heartbeat: see the top of this header.
    void run() {
      const auto& o = shared->options;
      const auto ms = [](int v) { return std::chrono::milliseconds(v); };
      const std::string space = std::to_string(static_cast<std::uint32_t>(o.lock_space));
      const std::string mine = "l.locktype = 'advisory' AND l.granted AND l.classid = " + space +
                               "::oid AND l.objid = " + std::to_string(id) +
                               "::oid AND l.objsubid = 2";
      const std::string beat =
          "UPDATE mama_hold h SET confirmed = clock_timestamp(), deadline_ms = " +
          std::to_string(o.hold_deadline_ms) + ", grace_ms = " + std::to_string(o.kill_grace_ms) +
          " FROM mama_machine m WHERE h.machine_id = " + std::to_string(id) +
          " AND m.id = h.machine_id AND EXISTS (SELECT 1 FROM pg_locks l WHERE " + mine +
          " AND l.pid = pg_backend_pid()) RETURNING m.job_token, m.job_pid, m.job_host, "
          "m.job_boot_id";
      const std::string take =
          "SET tcp_keepalives_idle = " + std::to_string(o.keepalive_idle_s) +
          "; SET tcp_keepalives_interval = " + std::to_string(o.keepalive_interval_s) +
          "; SET tcp_keepalives_count = " + std::to_string(o.keepalive_count) +
          "; SET tcp_user_timeout = " + std::to_string(o.tcp_user_timeout_ms) +
          "; SELECT pg_try_advisory_lock(" + std::to_string(o.lock_space) + ", " +
          std::to_string(id) + ")";
      const std::string who = "SELECT l.pid FROM pg_locks l WHERE " + mine;
      int old_backend = 0;
      detail::pg_conn spare;  // a new session, being made to hold the lock
      std::string why = "no confirmed contact with the server";
      for (;;) {
        if (stopping()) return;
        const auto now = detail::pg_clock::now();
        detail::pg_clock::time_point deadline;
        PGconn* c = nullptr;
        {
          std::lock_guard lock(mutex);
          if (quiet) return;  // released by this process: the hold goes away next
          deadline = last_ok + ms(o.hold_deadline_ms);
          c = conn.get();
        }
        if (now >= deadline)
          return declare_lost(why + " for " + std::to_string(o.hold_deadline_ms) + " ms");
        const auto step = std::min(deadline, now + ms(o.confirm_timeout_ms));
        if (c) {
          auto r = detail::pg_exec_until(c, beat, step, wake[0]);
          if (stopping()) return;
          if (r && ::PQntuples(r.get()) == 1) {
            if (auto lost_why = check(r.get()); !lost_why.empty()) return declare_lost(lost_why);
            std::lock_guard lock(mutex);
            last_ok = now;
            why = "no confirmed contact with the server";
          } else if (r) {
            why = "the hold's session lost its lock";  // not expected; try to take it again
            drop(old_backend);
          } else {
            why = "no answer from the server";
            drop(old_backend);
            continue;
          }
          if (!nap(ms(o.heartbeat_period_ms))) return;
          continue;
        }
        // Reconnect: a session of our own again, holding the lock, on a record still ours.
        if (!spare) {
          spare = shared->connect_until(true, step, wake[0]);
          if (!spare) {
            if (!nap(ms(100))) return;
            continue;
          }
        }
        auto r = detail::pg_exec_until(spare.get(), take, step, wake[0]);
        if (!r) {
          spare.reset();
          continue;
        }
        if (std::string_view(::PQgetvalue(r.get(), 0, 0)) != "t") {
          // Held: by our old session that the server has not ended yet (end it), or by a
          // waiter looking for a moment, or by a successor (then the deadline decides).
          auto holder = detail::pg_exec_until(spare.get(), who, step, wake[0]);
          if (!holder) {
            spare.reset();
            continue;
          }
          if (old_backend != 0 && ::PQntuples(holder.get()) == 1 &&
              std::atoi(::PQgetvalue(holder.get(), 0, 0)) == old_backend) {
            auto killed = detail::pg_exec_until(
                spare.get(), "SELECT pg_terminate_backend(" + std::to_string(old_backend) + ")",
                step, wake[0]);
            if (!killed) spare.reset();
          }
          if (!nap(ms(50))) return;
          continue;
        }
        const auto sent = detail::pg_clock::now();
        auto b = detail::pg_exec_until(spare.get(), beat, step, wake[0]);
        if (!b || ::PQntuples(b.get()) != 1) {
          spare.reset();  // ends that session, and with it the lock
          if (b)
            return declare_lost("the claim on machine '" + machine +
                                "' is gone from the database (cleared?)");
          continue;
        }
        if (auto lost_why = check(b.get()); !lost_why.empty()) {
          spare.reset();
          return declare_lost(lost_why);
        }
        {
          std::lock_guard lock(mutex);
          conn = std::move(spare);
          last_ok = sent;
          old_backend = 0;
        }
        why = "no confirmed contact with the server";
        if (!nap(ms(o.heartbeat_period_ms))) return;
      }
    }

    // The record returned by a heartbeat: empty when it is still this claim's (or a nested
    // claim's of a process of this job), else why the claim is lost.
    std::string check(PGresult* r) {
      const std::string token = ::PQgetvalue(r, 0, 0), pid = ::PQgetvalue(r, 0, 1),
                        host_now = ::PQgetvalue(r, 0, 2), boot_now = ::PQgetvalue(r, 0, 3);
      std::lock_guard lock(mutex);
      if (quiet) return {};
      for (const auto& t : tokens)
        if (t == token) return {};
      if (token.empty())
        return "the record of machine '" + machine + "' was cleared while its job ran";
      // A nested claim (mama run inside the job) by a process of this job, on this host.
      const int p = std::atoi(pid.c_str());
      if (host_now == host && boot_now == boot && p > 0 && detail::pg_descends_from(p, owner))
        return {};
      return "machine '" + machine + "' was claimed by another job (" +
             detail::escape_control(host_now) + ", PID " + detail::escape_control(pid) + ")";
    }

    // Gives up the current session (its server side may live on; a reconnect ends it).
    void drop(int& old_backend) {
      std::lock_guard lock(mutex);
      if (!conn) return;
      old_backend = ::PQbackendPID(conn.get());
      conn.reset();  // non-blocking: the Terminate is sent if it can be, never waited for
    }

    // Reports the loss once. The callbacks run last and touch nothing of *this after them: a
    // callback may destroy the hold (stop_thread then detaches this thread).
    void declare_lost(std::string reason) {
      std::function<void(std::string)> fn;
      {
        std::lock_guard lock(mutex);
        if (lost) return;
        lost = true;
        lost_reason = reason;
        fn = std::move(on_lost);
        conn.reset();
      }
      auto store_fn = shared->options.on_lost;
      const std::string m = machine;
      try {
        if (store_fn) store_fn(m, reason);
      } catch (...) {
      }
      try {
        if (fn) fn(reason);
      } catch (...) {
      }
    }
  };

  struct Shared {
    Shared(std::string c, PgStoreOptions o)
        : conninfo(std::move(c)), options(std::move(o)), describe(detail::pg_describe(conninfo)) {}
    ~Shared() {
      if (::getpid() == owner) return;
      // A fork child: the pooled sessions are the parent's.
      for (auto& c : idle) (void)c.release();
      for (auto& c : idle_hold) (void)c.release();
    }

    std::string conninfo;
    PgStoreOptions options;
    std::string describe;
    pid_t owner = ::getpid();
    std::mutex mutex;
    std::vector<detail::pg_conn> idle;       // transaction sessions
    std::vector<detail::pg_conn> idle_hold;  // hold sessions (keepalives, inheritable socket)
    std::map<std::int64_t, std::weak_ptr<HoldState>> holds;  // live holds of this process
    bool schema_ready = false;

    error fail(const std::string& what, std::string msg) const {
      while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
      return error(errc::io_error, what + " " + describe + ": " + msg +
                                       "; check that the server runs and the URL is right");
    }

    // In a fork child, the pooled sessions and the holds are the parent's: forget (leak) them,
    // so that the child makes sessions of its own. Call with `mutex` held.
    void adopt() {
      if (::getpid() == owner) return;
      for (auto& c : idle) (void)c.release();
      for (auto& c : idle_hold) (void)c.release();
      idle.clear();
      idle_hold.clear();
      holds.clear();
      owner = ::getpid();
    }

    std::shared_ptr<HoldState> held(std::int64_t id) {
      std::lock_guard lock(mutex);
      adopt();
      const auto it = holds.find(id);
      return it == holds.end() ? nullptr : it->second.lock();
    }
    void forget(std::int64_t id, const HoldState* s) noexcept {
      std::lock_guard lock(mutex);
      const auto it = holds.find(id);
      if (it != holds.end()) {
        const auto live = it->second.lock();
        if (!live || live.get() == s) holds.erase(it);
      }
    }

    struct params {
      std::vector<std::string> storage;
      std::vector<const char*> keys, values;
    };
    params conn_params(bool for_hold) const {
      const auto s = [](int v) { return std::to_string(v); };
      params p;
      // Our defaults first, then the user's string, which may override them.
      p.storage = {s(options.keepalive_idle_s), s(options.keepalive_interval_s),
                   s(options.keepalive_count), s(options.tcp_user_timeout_ms),
                   s(options.connect_timeout_s)};
      p.keys = {"keepalives",       "keepalives_idle",  "keepalives_interval",
                "keepalives_count", "tcp_user_timeout", "connect_timeout",
                "application_name", "dbname",           nullptr};
      p.values = {"1",
                  p.storage[0].c_str(),
                  p.storage[1].c_str(),
                  p.storage[2].c_str(),
                  p.storage[3].c_str(),
                  p.storage[4].c_str(),
                  for_hold ? "mama hold" : "mama",
                  conninfo.c_str(),
                  nullptr};
      return p;
    }

    // What every new session gets: quiet notices; for holds, an inheritable socket.
    static void prepare(PGconn* c, bool for_hold) {
      // Server notices ("relation already exists, skipping") are not for the user's terminal.
      ::PQsetNoticeProcessor(
          c, [](void*, const char*) {}, nullptr);
      if (for_hold) {
        // Inherited by the job's processes: the lock lives while they run (as lock files do).
        const int fd = ::PQsocket(c);
        const int flags = ::fcntl(fd, F_GETFD);
        if (flags >= 0) ::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
      }
    }

    detail::pg_conn connect(bool for_hold) {
      const auto p = conn_params(for_hold);
      detail::pg_conn c(::PQconnectdbParams(p.keys.data(), p.values.data(), 1));
      if (!c) throw error(errc::io_error, "cannot connect to " + describe + ": out of memory");
      if (::PQstatus(c.get()) != CONNECTION_OK)
        throw fail("cannot connect to", ::PQerrorMessage(c.get()));
      prepare(c.get(), for_hold);
      {
        // The server must notice a dead client too: its keepalives free a hold's lock, and the
        // row locks of a transaction whose client was cut off.
        const std::string sql = "SET tcp_keepalives_idle = " + p.storage[0] +
                                "; SET tcp_keepalives_interval = " + p.storage[1] +
                                "; SET tcp_keepalives_count = " + p.storage[2] +
                                "; SET tcp_user_timeout = " + p.storage[3];
        detail::pg_result r(::PQexec(c.get(), sql.c_str()));
        if (!r || ::PQresultStatus(r.get()) != PGRES_COMMAND_OK)
          throw fail("cannot set keepalives on", ::PQerrorMessage(c.get()));
      }
      return c;
    }

    // A new session within `until` (non-blocking connect, so a cut network cannot hold us
    // past the deadline), in non-blocking mode; null when it cannot be made in time.
    detail::pg_conn connect_until(bool for_hold, detail::pg_clock::time_point until, int wake) {
      const auto p = conn_params(for_hold);
      detail::pg_conn c(::PQconnectStartParams(p.keys.data(), p.values.data(), 1));
      if (!c || ::PQstatus(c.get()) == CONNECTION_BAD) return {};
      PostgresPollingStatusType st = PGRES_POLLING_WRITING;
      while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED) return {};
        const short ev = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
        if (detail::pg_wait_fd(::PQsocket(c.get()), ev, until, wake) != 1) return {};
        st = ::PQconnectPoll(c.get());
      }
      prepare(c.get(), for_hold);
      ::PQsetnonblocking(c.get(), 1);
      return c;
    }

    detail::pg_conn take_conn() {
      {
        std::lock_guard lock(mutex);
        adopt();
        if (!idle.empty()) {
          auto c = std::move(idle.back());
          idle.pop_back();
          return c;
        }
      }
      auto c = connect(false);
      bool need_schema = false;
      {
        std::lock_guard lock(mutex);
        need_schema = options.create_schema && !schema_ready;
      }
      if (need_schema) {
        detail::pg_result r(::PQexec(c.get(), schema_sql));
        if (!r || ::PQresultStatus(r.get()) != PGRES_COMMAND_OK)
          throw fail("cannot create the mama tables in", ::PQerrorMessage(c.get()));
        std::lock_guard lock(mutex);
        schema_ready = true;
      }
      return c;
    }
    void give_back(detail::pg_conn c) noexcept {
      try {
        std::lock_guard lock(mutex);
        adopt();
        if (idle.size() < 8) idle.push_back(std::move(c));
      } catch (...) {
      }
    }
    void give_back_hold(detail::pg_conn c) noexcept {
      try {
        std::lock_guard lock(mutex);
        adopt();
        if (idle_hold.size() < 4) idle_hold.push_back(std::move(c));
      } catch (...) {
      }
    }

    std::optional<hold> try_hold(const std::shared_ptr<Shared>& self, std::int64_t id,
                                 std::string machine) {
      detail::pg_conn c;
      {
        std::lock_guard lock(mutex);
        adopt();
        if (!idle_hold.empty()) {
          c = std::move(idle_hold.back());
          idle_hold.pop_back();
        }
      }
      // Free, and no earlier holder that lost contact may still be ending its job: its
      // confirmed + deadline + grace (its own) + our margin is past, on the server's clock.
      const std::string key = std::to_string(options.lock_space) + ", " + std::to_string(id);
      const std::string sql =
          "SELECT CASE WHEN NOT pg_try_advisory_lock(" + key +
          ") THEN 'held' WHEN EXISTS (SELECT 1 FROM mama_hold h JOIN mama_machine m ON m.id = "
          "h.machine_id WHERE h.machine_id = " +
          std::to_string(id) +
          " AND m.job_token <> '' AND clock_timestamp() < h.confirmed + (h.deadline_ms + "
          "h.grace_ms + " +
          std::to_string(options.takeover_margin_ms) +
          ") * interval '1 millisecond') THEN CASE WHEN pg_advisory_unlock(" + key +
          ") THEN 'waiting' ELSE 'waiting' END ELSE 'free' END";
      for (int attempt = 0; attempt < 2; ++attempt) {
        if (!c) c = connect(true);
        ::PQsetnonblocking(c.get(), 0);
        const auto sent = detail::pg_clock::now();
        detail::pg_result r(::PQexec(c.get(), sql.c_str()));
        if (r && ::PQresultStatus(r.get()) == PGRES_TUPLES_OK) {
          if (std::string_view(::PQgetvalue(r.get(), 0, 0)) == "free") {
            auto state = std::make_shared<HoldState>(self, std::move(c), id, machine, sent);
            {
              std::lock_guard lock(mutex);
              holds[id] = state;
            }
            return hold(std::move(state));
          }
          give_back_hold(std::move(c));
          return std::nullopt;
        }
        // A pooled session may have been cut meanwhile: retry once on a fresh one.
        if (attempt == 1)
          throw fail(
              "cannot take the job lock of machine '" + detail::escape_control(machine) + "' in",
              ::PQerrorMessage(c.get()));
        c.reset();
      }
      return std::nullopt;
    }
  };
  std::shared_ptr<Shared> shared_;
};
static_assert(state_store<PgStateStore>);

namespace detail {

/// Raw SQL on a PgStateStore's sessions, for what the store's interface does not cover: moving a
/// lab in and out (pg_import_export.hpp), and tests and benchmarks that set up or inspect the
/// tables. Not part of the store's interface: statements here bypass its locks and checks.
class PgSql {
 public:
  /// Copies of a store share its sessions, so a copy (or a temporary) serves as well.
  explicit PgSql(PgStateStore store) : store_(std::move(store)) {}

  /// Runs `sql` (one or more statements, no parameters) in a session of the pool and returns
  /// the rows of the last result. Throws mama::error.
  std::vector<PgStateStore::row> exec_rows(const std::string& sql) { return store_.exec_rows(sql); }
  /// The first column of exec_rows(sql), NULL as empty text.
  std::vector<std::string> exec(const std::string& sql) { return store_.exec(sql); }
  /// `text` as an SQL literal for this database (PQescapeLiteral), for statements given to
  /// exec(). Throws mama::error.
  std::string literal(std::string_view text) { return store_.literal(text); }

 private:
  PgStateStore store_;
};

}  // namespace detail

}  // namespace mama
