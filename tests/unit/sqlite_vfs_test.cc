// SPDX-License-Identifier: Apache-2.0
// The SQLite adapter's WAL-gathering VFS (adapters/sqlite/src/wal_gather_vfs.h): a
// transaction's WAL frames, and a savepoint's statement journal, reach their files in few
// writes; every byte is there when SQLite reads, syncs or another connection looks, and a
// database written through it is one that the default VFS reads.
#include <filesystem>
#include <memory>
#include <string>

#include <doctest/doctest.h>
#include <sqlite3.h>

#include "rxflow/sqlite/sqlite_store.h"

#include "testing/files.h"
#include "testing/status.h"
#include "wal_gather_vfs.h"
#include <unistd.h>

namespace {

using rxflow::sqlite_internal::WalGatherCountsNow;
using rxflow::sqlite_internal::WalGatherVfs;

struct Closer {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using Connection = std::unique_ptr<sqlite3, Closer>;

// A fresh database path in its own directory, removed afterwards.
struct TempDb {
  rxflow::testing::TempDir dir{"rxflow-vfs"};
  std::string path = (dir.path / "t.db").string();
};

Connection Open(const std::string& path, const char* vfs) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs);
  Connection c(db);
  REQUIRE_MESSAGE(rc == SQLITE_OK, sqlite3_errstr(rc));
  return c;
}

void Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string message = err != nullptr ? err : "";
  sqlite3_free(err);
  REQUIRE_MESSAGE(rc == SQLITE_OK, sql, ": ", message);
}

