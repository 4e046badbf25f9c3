// mama/pg_import_export.hpp — moving a lab between mama.xml and a PostgreSQL database.
//
// import_xml copies every machine (its fields in order, job fields included) and every other
// top-level element of a mama.xml into the tables of a PgStateStore, in one transaction, while
// holding the mama.xml lock. export_xml writes the database back as a mama.xml the PHP tool
// reads: same machines, same order, same fields in the same places. A round trip keeps the
// machines, their fields, their order and the other top-level elements; it does not keep
// comments, attributes or formatting.
//
// Jobs are copied as they are. Move a lab while it is idle: a record that carries a job_token
// has no PostgreSQL hold after the move, so the next claim clears it as stale.
#pragma once

#include <fcntl.h>
#include <stdio.h>
#include <sys/random.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <pugixml.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "mama/error.hpp"
#include "mama/pg_state_store.hpp"
#include "mama/record.hpp"
#include "mama/xml_state_store.hpp"

namespace mama {

/// What import_xml copied.
struct ImportResult {
  std::size_t machines = 0;  ///< machine elements
  std::size_t others = 0;    ///< other top-level elements (kept for export)
  std::size_t busy = 0;      ///< machines that had a job recorded
};

struct ImportOptions {
  /// Replace what the database holds. Off: importing into a database that already has
  /// machines is an error (so a second import cannot silently overwrite a running lab).
  bool replace = false;
};

namespace detail {

struct pg_xml_writer final : pugi::xml_writer {
  std::string out;
  void write(const void* data, std::size_t size) override {
    out.append(static_cast<const char*>(data), size);
  }
};

}  // namespace detail

/// Copies the lab in `xml` into `pg` (one transaction, under the mama.xml lock). Throws
/// mama::error: bad_state_file for a file that cannot be read, invalid_argument when the
/// database already holds machines and `options.replace` is off, io_error from the server.
/// On error the database is left as it was.
inline ImportResult import_xml(XmlStateStore& xml, PgStateStore& pg, ImportOptions options = {}) {
  const std::string file = xml.describe();
  auto lock = xml.begin();  // holds the lock, finishes an interrupted save, checks the file
  pugi::xml_document doc;
  const auto parsed =
      doc.load_file(xml.path().c_str(), pugi::parse_default | pugi::parse_ws_pcdata_single);
  if (!parsed)
    throw error(errc::bad_state_file,
                "cannot import " + file + ": " + parsed.description() +
                    "; fix the file (it must be a mama.xml) and import again");

  detail::PgSql raw(pg);
  const auto existing = raw.exec("SELECT count(*) FROM mama_machine");
  if (!options.replace && !existing.empty() && existing[0] != "0")
    throw error(errc::invalid_argument, pg.describe() + " already holds " + existing[0] +
                                            " machines; import into an empty database, or replace "
                                            "them (mama import --replace)");

  ImportResult result;
  std::string machines_sql, fields_sql, extras_sql;
  long long position = 0;
  for (pugi::xml_node top : doc.document_element().children()) {
    if (top.type() != pugi::node_element) continue;
    ++position;
    if (std::string_view(top.name()) != "machine") {
      detail::pg_xml_writer w;
      top.print(w, "", pugi::format_raw);
      extras_sql += (extras_sql.empty() ? "" : ",") + std::string("(") + std::to_string(position) +
                    ", " + raw.literal(w.out) + ")";
      ++result.others;
      continue;
    }
    const std::string name = top.child("name").text().get();
    if (name.empty())
      throw error(errc::bad_state_file, "cannot import " + file + ": machine element number " +
                                            std::to_string(result.machines + 1) +
                                            " has no name; give it a <name> and import again");
    JobRecord job;
    int field_pos = 0;
    for (pugi::xml_node f : top.children()) {
      if (f.type() != pugi::node_element) continue;
      const std::string_view key = f.name();
      const bool placeholder = key == "name" || job_field(key) != nullptr;
      if (auto member = job_field(key); member && (job.*member).empty())
        job.*member = f.text().get();
      fields_sql += (fields_sql.empty() ? "" : ",\n") + std::string("(") + raw.literal(name) +
                    ", " + std::to_string(++field_pos) + ", " + raw.literal(key) + ", " +
                    (placeholder ? std::string("NULL") : raw.literal(f.text().get())) + ")";
    }
    machines_sql += (machines_sql.empty() ? "" : ",\n") + std::string("(") + raw.literal(name) +
                    ", " + std::to_string(position);
    for (auto member : job_field_members) machines_sql += ", " + raw.literal(job.*member);
    machines_sql += ")";
    ++result.machines;
    if (!job.idle()) ++result.busy;
  }

  std::string sql =
      "BEGIN;\n"
      "LOCK TABLE mama_machine, mama_field, mama_extra IN ACCESS EXCLUSIVE MODE;\n";
  if (!options.replace)
    sql +=
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM mama_machine) THEN "
        "RAISE EXCEPTION 'the database already holds machines'; END IF; END $$;\n";
  sql += "DELETE FROM mama_field; DELETE FROM mama_machine; DELETE FROM mama_extra;\n";
  if (!machines_sql.empty())
    sql +=
        "INSERT INTO mama_machine (name, position, job, job_pid, job_timestamp, job_host, "
        "job_boot_id, job_start, job_token) VALUES\n" +
        machines_sql + ";\n";
  if (!fields_sql.empty())
    sql +=
        "INSERT INTO mama_field (machine_id, position, key, value) SELECT m.id, v.pos, v.key, "
        "v.value "
        "FROM (VALUES\n" +
        fields_sql + ") AS v(name, pos, key, value) JOIN mama_machine m ON m.name = v.name;\n";
  if (!extras_sql.empty())
    sql += "INSERT INTO mama_extra (position, xml) VALUES " + extras_sql + ";\n";
  sql += "COMMIT";
  raw.exec(sql);
  return result;
}

