// mama/pg_state_store.hpp — the StateStore policy on a PostgreSQL server (libpq).
//
// For labs driven from several controller hosts: machine records live in tables, claims and
// releases are transactions, and liveness needs no PIDs. Contract:
//
// - Records: one row per machine in `mama_machine` (name, position, the seven job fields as
//   columns) and the machine's other fields, in order, in `mama_field` (see import_xml in
//   <mama/pg_import_export.hpp> for moving a mama.xml there).
// - Critical section: find(m) reads m's row with SELECT ... FOR UPDATE, so deciding and writing
//   happen under the row lock inside one transaction; commit() writes the staged rows, sends a
//   notification and commits; a transaction destroyed without commit() rolls back. machines()
//   locks every row (after a lab-wide advisory lock, so two whole-lab readers never deadlock).
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
//   mama::PgStateStore store("postgresql://mama@db.lab/mama");
//   mama::StaleJobGuard<mama::SystemClock, mama::ProcProbe, mama::PgStateStore> g(store, "m1");
//
// Copies share one connection pool. Thread-safe like the other stores: one transaction per
// thread. After fork(), a child must make its own store (libpq connections are not shared).
#pragma once

#include <fcntl.h>
#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mama/detail/text.hpp"
#include "mama/error.hpp"
#include "mama/record.hpp"
#include "mama/state_store.hpp"

namespace mama {

/// How the PostgreSQL store connects and how fast a dead holder's lock is freed.
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
  /// Create the tables on first use when they are missing.
  bool create_schema = true;
};

namespace detail {

struct PgConnFree {
  void operator()(PGconn* c) const noexcept { ::PQfinish(c); }
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

/// A quoted SQL literal for `text` (standard_conforming_strings on: only quotes are doubled).
/// Text with NUL bytes cannot be stored in PostgreSQL and is cut there.
inline std::string pg_literal(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\0') break;
    if (c == '\'') out += '\'';
    out += c;
  }
  out += '\'';
  return out;
}

}  // namespace detail

/// The PostgreSQL store (see the top of this header).
class PgStateStore {
  struct Shared;

 public:
  /// A claim's session-level advisory lock on one machine, on a connection of its own. Destroying
  /// it unlocks (and wakes waiters); if the connection is gone the server has unlocked already.
  class hold {
   public:
    hold(hold&& o) noexcept
        : shared_(std::move(o.shared_)),
          conn_(std::move(o.conn_)),
          id_(o.id_),
          machine_(std::move(o.machine_)) {}
    hold& operator=(hold&& o) noexcept {
      if (this != &o) {
        release();
        shared_ = std::move(o.shared_);
        conn_ = std::move(o.conn_);
        id_ = o.id_;
        machine_ = std::move(o.machine_);
      }
      return *this;
    }
    ~hold() { release(); }

    /// The server process of the session that holds the lock (for tests and diagnostics).
    int backend_pid() const noexcept { return conn_ ? ::PQbackendPID(conn_.get()) : 0; }
    /// The socket of that session (-1 when released).
    int fd() const noexcept { return conn_ ? ::PQsocket(conn_.get()) : -1; }