int64_t Int(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

std::string Text(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  std::string v(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
  sqlite3_finalize(st);
  return v;
}

// Rows whose content is a function of their id, so any byte lost or misplaced shows.
const char* const kInsertRows =
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400) "
    "INSERT INTO t(id, body) SELECT i, printf('%.3000c', char(65 + i % 26)) || i FROM n;";
const char* const kRowsIntact =
    "SELECT count(*) FROM t WHERE body = printf('%.3000c', char(65 + id % 26)) || id";

// The database as SQLite's default VFS reads it: every row intact, the file sound.
void CheckOnDefaultVfs(const std::string& path) {
  Connection plain = Open(path, nullptr);
  CHECK(Int(plain.get(), kRowsIntact) == 400);
  CHECK(Text(plain.get(), "PRAGMA integrity_check") == "ok");
}

void Prepare(sqlite3* db) {
  Exec(db,
       "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0;"
       "CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT NOT NULL);");
}

// The writes SQLite asked the shim for while `f` ran, and those the shim issued.
template <typename F>
rxflow::sqlite_internal::WalGatherCounts CountWrites(F&& f) {
  auto before = WalGatherCountsNow();
  f();
  auto after = WalGatherCountsNow();
  return {after.writes_asked - before.writes_asked, after.writes_issued - before.writes_issued};
}

// A fresh WAL database opened through the shim, with table t.
struct Gathered {
  TempDb tmp;
  Connection db = Open(tmp.path, WalGatherVfs());
  Gathered() { Prepare(db.get()); }
};

TEST_CASE_FIXTURE(Gathered,
                  "sqlite WAL gathering: a transaction's frames reach the WAL in few writes") {
  REQUIRE(WalGatherVfs() != nullptr);
  auto [asked, issued] =
      CountWrites([&] { Exec(db.get(), std::string("BEGIN;") + kInsertRows + "COMMIT;"); });
  // 400 rows of ~3 KB: ~400 pages, each a frame written as a header and a page.
  CHECK(asked >= 800);
  CHECK(issued > 0);
  CHECK_MESSAGE(issued * 20 < asked, "asked ", asked, ", issued ", issued);

  SUBCASE("another connection on the default VFS reads every committed byte from the WAL") {
    CheckOnDefaultVfs(tmp.path);
  }
  SUBCASE("closed and reopened without the shim, after a checkpoint, nothing is lost") {
    Exec(db.get(), "PRAGMA wal_checkpoint(TRUNCATE);");
    db.reset();
    CheckOnDefaultVfs(tmp.path);
  }
}

TEST_CASE("sqlite WAL gathering: without a sync at commit, the commit is in the WAL at once") {
  // synchronous=NORMAL does not sync the WAL at a commit: the commit frame itself makes the
  // shim write what it gathered, before SQLite publishes the commit to other connections.
  TempDb tmp;
  Connection db = Open(tmp.path, WalGatherVfs());
  Exec(db.get(),
       "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;"
       "CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT NOT NULL);");
  Exec(db.get(), std::string("BEGIN;") + kInsertRows + "COMMIT;");
  CheckOnDefaultVfs(tmp.path);  // the writing connection still open, nothing else done
}

TEST_CASE_FIXTURE(
    Gathered, "sqlite WAL gathering: a transaction reads back the pages it spilled to the WAL") {
  // A page cache of 8 pages: the transaction's dirty pages spill into the WAL as it goes
  // (frames still in the gathered run), and reading them back must find them.
  Exec(db.get(), "PRAGMA cache_size=8;");
  Exec(db.get(), std::string("BEGIN;") + kInsertRows);
  CHECK(Int(db.get(), kRowsIntact) == 400);
  // Rewrite every row in the same transaction: frames of this transaction overwritten in
  // place, between appended ones.
  Exec(db.get(), "UPDATE t SET body = body || 'x';");
  CHECK(Int(db.get(),
            "SELECT count(*) FROM t WHERE body = printf('%.3000c', char(65 + id % 26)) || id || "
            "'x'") == 400);
  Exec(db.get(), "COMMIT;");
  Connection plain = Open(tmp.path, nullptr);
  CHECK(Int(plain.get(), "SELECT count(*) FROM t WHERE body LIKE '%x'") == 400);
  CHECK(Text(plain.get(), "PRAGMA integrity_check") == "ok");
}

TEST_CASE_FIXTURE(Gathered,
                  "sqlite WAL gathering: a rolled-back transaction leaves the committed data") {
  Exec(db.get(), std::string("BEGIN;") + kInsertRows + "COMMIT;");
  Exec(db.get(), "PRAGMA cache_size=8;");
  Exec(db.get(), "BEGIN; DELETE FROM t; UPDATE t SET body = 'gone';");
  Exec(db.get(), "INSERT INTO t(id, body) SELECT id + 1000, body FROM t;");
  Exec(db.get(), "ROLLBACK;");
  CHECK(Int(db.get(), kRowsIntact) == 400);
  CHECK(Int(db.get(), "SELECT count(*) FROM t") == 400);
  db.reset();
  CheckOnDefaultVfs(tmp.path);
}

TEST_CASE_FIXTURE(
    Gathered, "sqlite WAL gathering: a savepoint rolls back from a gathered statement journal") {
  Exec(db.get(), std::string("BEGIN;") + kInsertRows + "COMMIT;");
  // Inside a savepoint every changed page is journalled; 400 pages outgrow the journal's
  // 64 KiB in memory, so it spills to a temporary file, through the shim.
  Exec(db.get(), "BEGIN; SAVEPOINT op;");
  auto [asked, issued] = CountWrites([&] { Exec(db.get(), "UPDATE t SET body = 'changed';"); });
  CHECK(asked >= 400);  // a page number and a page per journalled page, after the spill
  CHECK_MESSAGE(issued * 20 < asked, "asked ", asked, ", issued ", issued);
  // Rolling back reads the journal: bytes still gathered must be there first.
  Exec(db.get(), "ROLLBACK TO op; RELEASE op;");
  CHECK(Int(db.get(), kRowsIntact) == 400);
  Exec(db.get(), "INSERT INTO t(id, body) VALUES (1000, 'kept'); COMMIT;");
  CHECK(Int(db.get(), "SELECT count(*) FROM t") == 401);
  CheckOnDefaultVfs(tmp.path);
}

// An event store on `tmp`.
std::unique_ptr<rxflow::store::Store> OpenStore(const TempDb& tmp) {
  rxflow::store::SqliteOptions options;
  options.path = tmp.path;
  auto store = rxflow::store::OpenSqliteStore(options);
  RXFLOW_REQUIRE_OK(store);
  return std::move(*store);
}

// An event whose payload is a JSON text of `size` copies of `fill`.
rxflow::store::EventRecord BigEvent(const std::string& id, size_t size, char fill) {
  rxflow::store::EventRecord e;
  e.event_id = id;
  e.type = "Something";
  e.payload = R"({"text":")" + std::string(size, fill) + R"("})";
  return e;
}

TEST_CASE("sqlite WAL gathering: the event store's appends go through the shim") {
  TempDb tmp;
  auto store = OpenStore(tmp);
  rxflow::store::AppendRequest req;
  req.stream_id = "rx-1";
  req.idempotency_key = "key-1";
  for (int i = 0; i < 8; ++i) {
    req.events.push_back(BigEvent("event-" + std::to_string(i), 3000, static_cast<char>('a' + i)));
  }
  auto [asked, issued] = CountWrites([&] { RXFLOW_REQUIRE_OK(store->Append(std::move(req))); });
  // Eight pages of events and their index pages, two writes each, in one commit.
  CHECK(asked >= 16);
  CHECK(issued > 0);
  CHECK_MESSAGE(issued * 4 < asked, "asked ", asked, ", issued ", issued);
}

// sqlite_db.h, ConfigureSqliteOnce: the first store of a process turns SQLite's memory
// statistics off before SQLite initialises (they take a global mutex on every allocation).
// Each case runs in a process of its own (doctest_discover_tests), so this one opens first.
TEST_CASE("sqlite store: SQLite's process-wide memory statistics are off once a store is open") {
  TempDb tmp;
  auto store = OpenStore(tmp);
  rxflow::store::AppendRequest req;
  req.stream_id = "rx-1";
  const rxflow::store::EventRecord e = BigEvent("event-1", 5000, 'p');
  req.events.push_back(e);
  RXFLOW_REQUIRE_OK(store->Append(std::move(req)));
  // With statistics on, SQLite counts the page caches and statements it holds here.
  CHECK(sqlite3_memory_used() == 0);
  auto read = store->ReadStream("rx-1", 0);
  RXFLOW_REQUIRE_OK(read);
  REQUIRE(read->size() == 1);
  CHECK(read->front().payload == e.payload);  // bound without a copy, stored as given
}

TEST_CASE("sqlite WAL gathering: databases other than WAL files are the default VFS's own") {
  TempDb tmp;
  Connection db = Open(tmp.path, WalGatherVfs());
  Exec(db.get(),
       "PRAGMA journal_mode=DELETE; CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT NOT NULL);");
  auto counts =
      CountWrites([&] { Exec(db.get(), std::string("BEGIN;") + kInsertRows + "COMMIT;"); });
  CHECK(counts.writes_asked == 0);  // a rollback journal is not gathered
  CHECK(Int(db.get(), kRowsIntact) == 400);
}

}  // namespace