/// The lab in `pg` as the text of a mama.xml: the PHP tool's layout (XML declaration,
/// two-space indentation, empty fields as `<x/>`). Read in one snapshot. Throws mama::error.
inline std::string export_xml_string(PgStateStore& pg) {
  // One statement, so one snapshot: machines with their field rows, and the other elements.
  const auto rows = detail::PgSql(pg).exec_rows(
      "SELECT 0 AS kind, m.position, m.id, m.name, m.job, m.job_pid, m.job_timestamp, m.job_host, "
      "m.job_boot_id, m.job_start, m.job_token, f.position AS fpos, f.key, f.value, NULL AS xml "
      "FROM mama_machine m LEFT JOIN mama_field f ON f.machine_id = m.id "
      "UNION ALL SELECT 1, e.position, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
      "NULL, NULL, e.xml FROM mama_extra e "
      "ORDER BY 2, 1, 3, 12");
  std::string out = "<?xml version=\"1.0\"?>\n<settings>\n";
  const auto element = [&](std::string_view key, std::string_view value) {
    out += "    <" + std::string(key);
    out += value.empty() ? "/>\n"
                         : ">" + detail::escape_xml_text(value) + "</" + std::string(key) + ">\n";
  };
  std::size_t i = 0;
  while (i < rows.size()) {
    const auto& first = rows[i];
    if (*first[0] == "1") {
      out += "  " + first[14].value_or("") + "\n";
      ++i;
      continue;
    }
    const std::string id = *first[2];
    const std::string name = *first[3];
    JobRecord job;
    for (std::size_t k = 0; k < job_field_members.size(); ++k)
      job.*job_field_members[k] = *first[4 + k];
    bool written[job_field_names.size()] = {};
    bool name_written = false;
    std::vector<std::pair<std::string, std::string>> fields;  // key, value in order
    std::vector<int> kinds;  // -1 name, -2 other, else job field index
    for (; i < rows.size() && *rows[i][0] == "0" && *rows[i][2] == id; ++i) {
      if (!rows[i][12]) continue;  // a machine without field rows
      const std::string& key = *rows[i][12];
      if (rows[i][13]) {
        fields.emplace_back(key, *rows[i][13]);
        kinds.push_back(-2);
        continue;
      }
      if (key == "name") {
        fields.emplace_back(key, name);
        kinds.push_back(-1);
        name_written = true;
        continue;
      }
      for (std::size_t k = 0; k < job_field_names.size(); ++k)
        if (job_field_names[k] == key) {
          fields.emplace_back(key, job.*job_field_members[k]);
          kinds.push_back(static_cast<int>(k));
          written[k] = true;
        }
    }
    if (!name_written) {
      fields.insert(fields.begin(), {"name", name});
      kinds.insert(kinds.begin(), -1);
    }
    // Job fields set in the database but without a place: after the last job field, as the
    // mama.xml store adds them, else at the end.
    std::size_t at = fields.size();
    for (std::size_t k = kinds.size(); k-- > 0;)
      if (kinds[k] >= 0) {
        at = k + 1;
        break;
      }
    for (std::size_t k = 0; k < job_field_names.size(); ++k) {
      const std::string& value = job.*job_field_members[k];
      if (written[k] || value.empty()) continue;
      fields.insert(fields.begin() + static_cast<std::ptrdiff_t>(at),
                    {std::string(job_field_names[k]), value});
      kinds.insert(kinds.begin() + static_cast<std::ptrdiff_t>(at), static_cast<int>(k));
      ++at;
    }
    out += "  <machine>\n";
    for (const auto& [key, value] : fields) element(key, value);
    out += "  </machine>\n";
  }
  out += "</settings>\n";
  return out;
}