   private:
    friend class PgStateStore;
    hold(std::shared_ptr<Shared> s, detail::pg_conn c, std::int64_t id, std::string machine)
        : shared_(std::move(s)), conn_(std::move(c)), id_(id), machine_(std::move(machine)) {}
    void release() noexcept {
      if (!conn_) return;
      const std::string sql = "SELECT pg_advisory_unlock(" +
                              std::to_string(shared_->options.lock_space) + ", " +
                              std::to_string(id_) + "); SELECT pg_notify('mama_state', " +
                              detail::pg_literal(machine_) + ")";
      detail::pg_result r(::PQexec(conn_.get(), sql.c_str()));
      if (r && ::PQresultStatus(r.get()) == PGRES_TUPLES_OK)
        shared_->give_back_hold(std::move(conn_));
      conn_.reset();
      shared_.reset();
    }
    std::shared_ptr<Shared> shared_;
    detail::pg_conn conn_;
    std::int64_t id_ = 0;
    std::string machine_;
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
        ids_ = std::move(o.ids_);
        staged_ = std::move(o.staged_);
      }
      return *this;
    }
    ~transaction() { finish(); }

    /// m's job fields, read under m's row lock; nullopt when there is no machine m.
    std::optional<JobRecord> find(std::string_view m) const {
      auto r = query(
          "SELECT id, job, job_pid, job_timestamp, job_host, job_boot_id, job_start, "
          "job_token FROM mama_machine WHERE name = $1 FOR UPDATE",
          {std::string(m)});
      if (::PQntuples(r.get()) == 0) return std::nullopt;
      ids_[std::string(m)] = std::stoll(::PQgetvalue(r.get(), 0, 0));
      JobRecord rec;
      for (std::size_t i = 0; i < job_field_members.size(); ++i)
        rec.*job_field_members[i] = ::PQgetvalue(r.get(), 0, static_cast<int>(i) + 1);
      return rec;
    }

    /// Every machine in lab order, each row locked until the transaction ends.
    std::vector<MachineInfo> machines() const {
      query("SELECT pg_advisory_xact_lock(" + std::to_string(shared_->options.lock_space) +
                "::bigint)",
            {});
      auto r = query(
          "SELECT m.id, m.name, m.job, m.job_pid, m.job_timestamp, m.job_host, m.job_boot_id, "
          "m.job_start, m.job_token, f.key, f.value FROM mama_machine m LEFT JOIN mama_field f "
          "ON f.machine_id = m.id AND f.value IS NOT NULL "
          "ORDER BY m.position, m.id, f.position FOR UPDATE OF m",
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

    /// Stages `r` as m's job fields (saved by commit()). Throws unknown_machine.
    void write(std::string_view m, const JobRecord& r) {
      id_of(m);
      for (auto& [name, rec] : staged_)
        if (name == m) {
          rec = r;
          return;
        }
      staged_.emplace_back(std::string(m), r);
    }

    /// m's advisory lock on a session of its own, if nobody holds it; nullopt when held.
    std::optional<hold> try_hold(std::string_view m) {
      const std::int64_t id = id_of(m, /*lock=*/false);
      return shared_->try_hold(shared_, id, std::string(m));
    }

    /// Writes the staged records, notifies waiters and commits (nothing when nothing is staged).
    /// Throws mama::error; on failure nothing was saved.
    void commit() {
      if (staged_.empty()) return;
      std::string sql;
      for (const auto& [name, rec] : staged_) {
        sql += "UPDATE mama_machine SET ";
        for (std::size_t i = 0; i < job_field_names.size(); ++i) {
          if (i) sql += ", ";
          sql += job_field_names[i];
          sql += " = " + detail::pg_literal(rec.*job_field_members[i]);
        }
        sql += " WHERE id = " + std::to_string(ids_.at(name)) + ";\n";
        sql += "SELECT pg_notify('mama_state', " + detail::pg_literal(name) + ");\n";
      }
      sql += "COMMIT";
      ensure_open();
      detail::pg_result r(::PQexec(conn_.get(), sql.c_str()));
      open_ = false;
      if (!r || ::PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
        const std::string msg = ::PQerrorMessage(conn_.get());
        conn_.reset();  // in an unknown state: never reused
        staged_.clear();
        throw shared_->fail("cannot save", msg);
      }
      staged_.clear();
    }

   private:
    friend class PgStateStore;
    explicit transaction(std::shared_ptr<Shared> s) : shared_(std::move(s)) {
      conn_ = shared_->take_conn();
      ensure_open();
    }

    void ensure_open() const {
      if (open_) return;
      if (!conn_) conn_ = shared_->take_conn();
      detail::pg_result r(::PQexec(conn_.get(), "BEGIN"));
      if ((!r || ::PQresultStatus(r.get()) != PGRES_COMMAND_OK) &&
          ::PQstatus(conn_.get()) != CONNECTION_OK) {
        // A pooled session may have been cut (server restart): once more on a fresh one.
        conn_ = shared_->connect(false);
        r.reset(::PQexec(conn_.get(), "BEGIN"));
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
      auto r = query(lock ? "SELECT id FROM mama_machine WHERE name = $1 FOR UPDATE"
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

    // Rolls back what was not committed and returns the connection to the pool.
    void finish() const noexcept {
      if (!conn_) return;
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
    mutable std::unordered_map<std::string, std::int64_t> ids_;
    std::vector<std::pair<std::string, JobRecord>> staged_;
  };

  /// A store on the database named by `conninfo`: a libpq URL (`postgresql://user@host/db`) or
  /// key=value string. Nothing is connected until begin().
  explicit PgStateStore(std::string conninfo, PgStoreOptions options = {})
      : shared_(std::make_shared<Shared>(std::move(conninfo), options)) {}

  /// Starts a transaction (creating the tables on first use when allowed). Throws mama::error
  /// (io_error) naming the database when the server cannot be reached.
  transaction begin() { return transaction(shared_); }
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

  /// Runs `sql` (one or more statements, no parameters) in a session of the pool and returns
  /// the rows of the last result. For set-up, import/export and tests. Throws mama::error.
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
      "COMMIT";

 private:
  struct Shared {
    Shared(std::string c, PgStoreOptions o)
        : conninfo(std::move(c)), options(o), describe(detail::pg_describe(conninfo)) {}

    std::string conninfo;
    PgStoreOptions options;
    std::string describe;
    std::mutex mutex;
    std::vector<detail::pg_conn> idle;       // transaction sessions
    std::vector<detail::pg_conn> idle_hold;  // hold sessions (keepalives, inheritable socket)
    bool schema_ready = false;

    error fail(const std::string& what, std::string msg) const {
      while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
      return error(errc::io_error, what + " " + describe + ": " + msg +
                                       "; check that the server runs and the URL is right");
    }

    detail::pg_conn connect(bool for_hold) {
      const auto s = [](int v) { return std::to_string(v); };
      const std::string idle_s = s(options.keepalive_idle_s),
                        intv = s(options.keepalive_interval_s), cnt = s(options.keepalive_count),
                        uto = s(options.tcp_user_timeout_ms), cto = s(options.connect_timeout_s);
      // Our defaults first, then the user's string, which may override them.
      const char* keys[] = {"keepalives",       "keepalives_idle",  "keepalives_interval",
                            "keepalives_count", "tcp_user_timeout", "connect_timeout",
                            "application_name", "dbname",           nullptr};
      const char* values[] = {"1",
                              idle_s.c_str(),
                              intv.c_str(),
                              cnt.c_str(),
                              uto.c_str(),
                              cto.c_str(),
                              for_hold ? "mama hold" : "mama",
                              conninfo.c_str(),
                              nullptr};
      detail::pg_conn c(::PQconnectdbParams(keys, values, 1));
      if (!c) throw error(errc::io_error, "cannot connect to " + describe + ": out of memory");
      if (::PQstatus(c.get()) != CONNECTION_OK)
        throw fail("cannot connect to", ::PQerrorMessage(c.get()));
      // Server notices ("relation already exists, skipping") are not for the user's terminal.
      ::PQsetNoticeProcessor(
          c.get(), [](void*, const char*) {}, nullptr);
      if (for_hold) {
        // The server must notice a dead client too: its keepalives free the lock.
        const std::string sql =
            "SET tcp_keepalives_idle = " + idle_s + "; SET tcp_keepalives_interval = " + intv +
            "; SET tcp_keepalives_count = " + cnt + "; SET tcp_user_timeout = " + uto;
        detail::pg_result r(::PQexec(c.get(), sql.c_str()));
        if (!r || ::PQresultStatus(r.get()) != PGRES_COMMAND_OK)
          throw fail("cannot set keepalives on", ::PQerrorMessage(c.get()));
        // Inherited by the job's processes: the lock lives while they run (as lock files do).
        const int fd = ::PQsocket(c.get());
        const int flags = ::fcntl(fd, F_GETFD);
        if (flags >= 0) ::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
      }
      return c;
    }

    detail::pg_conn take_conn() {
      {
        std::lock_guard lock(mutex);
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
        if (idle.size() < 8) idle.push_back(std::move(c));
      } catch (...) {
      }
    }
    void give_back_hold(detail::pg_conn c) noexcept {
      try {
        std::lock_guard lock(mutex);
        if (idle_hold.size() < 4) idle_hold.push_back(std::move(c));
      } catch (...) {
      }
    }

    std::optional<hold> try_hold(const std::shared_ptr<Shared>& self, std::int64_t id,
                                 std::string machine) {
      detail::pg_conn c;
      {
        std::lock_guard lock(mutex);
        if (!idle_hold.empty()) {
          c = std::move(idle_hold.back());
          idle_hold.pop_back();
        }
      }
      const std::string sql = "SELECT pg_try_advisory_lock(" + std::to_string(options.lock_space) +
                              ", " + std::to_string(id) + ")";
      for (int attempt = 0; attempt < 2; ++attempt) {
        if (!c) c = connect(true);
        detail::pg_result r(::PQexec(c.get(), sql.c_str()));
        if (r && ::PQresultStatus(r.get()) == PGRES_TUPLES_OK) {
          if (std::string_view(::PQgetvalue(r.get(), 0, 0)) == "t")
            return hold(self, std::move(c), id, std::move(machine));
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

}  // namespace mama