namespace detail {

/// Writes `text` to a new file `path` and puts it in place: the data goes to a temporary file
/// beside `path` under a random name, created with O_EXCL|O_NOFOLLOW (never a file or a link
/// that someone else put there), then renamed over `path` (`overwrite`) or moved to `path` only
/// if nothing is there yet (renameat2 RENAME_NOREPLACE, else link(2): no check-then-rename
/// race). On error no temporary file is left and `path` is as it was. Throws mama::error
/// (invalid_argument when `path` exists and `overwrite` is off).
inline void write_new_file(const std::filesystem::path& path, std::string_view text,
                           bool overwrite) {
  const auto exists_error = [&] {
    return error(errc::invalid_argument, path.string() +
                                             " exists; export to a new file, or overwrite it "
                                             "(mama export --force)");
  };
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
  std::string tmp;
  unique_fd fd;
  for (int attempt = 0; attempt < 16 && !fd; ++attempt) {
    unsigned char bytes[8];
    if (::getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes))
      throw_errno("cannot name a temporary file: getrandom failed");
    char name[17];
    for (std::size_t i = 0; i < sizeof bytes; ++i)
      std::snprintf(name + 2 * i, 3, "%02x", static_cast<unsigned>(bytes[i]));
    tmp = (dir / ("." + path.filename().string() + ".mama-export-" + name)).string();
    fd.reset(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!fd && errno != EEXIST)
      throw_errno("cannot write " + tmp + "; check that its directory exists and is writable");
  }
  if (!fd) throw_errno("cannot create a temporary file beside " + path.string());
  const auto fail = [&](const std::string& what) {
    const int saved = errno;
    ::unlink(tmp.c_str());
    errno = saved;
    throw_errno(what);
  };
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("cannot write " + tmp);
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0 || ::close(fd.release()) != 0) fail("cannot write " + tmp);
  if (overwrite) {
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      fail("cannot rename " + tmp + " to " + path.string());
    return;
  }
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0) return;
  if (errno == EEXIST) {
    ::unlink(tmp.c_str());
    throw exists_error();
  }
  if (errno != EINVAL && errno != ENOSYS) fail("cannot rename " + tmp + " to " + path.string());
  // A file system without RENAME_NOREPLACE: link(2) also refuses an existing name, atomically.
  if (::link(tmp.c_str(), path.c_str()) != 0) {
    if (errno == EEXIST) {
      ::unlink(tmp.c_str());
      throw exists_error();
    }
    fail("cannot create " + path.string());
  }
  ::unlink(tmp.c_str());
}

}  // namespace detail

/// Writes the lab in `pg` to the file `path` as a mama.xml (see export_xml_string). The file
/// is written beside under a fresh random name and moved into place (detail::write_new_file),
/// so a reader never sees half of it; an existing file is replaced only when `overwrite` is
/// set, and a file that appears meanwhile is never replaced without it. Do not export over a
/// mama.xml that the PHP tool is using: it locks the file's inode, which the rename replaces.
/// Throws mama::error.
inline void export_xml(PgStateStore& pg, const std::filesystem::path& path,
                       bool overwrite = false) {
  if (!overwrite && std::filesystem::exists(path))  // early, before the database is read
    throw error(errc::invalid_argument, path.string() +
                                            " exists; export to a new file, or overwrite it "
                                            "(mama export --force)");
  detail::write_new_file(path, export_xml_string(pg), overwrite);
}

}  // namespace mama
